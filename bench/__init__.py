"""Load and scale benchmarks (``make bench``); never run by ``make test``."""
