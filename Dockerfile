# syntax=docker/dockerfile:1

# ---- builder: install salesdesk and its dependencies into a self-contained venv ----------
FROM python:3.11-slim-bookworm AS builder

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH

RUN python -m venv /opt/venv

WORKDIR /src
# README.md is optional (pyproject names it as the long description); the glob lets the
# COPY succeed whether or not it exists yet.
COPY pyproject.toml README.md* ./
COPY app/ ./app/
# A regular (non-editable) install: the `app` package and the `salesdesk` console script
# end up inside /opt/venv, so the runtime stage needs nothing from /src.
RUN pip install --no-cache-dir .


# ---- runtime: the venv, the migrations and nothing else ---------------------------------
FROM python:3.11-slim-bookworm AS runtime

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH

RUN groupadd --system --gid 10001 salesdesk \
    && useradd --system --uid 10001 --gid salesdesk --home-dir /app --no-create-home \
       --shell /usr/sbin/nologin salesdesk

WORKDIR /app

COPY --from=builder /opt/venv /opt/venv
# `salesdesk migrate` runs `alembic upgrade head` from the working directory.
COPY alembic.ini ./
COPY alembic/ ./alembic/

# ./var holds the embedded SQLite database and its generated signing key.
RUN mkdir -p /app/var && chown 10001:10001 /app/var

USER 10001:10001

EXPOSE 8000

HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]

CMD ["salesdesk", "serve", "--host", "0.0.0.0", "--port", "8000"]
