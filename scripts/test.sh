#!/usr/bin/env bash
# Run the test suite (prove + the repo's Test::Nginx runner in t/lib).
#
#   scripts/test.sh [t/ or files...]
#   SANITIZE=1  module built with ASan+UBSan, runtime preloaded into nginx;
#               any sanitizer report fails the run
#   VALGRIND=1  nginx under valgrind memcheck (slow)
#   (upstream Test::Nginx instead of the repo's runner: test-upstream.sh)
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"

module=$(scripts/build.sh)
export TEST_NGINX_LOAD_MODULES="$module"
export TEST_NGINX_BINARY=${TEST_NGINX_BINARY:-/usr/sbin/nginx}
export LINGUAMATE_REPO="$repo"
export LINGUAMATE_MODULE="$module"

san_dir=""
if [ "${SANITIZE:-0}" = 1 ]; then
    san_dir=$(mktemp -d /tmp/linguamate-san.XXXXXX)
    chmod 1777 "$san_dir"
    asan=$(gcc -print-file-name=libasan.so)
    ubsan=$(gcc -print-file-name=libubsan.so)
    export LINGUAMATE_PRELOAD="$asan:$ubsan"
    export TEST_NGINX_BINARY="$repo/scripts/nginx-preload"
    # nginx frees its pools at exit but not every allocation of the
    # master's cycle; leaks are checked under valgrind instead
    export ASAN_OPTIONS="detect_leaks=0:abort_on_error=0:halt_on_error=1:log_path=$san_dir/asan"
    export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:log_path=$san_dir/ubsan"
    export TEST_NGINX_CHECK_SANITIZER=1
fi

if [ "${VALGRIND:-0}" = 1 ]; then
    export TEST_NGINX_USE_VALGRIND=1
    export TEST_NGINX_VALGRIND_SUPP="$repo/t/valgrind.suppress"
fi

inc=(-I "$repo/t/lib")

[ $# -gt 0 ] || set -- t/
rc=0
prove "${inc[@]}" -j "${PROVE_JOBS:-2}" -r "$@" || rc=$?

if [ -n "$san_dir" ]; then
    if compgen -G "$san_dir/*" > /dev/null; then
        echo "test: sanitizer reports:" >&2
        cat "$san_dir"/* >&2
        rc=1
    else
        echo "test: no sanitizer reports"
    fi
    rm -rf "$san_dir"
fi

exit $rc
