# ngx_linguamate's default deployment as a container image: Debian 12,
# Debian's nginx, and the two packages of "make deb" (docs/deployment.md).
#
#   make image     (make deb, a bookworm base from debootstrap, then
#                   buildah bud --isolation chroot; no registry needed)
#   or, with a registry:  make deb && docker build -t linguamate/edge .
#
#   docker run -p 3000:3000 -v linguamate-state:/var/lib/linguamate \
#       -e JWT_SECRET=... -e CORS_ALLOWED_ORIGINS=https://app.example.com \
#       linguamate/edge
#
# Settings: /etc/linguamate/app.env (production defaults), under the
# process environment, which wins. The master runs as root to bind the
# port; the workers run as www-data.
ARG BASE=debian:12-slim
FROM ${BASE}

COPY build/deb/libnginx-mod-http-linguamate_*.deb \
     build/deb/linguamate-edge_*.deb /tmp/debs/

# no init system here: nothing is started while installing
RUN printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d \
    && chmod +x /usr/sbin/policy-rc.d \
    && apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        /tmp/debs/*.deb \
    && rm -rf /tmp/debs /var/lib/apt/lists/* /usr/sbin/policy-rc.d \
    && ln -sf /dev/stderr /var/log/linguamate/error.log

# logs on stdout: one JSON line per request; nginx's errors on stderr
ENV PORT=3000 \
    LOG_FILE=stdout \
    STATE_DIR=/var/lib/linguamate

# revocations, lockouts and live flags: keep them across containers
VOLUME ["/var/lib/linguamate"]
EXPOSE 3000

HEALTHCHECK --interval=10s --timeout=2s --start-period=5s \
    CMD curl -fs "http://127.0.0.1:${PORT}/api/health/live" || exit 1

# SIGQUIT: nginx's graceful shutdown (in-flight requests finish)
STOPSIGNAL SIGQUIT
ENTRYPOINT ["/usr/sbin/linguamate-edge"]
CMD ["run"]
