# The wallet simulator as a container: docker build -t wallet-simulator .
# Run:  docker run --rm -p 8080:8080 -e WALLET_SIM_ADMIN_TOKEN=change-me wallet-simulator
# Every serve flag has a WALLET_SIM_* variable (docs/configuration.md); /_sim/health needs no token.
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml README.md ./
COPY simulator ./simulator
COPY scenarios ./scenarios
RUN pip install . && rm -rf /app/simulator /app/scenarios /app/build

# An unprivileged user owns nothing but its home; the package lives in site-packages.
RUN useradd --system --create-home --uid 10001 wallet
USER wallet
WORKDIR /home/wallet

# Reachable from outside the container: bound to all interfaces, so /_sim needs WALLET_SIM_ADMIN_TOKEN
# (or WALLET_SIM_INSECURE_ADMIN=1 on a private network); the server refuses to start otherwise.
ENV WALLET_SIM_HOST=0.0.0.0 \
    WALLET_SIM_PORT=8080 \
    WALLET_SIM_SCENARIO=builtin:happy_path \
    WALLET_SIM_LOG_FORMAT=json
EXPOSE 8080

HEALTHCHECK --interval=10s --timeout=5s --start-period=5s --retries=3 \
    CMD python -m simulator wait-ready "http://127.0.0.1:${WALLET_SIM_PORT}" --timeout 3

STOPSIGNAL SIGTERM
ENTRYPOINT ["python", "-m", "simulator", "serve"]
