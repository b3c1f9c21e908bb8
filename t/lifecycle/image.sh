#!/usr/bin/env bash
# The container image (make image): its configuration (entrypoint,
# HEALTHCHECK, STATE_DIR volume, SIGQUIT), then its entrypoint run with
# buildah (--isolation chroot): /api/health/live answers, the HEALTHCHECK
# command passes in the container, workers are not root, request lines
# are on stdout, state is written under the volume's path.
set -uo pipefail
# shellcheck source=t/lifecycle/lib.sh
. "$(dirname "$0")/lib.sh"

image=${LINGUAMATE_IMAGE:-localhost/linguamate-edge:latest}
tmp=$(mktemp -d /tmp/linguamate-image.XXXXXX)
ctr=""
cleanup() {
    [ -n "${master:-}" ] && kill -QUIT "$master" 2>/dev/null
    [ -n "${run_pid:-}" ] && wait "$run_pid" 2>/dev/null
    [ -n "$ctr" ] && buildah rm "$ctr" > /dev/null 2>&1
    rm -rf "$tmp"
}
trap cleanup EXIT

buildah inspect --type image "$image" > "$tmp/inspect.json" \
    || { not_ok "image $image exists (make image)"; finish; }
cfg() { json "$tmp/inspect.json" "\$j->{Docker}{config}$1"; }
check "entrypoint: the package's helper" \
    [ "$(cfg '{Entrypoint}')" = '["/usr/sbin/linguamate-edge"]' ]
check "command: run (nginx in the foreground)" [ "$(cfg '{Cmd}')" = '["run"]' ]
check "HEALTHCHECK on /api/health/live" \
    grep -q '/api/health/live' <<< "$(cfg '{Healthcheck}{Test}')"
check "STATE_DIR /var/lib/linguamate is a volume" \
    [ "$(cfg '{Volumes}')" = '{"/var/lib/linguamate":{}}' ]
check "stop signal SIGQUIT (graceful)" [ "$(cfg '{StopSignal}')" = SIGQUIT ]

port=$(free_port)
ctr=$(buildah from "$image")
entry=$(cfg '{Entrypoint}[0]')
cmd=$(cfg '{Cmd}[0]')
admin="image-admin-token-image-admin-token-0001"
buildah run --isolation chroot \
    --env "PORT=$port" --env WORKER_PROCESSES=2 \
    --env JWT_SECRET=image-secret-image-secret-image-secret-01 \
    --env CORS_ALLOWED_ORIGINS=https://app.example.com \
    --env "ADMIN_TOKEN=$admin" \
    "$ctr" -- "$entry" "$cmd" > "$tmp/stdout" 2> "$tmp/stderr" &
run_pid=$!

live() { [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/api/health/live")" = 200 ]; }
check "the entrypoint serves /api/health/live" poll 20 live
live || sed 's/^/#   /' "$tmp/stderr"

hc=$(cfg '{Healthcheck}{Test}[1]')
check "the HEALTHCHECK command passes in the container" \
    buildah run --isolation chroot --env "PORT=$port" "$ctr" -- sh -c "( $hc ) > /dev/null"

# the port's owners: the master and its workers
master=""
workers=""
for p in $(ss -Hltnp "sport = :$port" | grep -o 'pid=[0-9]*' | cut -d= -f2 | sort -u); do
    if grep -q '^nginx: master process' "/proc/$p/cmdline"; then
        master=$p
    elif grep -q '^nginx: worker process' "/proc/$p/cmdline"; then
        workers="$workers $p"
    fi
done
check "one nginx master" [ -n "$master" ]
check "2 workers" [ "$(echo $workers | wc -w)" = 2 ]
check "the master runs as root (it binds the port)" [ "$(ps -o user= -p "$master")" = root ]
for w in $workers; do
    check "worker $w runs as www-data" [ "$(ps -o user= -p "$w")" = www-data ]
    check "... a child of the master" \
        [ "$(awk '$1 == "PPid:" {print $2}' "/proc/$w/status")" = "$master" ]
done

curl -s -o /dev/null -H 'X-Correlation-Id: image-stdout' \
    "http://127.0.0.1:$port/api/health"
on_stdout() { grep -q '"correlationId":"image-stdout"' "$tmp/stdout"; }
check "request lines are on stdout" poll 10 on_stdout

curl -s -o /dev/null -X PATCH -H "Authorization: Bearer $admin" \
    -H 'Content-Type: application/json' -d '{"features":{"chat":false}}' \
    "http://127.0.0.1:$port/api/admin/flags"
state() { [ -n "$(buildah run --isolation chroot "$ctr" -- ls /var/lib/linguamate)" ]; }
check "a live flag is written under the STATE_DIR volume" poll 10 state

kill -QUIT "$master"
stopped() { ! kill -0 "$run_pid" 2>/dev/null; }
check "SIGQUIT to the master ends the container's process" poll 30 stopped
master=""

finish
