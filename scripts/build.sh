#!/usr/bin/env bash
# Build ngx_linguamate as a dynamic module against the installed nginx.
#
# Debian's nginx-dev ships the configured source tree of the packaged
# nginx in /usr/share/nginx/src with its configure flags in conf_flags.
# We copy it into build/<flavour>/ (git-ignored), configure it with the
# same flags plus this module, and build only the modules.
#
#   scripts/build.sh            -> build/release/objs/ngx_http_linguamate_module.so
#   SANITIZE=1 scripts/build.sh -> build/asan/... (ASan + UBSan)
#   CLANG=1 scripts/build.sh    -> build/clang/... (clang -Werror, for lint)
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
src=${NGINX_SRC:-/usr/share/nginx/src}
flavour=release
cc_opt="-O2 -g -Wall -Wextra -Wno-unused-parameter -Werror"
ld_opt=""
cc=()

if [ "${SANITIZE:-0}" = 1 ]; then
    flavour=asan
    cc_opt="-O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined"
    cc_opt="$cc_opt -fno-sanitize-recover=undefined -Wall -Wno-unused-parameter"
    ld_opt="-fsanitize=address,undefined"
fi

if [ "${CLANG:-0}" = 1 ]; then
    flavour=clang
    cc=(--with-cc=clang)
fi

build="$repo/build/$flavour"

if [ ! -f "$src/conf_flags" ]; then
    echo "build: $src/conf_flags not found; install the Debian package nginx-dev" >&2
    exit 1
fi

# shellcheck disable=SC1091
. "$src/conf_flags"

stamp="$build/.configured"
want="$(cat "$src/conf_flags") ${cc[*]} $cc_opt $ld_opt $(cat "$repo/config" | md5sum)"

if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    rm -rf "$build"
    mkdir -p "$build"
    cp -a "$src/." "$build/"
    (cd "$build" && ./configure "${NGX_CONF_FLAGS[@]}" "${cc[@]}" \
        --with-cc-opt="$cc_opt" --with-ld-opt="$ld_opt" \
        --add-dynamic-module="$repo" > "$build/configure.log" 2>&1) || {
        tail -n 30 "$build/configure.log" >&2
        exit 1
    }
    echo "$want" > "$stamp"
fi

# the package version and commit compiled in; rewritten only when changed
"$repo/scripts/build-info.sh" "$build/objs/ngx_http_linguamate_build.c"

make -s -C "$build" -f objs/Makefile modules >&2

# a dynamic module links with unresolved symbols; ours must all resolve
so="$build/objs/ngx_http_linguamate_module.so"
missing=$(nm -D --undefined-only "$so" | awk '{print $2}' | grep '^ngx_http_linguamate_' || true)
if [ -n "$missing" ]; then
    echo "build: undefined module symbols: $missing" >&2
    exit 1
fi

echo "$build/objs/ngx_http_linguamate_module.so"
