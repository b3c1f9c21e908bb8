#!/usr/bin/env bash
# make fuzz FUZZ_SECONDS=N: libFuzzer (clang, ASan + UBSan) over every
# parser the module owns, one harness after the other, each for
# FUZZ_SECONDS (default 60), from its seed corpus fuzz/corpus/NAME/:
#
#   parse     ngx_http_linguamate_parse.c: dotenv, durations, integers,
#             booleans, correlation ids, JSON nesting, CORS
#             origins, JSON member spans, secret keys/values, ISO-8601
#   ingest    log batches (records, sig, signed spans, HMAC) and analytics
#             events; their bounded re-serialisation
#   jwt       Authorization: Bearer, the refresh body, the claims (HS256
#             with a fixed secret, libjwt, exp/nbf/iat/type/sub/sid/jti)
#   jread     differential: the JWT reader of the header and the claims
#             against the yajl-based reading it replaced, on the same bytes
#             (links token_parse.o, and jwt.o for the whole-token check)
#   flags     the PATCH /api/admin/flags body
#             (ngx_http_linguamate_flags_parse.c, linked)
#   trpc      tRPC paths and batches (call.c), the streaming scan of 207
#             answers (ngx_http_linguamate_trpc_parse.c, linked)
#   lockout   the account ("email") of a login body, streamed
#             (ngx_http_linguamate_login_parse.c, linked)
#   state     the state layer's loader: the lines of the sessions and
#             lockouts journals and of flags.state (v2 and the formats
#             before it), each record applied checked and written back
#   settings  every setting's value: CIDR lists (nginx's ngx_ptocidr),
#             origins, URLs, paths, durations, levels, integers
#   buckets   differential: the bucketed window of a rate limit against
#             an exact log of the same requests (its stated bound, Retry-
#             After, undo, a new window, the conversions to and from a
#             log); links window.o
#
#   scripts/fuzz.sh                 build, replay the regressions, fuzz all
#   scripts/fuzz.sh jwt trpc        only those harnesses
#   FUZZ_SECONDS=0 scripts/fuzz.sh  build and replay only (make
#                                   fuzz-regress)
#   FUZZ_RUNS=10000000 scripts/fuzz.sh
#                                   each harness for that many executions
#                                   instead (FUZZ_SECONDS still caps it)
#
# The harnesses link the parse- and state-layer objects (parse, call,
# json, state, token_parse, trpc_parse, ingest_parse, flags_parse,
# login_parse; docs/architecture.md) with nginx's own core code
# (ngx_string.c, ngx_palloc.c, ngx_inet.c ... of nginx 1.22.1, from
# Debian's source archive) and the thin stand-ins of fuzz/fuzz_ngx.c.
# Two include a module file to reach its static functions: jwt (jwt.c:
# the Bearer and refresh-body readers and the claim variable, static by
# design) and settings (settings.c, a core file).  Each harness's final
# stats are printed; a crash, a leak or a failed check leaves its input in
# fuzz/out/NAME/ and fails the run.  Every file of fuzz/regressions/NAME/
# is replayed first.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
secs=${FUZZ_SECONDS:-60}
runs=${FUZZ_RUNS:--1}
all="parse ingest jwt jread flags trpc lockout settings state buckets"
names=${*:-$all}

release="$repo/build/release"
work="$repo/build/fuzz"
out="$repo/fuzz/out"
ngx="$work/nginx-1.22.1"

# the configured nginx tree (ngx_auto_config.h) of the module's build
if [ ! -f "$release/objs/ngx_auto_config.h" ]; then
    "$repo/scripts/build.sh" >/dev/null
fi

# nginx's own sources: Debian's upstream tarball of nginx 1.22.1
if [ ! -d "$ngx/src/core" ]; then
    mkdir -p "$work/apt"
    tarball=$(ls "$work"/apt/nginx_1.22.1.orig.tar.gz 2>/dev/null || true)
    if [ -z "$tarball" ]; then
        (cd "$work/apt" && apt-get source --download-only nginx \
            >"$work/apt/apt.log" 2>&1) || true
        tarball=$(ls "$work"/apt/nginx_1.22.1.orig.tar.gz 2>/dev/null \
                  || true)
    fi
    if [ -z "$tarball" ]; then
        echo "fuzz: no nginx_1.22.1.orig.tar.gz: add a deb-src entry for" \
             "bookworm and run apt-get update" >&2
        exit 1
    fi
    tar -xzf "$tarball" -C "$work"
fi

cflags="-g -O1 -fno-omit-frame-pointer -fsanitize=address,undefined"
cflags="$cflags -fno-sanitize-recover=undefined"
cflags="$cflags -ffunction-sections -fdata-sections"
inc="-I $release/objs"
for d in core event event/modules os/unix http http/modules http/v2; do
    inc="$inc -I $release/src/$d"
