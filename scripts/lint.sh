#!/usr/bin/env bash
# make lint: the static checks of ngx_linguamate (docs/reliability.md).
#
#   scripts/lint.sh                 all of them, in this order
#   scripts/lint.sh build cppcheck  only the named ones
#
#   build     the module built with gcc and with clang, -Wall -Wextra
#             -Werror (scripts/build.sh: build/release, build/clang)
#   cppcheck  warning, portability, performance and error findings over
#             ngx_linguamate/*.c and fuzz/*.c with nginx's include paths;
#             suppressions, each with its reason: scripts/cppcheck.suppress
#   tidy      clang-tidy with the checked-in .clang-tidy over the same files
#   style     80 columns, no tabs, no trailing white space, no CR in
#             ngx_linguamate/*.[ch] and fuzz/*.c
#   layers    the include graph and the calls between files run one way,
#             core -> state -> features -> endpoints, without cycles
#             (scripts/check-includes, after its own self-test)
#   docs      the settings tables of docs/configuration.md and
#             .env.example against the code's settings lists
#             (scripts/check-settings-doc)
#
# Any finding fails the run.  Needs the Debian packages cppcheck and
# clang-tidy (scripts/install-deps.sh test).
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"

# the release and clang flavours of scripts/build.sh, whatever make exports
unset SANITIZE CLANG

steps=("$@")
[ ${#steps[@]} -eq 0 ] && steps=(build cppcheck tidy style layers docs)

jobs=$(nproc 2>/dev/null || echo 2)
srcs=(ngx_linguamate/*.c fuzz/*.c)
failed=()
out=$(mktemp -d /tmp/linguamate-lint.XXXXXX)
trap 'rm -rf "$out"' EXIT


# nginx's include paths, as the configured tree's objs/Makefile has them

incs() {
    local build=$repo/build/release d

    # the configured tree has objs/ngx_auto_config.h; make it if missing
    if [ ! -f "$build/objs/Makefile" ]; then
        scripts/build.sh >/dev/null || return 1
    fi

    sed -n '/^ALL_INCS =/,/^$/p' "$build/objs/Makefile" \
        | grep -o -- '-I [^ \\]*' | awk '{print $2}' \
        | while read -r d; do
              case "$d" in
                  /*) echo "-I$d" ;;
                  *)  [ -d "$build/$d" ] && echo "-I$build/$d" ;;
              esac
          done
}


lint_build() {
    scripts/build.sh >/dev/null && CLANG=1 scripts/build.sh >/dev/null
}


lint_cppcheck() {
    local -a inc

    mapfile -t inc < <(incs)
    [ ${#inc[@]} -gt 0 ] || return 1

    cppcheck --quiet --error-exitcode=1 \
        --enable=warning,portability,performance \
        --std=c99 --platform=unix64 --library=posix \
        --max-configs=1 -D__linux__ -D__x86_64__ -D__GNUC__=12 \
        --suppressions-list=scripts/cppcheck.suppress \
        --template='{file}:{line}:{column}: {severity}: {message} [{id}]' \
        -j "$jobs" "${inc[@]}" "${srcs[@]}"
}


lint_tidy() {
    local -a inc

    mapfile -t inc < <(incs)
    [ ${#inc[@]} -gt 0 ] || return 1

    # one clang-tidy per file, $jobs at a time, with the compiler flags of
    # the build; a file with findings is listed in $out/failed
    printf '%s\n' "${srcs[@]}" \
        | xargs -P "$jobs" -I{} sh -c '
              out=$0 f=$1
              shift
              clang-tidy --quiet "$f" -- "$@" \
                  > "$out/$(basename "$f").log" 2>&1 \
                  || echo "$f" >> "$out/failed"' \
              "$out" {} -Wall -Wextra -Wno-unused-parameter "${inc[@]}"

    if [ -s "$out/failed" ]; then
        # the findings, without clang-tidy's "N warnings generated" chatter
        grep -hv 'warnings\? generated\.$\|^Suppressed \|^Use -header-filter' \
            "$out"/*.log >&2 || true
        return 1
    fi
}


lint_style() {
    awk 'length($0) > 80 { printf "%s:%d: longer than 80 columns (%d)\n",
                                  FILENAME, FNR, length($0); bad = 1 }
         /\t/            { printf "%s:%d: tab\n", FILENAME, FNR; bad = 1 }
         /[ \t]$/        { printf "%s:%d: trailing white space\n",
                                  FILENAME, FNR; bad = 1 }
         /\r/            { printf "%s:%d: carriage return\n",
                                  FILENAME, FNR; bad = 1 }
         END             { exit bad }' \
        ngx_linguamate/*.[ch] fuzz/*.c >&2
}


lint_layers() {
    scripts/check-includes --self-test >/dev/null && scripts/check-includes
}


lint_docs() {
    scripts/check-settings-doc
}


for step in "${steps[@]}"; do
    case "$step" in
        build|cppcheck|tidy|style|layers|docs) ;;
        *) echo "lint: unknown step: $step" >&2; exit 2 ;;
    esac

    start=$SECONDS
    if "lint_$step"; then
        echo "lint: $step ok ($((SECONDS - start))s)"
    else
        echo "lint: $step FAILED ($((SECONDS - start))s)"
        failed+=("$step")
    fi
done

if [ ${#failed[@]} -ne 0 ]; then
    echo "lint: failed: ${failed[*]}" >&2
    exit 1
fi
