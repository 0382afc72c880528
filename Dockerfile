# The MIS image for docker-compose.yml (web, Celery worker, Celery beat, migrate).
#
#   docker build -t mis-app .                      # full image: web + worker + models (torch)
#   docker build --build-arg WITH_ML=0 -t mis-web . # web-only image, without torch
#
# TORCH_INDEX_URL adds a package index for torch/torchvision, e.g. the CPU-only wheels:
#   --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu

# --- The source tree, without local state (virtualenv, var/, .env, .git) ----------------------
FROM python:3.11-slim AS source
WORKDIR /src
COPY . .
RUN rm -rf .venv .git .env var test-artifacts .ruff_cache .import_linter_cache control .ci \
    && find . -name __pycache__ -type d -prune -exec rm -rf {} + \
    && find . -name '*.pyc' -delete

# --- The image ---------------------------------------------------------------------------------
FROM python:3.11-slim

ARG WITH_ML=1
ARG TORCH_INDEX_URL=

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# gettext: compilemessages at build time.
RUN apt-get update \
    && apt-get install -y --no-install-recommends gettext \
    && rm -rf /var/lib/apt/lists/*

RUN groupadd --system --gid 1000 mis \
    && useradd --system --uid 1000 --gid mis --create-home --home-dir /home/mis \
       --shell /usr/sbin/nologin mis

WORKDIR /app

# Dependencies first, so that a code change does not reinstall them.
COPY requirements.txt requirements-web.txt requirements-ml.txt ./
RUN set -eu; \
    case "$WITH_ML" in \
      1) pip install -r requirements.txt ${TORCH_INDEX_URL:+--extra-index-url "$TORCH_INDEX_URL"} ;; \
      0) pip install -r requirements-web.txt ;; \
      *) echo "WITH_ML must be 1 (full image) or 0 (web-only image), not '$WITH_ML'" >&2; exit 1 ;; \
    esac

COPY --from=source /src /app

ENV MIS_MODE=production \
    MIS_VAR_DIR=/app/var \
    MEDIA_ROOT=/app/var/media

# Settings must load for compilemessages and collectstatic; the production mode requires these
# four variables, so this one RUN line gets dummy values that never reach the image's
# environment. Nothing here connects to the database or the broker.
RUN SECRET_KEY=build-only-not-a-secret \
    ALLOWED_HOSTS=localhost \
    DATABASE_URL=postgres://build:build@127.0.0.1:5432/build \
    CELERY_BROKER_URL=redis://127.0.0.1:6379/0 \
    sh -c 'set -e; \
      if find . -name "*.po" -not -path "./var/*" | grep -q .; then \
        python manage.py compilemessages --ignore=var; \
      fi; \
      python manage.py collectstatic --noinput' \
    && mkdir -p /app/var/media \
    && chown -R mis:mis /app/var

USER mis

EXPOSE 8000

# gthread workers whose threads answer a kept-alive connection's next request themselves
# (mis/gunicorn_workers.py).
CMD ["gunicorn", "mis.wsgi:application", "--bind", "0.0.0.0:8000", "--workers", "3", \
     "--threads", "4", "--worker-class", "mis.gunicorn_workers.KeepAliveThreadWorker", \
     "--access-logfile", "-"]
