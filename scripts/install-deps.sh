#!/usr/bin/env bash
# Install the Debian 12 packages ngx_linguamate needs, only those missing.
#   scripts/install-deps.sh          runtime + build
#   scripts/install-deps.sh test     + test and benchmark tools
set -euo pipefail

pkgs=(nginx nginx-dev libjwt-dev libyajl-dev libssl-dev libpcre2-dev
      zlib1g-dev gcc make perl curl ca-certificates)

if [ "${1:-}" = test ]; then
    pkgs+=(libtest-base-perl libtext-diff-perl libwww-perl liburi-perl
           libipc-run-perl libjson-pp-perl wrk prometheus
           libclang-rt-14-dev clang lld valgrind dpkg-dev)
    # the app's tRPC client in t/057 runs on Node.js with npm; a machine
    # that has them from elsewhere (not dpkg's nodejs) keeps its own
    if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1
    then
        pkgs+=(nodejs npm)
    fi
fi

missing=()
for p in "${pkgs[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null \
            | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done

[ ${#missing[@]} -eq 0 ] && exit 0

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
