#!/usr/bin/env bash
# The package's logrotate file (debian/linguamate-edge.logrotate), its
# paths pointed at a deployment started by scripts/linguamate: after
# "logrotate -f" (its postrotate sends USR1) the request lines written
# before are in requests.log.1 and those written after in a new
# requests.log.
set -uo pipefail
# shellcheck source=t/lifecycle/lib.sh
. "$(dirname "$0")/lib.sh"

tmp=$(mktemp -d /tmp/linguamate-logrotate.XXXXXX)
chmod 0755 "$tmp"
export LINGUAMATE_RUN_DIR=$tmp/run LINGUAMATE_ENV_FILE=$tmp/app.env
cleanup() { "$repo/scripts/linguamate" stop > /dev/null 2>&1; rm -rf "$tmp"; }
trap cleanup EXIT
port=$(free_port)
mkdir -p "$tmp/log"
# the env file holds secrets: 0600, as scripts/linguamate wants it
(umask 077 && sed -e "s/^PORT=.*/PORT=$port/" -e "s/^WORKER_PROCESSES=.*/WORKER_PROCESSES=2/" \
        -e "s|^STATE_DIR=.*|STATE_DIR=$tmp/state|" \
        -e "s|^LOG_FILE=.*|LOG_FILE=$tmp/log/requests.log|" \
        "$repo/.env.example" > "$LINGUAMATE_ENV_FILE")
"$repo/scripts/linguamate" start > /dev/null 2>&1 \
    || { not_ok "the deployment starts"; finish; }

sed -e "s|/var/log/linguamate|$tmp/log|g" \
    -e "s|/run/linguamate/nginx.pid|$tmp/run/nginx.pid|g" \
    "$repo/debian/linguamate-edge.logrotate" > "$tmp/logrotate.conf"
# as the package installs it: root's, mode 0644 (logrotate insists)
chmod 0644 "$tmp/logrotate.conf"

hit() { curl -s -o /dev/null -H "X-Correlation-Id: $1" "http://127.0.0.1:$port/api/health"; }
logged() { grep -qs "\"correlationId\":\"$1\"" "$2"; }

hit rotate-before
check "a request line reaches requests.log" \
    poll 10 logged rotate-before "$tmp/log/requests.log"
logrotate -f -s "$tmp/logrotate.state" "$tmp/logrotate.conf"
check "logrotate -f exits 0" [ $? = 0 ]
check "requests.log.1 holds the line written before" \
    logged rotate-before "$tmp/log/requests.log.1"

hit rotate-after
check "after USR1 a new request line is in the new requests.log" \
    poll 10 logged rotate-after "$tmp/log/requests.log"
check "... and not in requests.log.1" \
    bash -c "! grep -q rotate-after '$tmp/log/requests.log.1'"
check "... the old line is not in the new file" \
    bash -c "! grep -q rotate-before '$tmp/log/requests.log'"

finish
