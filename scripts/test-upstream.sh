#!/usr/bin/env bash
# Run the suites under upstream Test::Nginx (openresty/test-nginx) instead
# of the repo's runner, to check that they run there unchanged.
#
#   TEST_NGINX_UPSTREAM_LIB=/path/to/test-nginx/lib scripts/test-upstream.sh \
#       [t/NNN-file.t ...]
#
# The suites say "use lib 't/lib'", which would find the repo's runner first,
# so they run from a scratch copy of t/ whose lib/ holds Linguamate::* and
# upstream's Test::Nginx. Upstream shares one servroot: files run serially.
# Upstream needs libtest-longstring-perl and liblist-moreutils-perl too.
# t/000-runner.t is the repo runner's own self-test and is left out.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
lib=${TEST_NGINX_UPSTREAM_LIB:?set it to upstream test-nginx lib/}
[ -f "$lib/Test/Nginx/Socket.pm" ] || {
    echo "test-upstream: no Test/Nginx/Socket.pm under $lib" >&2; exit 2; }

module=$("$repo/scripts/build.sh")
export TEST_NGINX_LOAD_MODULES="$module"
export TEST_NGINX_BINARY=${TEST_NGINX_BINARY:-/usr/sbin/nginx}
export LINGUAMATE_REPO="$repo"
export LINGUAMATE_MODULE="$module"

work=$(mktemp -d /tmp/linguamate-upstream.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/t/lib"
cp -r "$repo/t/lib/Linguamate" "$work/t/lib/"
ln -s "$(cd "$lib" && pwd)/Test" "$work/t/lib/Test"
ln -s "$repo/scripts" "$work/scripts"
for f in "$repo"/t/*; do
    case "$f" in */lib|*/servroot*) continue ;; esac
    ln -s "$f" "$work/t/"
done

if [ $# -eq 0 ]; then
    set -- $(cd "$repo" && ls t/*.t | grep -v '^t/000-runner\.t$')
fi
cd "$work"
prove -j 1 "$@"
