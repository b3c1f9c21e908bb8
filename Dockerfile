# ngx_linguamate on Debian 12: Debian's nginx with the module loaded.
# The image runs the same scripts as `make start` (scripts/linguamate),
# in the foreground, on PORT (default 3000).
#
#   docker build -t linguamate/edge .
#   docker run -p 3000:3000 --env-file .env.production linguamate/edge
FROM debian:12-slim

WORKDIR /opt/linguamate
COPY config Makefile .env.example ./
COPY ngx_linguamate/ ngx_linguamate/
COPY scripts/ scripts/
COPY conf/ conf/

RUN scripts/install-deps.sh \
    && scripts/build.sh > /dev/null \
    && install -m 600 .env.example .env \
    && rm -rf /var/lib/apt/lists/*

ENV LINGUAMATE_RUN_DIR=/var/run/linguamate \
    STATE_DIR=/var/lib/linguamate/state \
    PORT=3000

VOLUME ["/var/lib/linguamate/state"]
EXPOSE 3000

HEALTHCHECK --interval=10s --timeout=2s \
    CMD curl -fs http://127.0.0.1:${PORT}/api/health/live || exit 1

# SIGQUIT: nginx's graceful shutdown (in-flight requests finish)
STOPSIGNAL SIGQUIT
CMD ["scripts/linguamate", "run"]
