#!/usr/bin/env bash
# make lifecycle: the production lifecycle checks of .ci/run (as root):
#   t/lifecycle/upgrade.sh    make upgrade / rollback under wrk load, a failed
#                             gate, state kept; start/status after a crash
#   t/lifecycle/logrotate.sh  the shipped logrotate file with USR1
#   make deb, then t/lifecycle/package.sh   apt-get install on a debootstrap
#                             root, the systemd unit's commands, verify
#   make image, then t/lifecycle/image.sh   buildah, the entrypoint, health
# LIFECYCLE="upgrade logrotate" runs some of them only.
set -uo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
checks=${LIFECYCLE:-upgrade logrotate package image}
failed=()

scripts/build.sh > /dev/null || exit 1
# as scripts/image.sh: buildah's vfs storage where overlay cannot work
if [ -z "${STORAGE_DRIVER:-}" ] && command -v buildah > /dev/null \
        && ! buildah info > /dev/null 2>&1; then
    export STORAGE_DRIVER=vfs
fi
for c in $checks; do
    case "$c" in
    package)
        echo "=== make deb"
        scripts/deb.sh || { failed+=(deb); continue; } ;;
    image)
        echo "=== make image"
        scripts/image.sh > build/image.log 2>&1 \
            || { tail -n 30 build/image.log; failed+=(image); continue; } ;;
    esac
    echo "=== t/lifecycle/$c.sh"
    start=$SECONDS
    bash "t/lifecycle/$c.sh" || failed+=("$c")
    echo "# t/lifecycle/$c.sh: $((SECONDS - start)) s"
done

if [ ${#failed[@]} -gt 0 ]; then
    echo "lifecycle: FAILED: ${failed[*]}"
    exit 1
fi
echo "lifecycle: all passed ($checks)"