done
inc="$inc -I $repo/ngx_linguamate -I $repo/fuzz"

# nginx's core objects, built once
mkdir -p "$work/core"
core=""
for f in core/ngx_string core/ngx_palloc core/ngx_array core/ngx_list \
         core/ngx_inet core/ngx_parse core/ngx_hash core/ngx_buf \
         core/ngx_murmurhash core/ngx_crc32 http/ngx_http_parse
do
    o="$work/core/$(basename "$f").o"
    if [ ! -f "$o" ]; then
        # nginx's code, not ours: its own warnings are not ours to fix,
        # nor its shifts into the sign bit (ngx_murmur_hash2)
        clang $cflags -fsanitize=fuzzer-no-link -fno-sanitize=shift-base \
            -w $inc \
            -c "$ngx/src/$f.c" -o "$o"
    fi
    core="$core $o"
done

clang $cflags -fsanitize=fuzzer-no-link -Wall -Werror $inc \
    -c "$repo/fuzz/fuzz_ngx.c" -o "$work/fuzz_ngx.o"
for f in parse json call state token_parse trpc_parse ingest_parse; do
    clang $cflags -fsanitize=fuzzer-no-link -Wall -Werror $inc \
        -c "$repo/ngx_linguamate/ngx_http_linguamate_$f.c" -o "$work/$f.o"
done
# the parse layers of features, linked into every harness with nginx's
# core objects (lld keeps what a harness calls)
for f in flags_parse login_parse; do
    clang $cflags -fsanitize=fuzzer-no-link -Wall -Werror $inc \
        -c "$repo/ngx_linguamate/ngx_http_linguamate_$f.c" -o "$work/$f.o"
    core="$core $work/$f.o"
done

# the feature objects a harness links instead of including their source
clang $cflags -fsanitize=fuzzer-no-link -Wall -Werror $inc \
    -c "$repo/ngx_linguamate/ngx_http_linguamate_jwt.c" -o "$work/jwt.o"
clang $cflags -fsanitize=fuzzer-no-link -Wall -Werror $inc \
    -c "$repo/ngx_linguamate/ngx_http_linguamate_window.c" -o "$work/window.o"

build() {
    local name=$1
    local objs=

    case $name in
    jread) objs="$work/jwt.o" ;;
    buckets) objs="$work/window.o" ;;
    esac

    if [ "$name" = parse ]; then
        clang $cflags -fsanitize=fuzzer -Wall -Werror \
            -I "$repo/ngx_linguamate" "$repo/fuzz/fuzz_parse.c" \
            "$work/parse.o" -o "$work/fuzz_parse"
        return
    fi

    # lld drops what no parser reaches: the handlers and their calls
    clang $cflags -fsanitize=fuzzer -Wall -Werror -Wno-unused-function \
        $inc "$repo/fuzz/fuzz_$name.c" "$work/fuzz_ngx.o" "$work/parse.o" \
        "$work/json.o" "$work/call.o" "$work/state.o" \
        "$work/token_parse.o" "$work/trpc_parse.o" "$work/ingest_parse.o" \
        $objs $core \
        -fuse-ld=lld -Wl,--gc-sections \
        -ljwt -lyajl -lcrypto -lm -o "$work/fuzz_$name"
}

status=0

for name in $names; do
    build "$name"

    if [ -d "$repo/fuzz/regressions/$name" ] \
       && [ -n "$(ls -A "$repo/fuzz/regressions/$name")" ]
    then
        echo "=== fuzz $name: replaying fuzz/regressions/$name"
        "$work/fuzz_$name" -runs=1 "$repo"/fuzz/regressions/"$name"/* \
            >"$work/$name.regress.log" 2>&1 || {
            tail -n 40 "$work/$name.regress.log" >&2
            echo "=== fuzz $name: a regression fails" >&2
            status=1
        }
    fi

    [ "$secs" -gt 0 ] || continue

    # the seeds stay as they are; what the run adds goes to a scratch copy
    rm -rf "$work/corpus-$name"
    mkdir -p "$work/corpus-$name" "$out/$name"
    cp "$repo"/fuzz/corpus/"$name"/* "$work/corpus-$name/"

    echo "=== fuzz $name: ${secs}s"
    if ! "$work/fuzz_$name" -max_total_time="$secs" -runs="$runs" \
           -max_len=4096 \
           -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
           -artifact_prefix="$out/$name/" "$work/corpus-$name" \
           >"$work/$name.log" 2>&1
    then
        status=1
        tail -n 60 "$work/$name.log" >&2
        echo "=== fuzz $name: FAILED, input in fuzz/out/$name/" >&2
    fi

    cov=$(grep -o 'cov: [0-9]* ft: [0-9]*' "$work/$name.log" | tail -n 1)
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/$name.log")
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$work/$name.log")
    echo "=== fuzz $name: ${execs:-?} execs, ${rate:-?}/s, $cov"
done

exit $status
