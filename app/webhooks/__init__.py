"""Webhooks: message format and signing (``messages``), the delivery worker (``delivery``)."""
