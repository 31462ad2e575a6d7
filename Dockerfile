# One image for every process of the stack. The default command runs the gateway;
# docker-compose.yml runs the worker, the migrations and the example services from
# the same image with another command:
#
#   docker build -t service-integration .
#   docker run -p 8005:8005 -e TEMPORAL_ADDRESS=... -e DATABASE_URL=... service-integration
#   docker run service-integration service-integration worker
#
# Everything is installed at build time; a container downloads nothing when it starts.

# --- build: install the project and its dependencies into a virtualenv ----------------
FROM python:3.11-slim AS build

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/venv

WORKDIR /src
# The build context is filtered by .dockerignore: no virtualenv, no data, no tests.
COPY . .
RUN /opt/venv/bin/pip install .

# --- runtime: the virtualenv on a clean base, run as an unprivileged user --------------
FROM python:3.11-slim

ENV PATH="/opt/venv/bin:${PATH}" \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    GATEWAY_HOST=0.0.0.0 \
    DATA_DIR=/var/lib/service-integration

RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /var/lib/service-integration \
        --no-create-home --shell /usr/sbin/nologin app \
    && mkdir -p /var/lib/service-integration \
    && chown app:app /var/lib/service-integration

COPY --from=build /opt/venv /opt/venv

# DATA_DIR is only written when DATABASE_URL is empty (embedded SQLite registry).
WORKDIR /var/lib/service-integration
USER 10001:10001

EXPOSE 8005

# Exec form: the Python process is PID 1 and receives SIGTERM itself (uvicorn drains
# in-flight requests; the worker finishes in-flight activities), see docs/production.md.
CMD ["service-integration", "gateway"]
