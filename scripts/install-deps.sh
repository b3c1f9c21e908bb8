#!/usr/bin/env bash
# Install the Debian 12 packages ngx_linguamate needs, only those missing.
#   scripts/install-deps.sh          runtime + build
#   scripts/install-deps.sh test     + test and benchmark tools
set -euo pipefail

pkgs=(nginx nginx-dev libjwt-dev libyajl-dev libssl-dev libpcre2-dev
      libhiredis-dev zlib1g-dev gcc make perl curl ca-certificates openssl procps iproute2)

if [ "${1:-}" = test ]; then
    pkgs+=(libtest-base-perl libtext-diff-perl libwww-perl liburi-perl
           libipc-run-perl libjson-pp-perl wrk prometheus
           libclang-rt-14-dev clang lld valgrind dpkg-dev cppcheck clang-tidy
           debhelper fakeroot debootstrap buildah logrotate systemd git
           redis-server redis-tools)
    # the app's tRPC client in t/057 runs on Node.js with npm; a machine
    # that has them from elsewhere (not dpkg's nodejs) keeps its own
    if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1
    then
        pkgs+=(nodejs npm)
    fi
fi

# the fuzz harnesses build nginx 1.22.1's own core from Debian's source
# archive ("apt-get source"): it needs a deb-src entry
need_src=0
if [ "${1:-}" = test ] && [ "$(id -u)" = 0 ] \
        && ! grep -rqs '^Types:.*deb-src\|^deb-src ' /etc/apt/sources.list \
                /etc/apt/sources.list.d/ \
        ; then
    if [ -f /etc/apt/sources.list.d/debian.sources ]; then
        sed 's/^Types: deb$/Types: deb-src/' \
            /etc/apt/sources.list.d/debian.sources \
            > /etc/apt/sources.list.d/linguamate-deb-src.sources
        need_src=1
    elif grep -qs '^deb ' /etc/apt/sources.list; then
        sed -n 's/^deb /deb-src /p' /etc/apt/sources.list \
            > /etc/apt/sources.list.d/linguamate-deb-src.list
        need_src=1
    fi
fi

missing=()
for p in "${pkgs[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null \
            | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done

if [ ${#missing[@]} -eq 0 ]; then
    [ "$need_src" = 1 ] && apt-get update -q >&2
    exit 0
fi

if [ "$(id -u)" != 0 ]; then
    echo "install-deps: missing Debian packages: ${missing[*]}" >&2
    echo "install-deps: run as root, or: sudo apt-get install ${missing[*]}" >&2
    exit 1
fi

echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >&2
# the nginx package tries to start a service; there may be no init system
mkdir -p /usr/sbin
policy=/usr/sbin/policy-rc.d
created=0
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy"
    chmod +x "$policy"
    created=1
fi
apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
[ "$created" = 1 ] && rm -f "$policy"
exit 0
