# syntax=docker/dockerfile:1
# mockhub: one container posing as SMTP, Slack, Twilio, webhooks, OpenAI, Anthropic, PagerDuty, ...
#   docker build -t mockhub .
#   docker run -p 8080:8080 -p 1025:1025 mockhub
# Every setting is a MOCKHUB_* environment variable (see the README): `docker run -e MOCKHUB_SEED=1 ...`.

ARG PYTHON_VERSION=3.11

# ---- build: install mockhub and its dependencies into a self-contained virtual environment ----------
FROM python:${PYTHON_VERSION}-slim AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY mockhub ./mockhub
RUN python -m venv /opt/mockhub \
 && /opt/mockhub/bin/pip install --no-compile . 'redis>=5' \
 && /opt/mockhub/bin/python -m compileall -q /opt/mockhub/lib

# ---- runtime: the virtual environment only, run by an unprivileged user -----------------------------
FROM python:${PYTHON_VERSION}-slim
LABEL org.opencontainers.image.title="mockhub" \
      org.opencontainers.image.description="One mock server for every external service your application talks to" \
      org.opencontainers.image.licenses="MIT"
RUN groupadd --system --gid 10001 mockhub \
 && useradd --system --uid 10001 --gid mockhub --home-dir /mockhub --shell /usr/sbin/nologin mockhub \
 && mkdir -p /mockhub/recordings \
 && chown -R mockhub:mockhub /mockhub
COPY --from=build /opt/mockhub /opt/mockhub
ENV PATH="/opt/mockhub/bin:${PATH}" \
    PYTHONUNBUFFERED=1 \
    MOCKHUB_HOST=0.0.0.0 \
    MOCKHUB_HTTP_PORT=8080 \
    MOCKHUB_SMTP_PORT=1025 \
    MOCKHUB_RECORD_DIR=/mockhub/recordings \
    MOCKHUB_LOG_LEVEL=info \
    MOCKHUB_URL=http://127.0.0.1:8080
WORKDIR /mockhub
# Recorded journals (JSON Lines) survive the container; stub and fault files can be mounted beside them.
VOLUME ["/mockhub/recordings"]
USER mockhub
EXPOSE 8080 1025
# Shell form, so that the check follows a MOCKHUB_HTTP_PORT given at `docker run`.
HEALTHCHECK --interval=5s --timeout=3s --start-period=10s --retries=3 \
    CMD mockhub health --url "http://127.0.0.1:${MOCKHUB_HTTP_PORT}" || exit 1
STOPSIGNAL SIGTERM
ENTRYPOINT ["mockhub"]
CMD ["serve"]
