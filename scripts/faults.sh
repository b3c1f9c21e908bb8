#!/usr/bin/env bash
# make faults: faults under load (issue #9, item 3), each bounded in time,
# on loopback, against 2-worker nginx instances with the module:
#   (a) 20 HUP reloads during a load    (b) kill -9 of a worker every 3 s
#   (c) STATE_DIR full (tmpfs) or unwritable   (d) a flapping toolkit
#   (e) zones far too small
# One PASS/FAIL line each with its figures; non-zero exit on any FAIL.
#
#   FAULTS_SECONDS=30  length of the loads of (a), (b), (d)
#   FAULTS_ONLY=a,b    only these     FAULTS_CLIENTS=6  load processes
# Not part of "make test" (docs/reliability.md).
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"

module=$(scripts/build.sh)
export TEST_NGINX_LOAD_MODULES="$module"
export TEST_NGINX_BINARY=${TEST_NGINX_BINARY:-/usr/sbin/nginx}
export LINGUAMATE_REPO="$repo"

exec perl "$repo/scripts/faults.pl" "$@"
