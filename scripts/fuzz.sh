#!/usr/bin/env bash
# make fuzz FUZZ_SECONDS=N: libFuzzer (clang, ASan + UBSan) over the pure
# parsers (ngx_http_linguamate_parse.c: dotenv, durations, integers,
# booleans, correlation ids, JWT segments, JSON nesting, CORS origins, JSON
# member spans, secret keys and values, ISO-8601 times), starting from
# the seed corpus in fuzz/corpus/.  A crash leaves its input in the work
# directory and fails the run.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
secs=${FUZZ_SECONDS:-60}
work=$(mktemp -d /tmp/linguamate-fuzz.XXXXXX)
trap 'rm -rf "$work"' EXIT

clang -g -O1 -fsanitize=fuzzer,address,undefined \
    -I "$repo/ngx_linguamate" "$repo/fuzz/fuzz_parse.c" \
    "$repo/ngx_linguamate/ngx_http_linguamate_parse.c" -o "$work/fuzz_parse"

mkdir -p "$work/corpus"
cp "$repo"/fuzz/corpus/parse/* "$work/corpus/"

cd "$work"
"$work/fuzz_parse" -max_total_time="$secs" -max_len=4096 \
    -print_final_stats=1 "$work/corpus" 2>&1 | tail -n 12
