#!/usr/bin/env bash
# make upgrade and make rollback under wrk load, on the default deployment
# (scripts/linguamate start, 2 workers):
#   - an upgrade to another build: 0 non-2xx answers, 0 connect errors;
#   - an upgrade whose new workers fail the gate (not ready) is rolled back
#     at once, under load, with the same figures; the old build serves on;
#   - an upgrade applies the settings of its own environment, as a reload;
#   - an upgrade nginx -t refuses, or one to another STATE_DIR: exit 1, the
#     configuration on disk is still the running one;
#   - make rollback to the previous build, under load, the same figures;
#   - revocations, lockouts and live flags survive each of them;
#   - make start and make status after "kill -9" of the master, and with
#     the port taken.
# Needs a release build (scripts/build.sh) and wrk.
set -uo pipefail
# shellcheck source=t/lifecycle/lib.sh
. "$(dirname "$0")/lib.sh"

tmp=$(mktemp -d /tmp/linguamate-upgrade.XXXXXX)
chmod 0755 "$tmp"
port=$(free_port)
export LINGUAMATE_RUN_DIR=$tmp/run LINGUAMATE_ENV_FILE=$tmp/app.env
unset LINGUAMATE_MODULE
admin_token=lifecycle-admin-token-lifecycle-0001
secret=lifecycle-secret-lifecycle-secret-0123
load_seconds=${LOAD_SECONDS:-10}
export UPGRADE_GATE_TIMEOUT=3

cleanup() {
    "$repo/scripts/linguamate" stop > /dev/null 2>&1
    [ -n "${other_run:-}" ] && LINGUAMATE_RUN_DIR=$other_run \
        "$repo/scripts/linguamate" stop > /dev/null 2>&1
    rm -rf "$tmp"
}
trap cleanup EXIT

# the env file holds secrets: 0600, as scripts/linguamate wants it
(umask 077 && sed -e "s/^JWT_SECRET=.*/JWT_SECRET=$secret/" \
        -e "s/^PORT=.*/PORT=$port/" \
        -e "s/^WORKER_PROCESSES=.*/WORKER_PROCESSES=2/" \
        -e "s|^STATE_DIR=.*|STATE_DIR=$tmp/state|" \
        -e "s/^ADMIN_TOKEN=.*/ADMIN_TOKEN=$admin_token/" \
        -e "s/^RATE_LIMIT_MAX_REQUESTS=.*/RATE_LIMIT_MAX_REQUESTS=10000/" \
        -e "s/^RATE_LIMIT_ALLOWLIST=.*/RATE_LIMIT_ALLOWLIST=127.0.0.1/" \
        -e "s|^LOG_FILE=.*|LOG_FILE=$tmp/requests.log|" \
        "$repo/.env.example" > "$LINGUAMATE_ENV_FILE")
cp "$LINGUAMATE_ENV_FILE" "$tmp/app.env.good"

# build A: the release build; build B: the same code as another version,
# built in a copy of the build tree (only the build-info source recompiles)
so_a=$("$repo/scripts/build.sh") || exit 1
ver_a=$(sed -n 's/^ngx_str_t *ngx_http_linguamate_build_version = ngx_string("\(.*\)");/\1/p' \
    "$(dirname "$so_a")/ngx_http_linguamate_build.c")
ver_b="$ver_a+lifecycle"
rm -rf "$tmp/build-b"
cp -a "$(dirname "$(dirname "$so_a")")" "$tmp/build-b"
LINGUAMATE_BUILD_VERSION=$ver_b "$repo/scripts/build-info.sh" \
    "$tmp/build-b/objs/ngx_http_linguamate_build.c"
make -s -C "$tmp/build-b" -f objs/Makefile modules >&2 || exit 1
so_b=$tmp/build-b/objs/ngx_http_linguamate_module.so

url=http://127.0.0.1:$port
info_version() { curl -s "$url/api/info" | json - '$j->{build}{version}'; }
master() { cat "$tmp/run/nginx.pid" 2>/dev/null; }

out=$("$repo/scripts/linguamate" start 2>&1)
check "make start: the deployment starts" [ "$(info_version)" = "$ver_a" ]
check "make start: no warning about the env file (0600)" \
    bash -c '! grep -q "readable by other users" <<< "$1"' _ "$out"
echo "# $out"

# --- state kept in STATE_DIR: a revocation, a lockout, a live flag --------
token=$("$repo/scripts/jwt" sign --sub lifecycle-user --sid lifecycle-sess \
        --iat $(($(date +%s) - 5)) --env "$LINGUAMATE_ENV_FILE")
session_code() {
    curl -s -o "$tmp/session" -w '%{http_code}' \
        -H "Authorization: Bearer $token" "$url/api/auth/session"
}
check "a signed token is accepted before its revocation" [ "$(session_code)" = 200 ]
"$repo/scripts/linguamate" admin POST /users/lifecycle-user/revoke > /dev/null
for _ in $(seq 1 12); do
    curl -s -o /dev/null -X POST -H 'Content-Type: application/json' \
        -d '{"email":"locked@example.com","refreshToken":"x"}' \
        "$url/api/auth/refresh"
done
"$repo/scripts/linguamate" flags '{"features":{"chat":false}}' > /dev/null

state_survives() {
    local when=$1
    check "$when: the revoked user's token is refused" \
        [ "$(session_code)" = 401 ]
    check "$when: ... as REVOKED" \
        [ "$(json "$tmp/session" '$j->{error}{details}{reason} // $j->{error}{reason} // $j->{reason}')" = REVOKED ]
    "$repo/scripts/linguamate" admin GET /lockouts/locked@example.com \
        > "$tmp/lockout" 2>/dev/null
    check "$when: the lockout holds" \
        [ "$(json "$tmp/lockout" '$j->{locked}')" = true ]
    "$repo/scripts/linguamate" state > "$tmp/state.json" 2>/dev/null
    check "$when: the live flag holds (chat off)" \
        [ "$(json "$tmp/state.json" '$j->{flags}{features}{chat}')" = false ]
}
state_survives "before the upgrade"

# --- load: wrk over four routes while the command runs -------------------
cat > "$tmp/paths.lua" <<'LUA'
local paths = { "/api", "/api/health", "/api/info", "/api/health/live" }
local i = 0
request = function()
    i = i % #paths + 1
    return wrk.format("GET", paths[i])
end
LUA

under_load() {
    local what=$1 want_rc=$2 rc
    shift 2
    wrk -t2 -c16 -d"${load_seconds}s" -s "$tmp/paths.lua" "$url" \
        > "$tmp/wrk.out" 2>&1 &
    local wrk_pid=$!
    # the load is on once requests are answered (the request log grows)
    local lines
    lines=$(wc -l < "$tmp/requests.log" 2>/dev/null || echo 0)
    grows() { [ "$(wc -l < "$tmp/requests.log")" -gt $((lines + 500)) ]; }
    poll 10 grows
    "$@" > "$tmp/cmd.out" 2>&1
    rc=$?
    sed 's/^/#   /' "$tmp/cmd.out"
    check "$what: the command exits $want_rc" [ "$rc" = "$want_rc" ]
    check "$what: ... while the load still runs" kill -0 "$wrk_pid"
    wait "$wrk_pid"
    read -r requests non2xx connect readerr writeerr timeouts \
        < <(wrk_figures "$tmp/wrk.out")
    echo "# $what: $requests requests, $non2xx non-2xx, socket errors:" \
         "connect $connect, read $readerr, write $writeerr, timeout $timeouts"
    check "$what: load was served ($requests requests)" [ "$requests" -gt 1000 ]
    check "$what: 0 non-2xx answers" [ "$non2xx" = 0 ]
    check "$what: 0 connect errors" [ "$connect" = 0 ]
    check "$what: 0 timeouts" [ "$timeouts" = 0 ]
}

# --- 1. upgrade A -> B ------------------------------------------------------
pid_a=$(master)
# a setting in the command's environment wins over the env file, as for a
# reload; the next upgrade (rollback) without it applies the env file again
max_requests() { curl -s "$url/api/info" | json - '$j->{rateLimit}{maxRequests}'; }
under_load "make upgrade" 0 env RATE_LIMIT_MAX_REQUESTS=9999 \
    "$repo/scripts/upgrade.sh" upgrade "$so_b"
check "make upgrade: /api/info names the new build" [ "$(info_version)" = "$ver_b" ]
check "make upgrade: applies its own environment (RATE_LIMIT_MAX_REQUESTS)" \
    [ "$(max_requests)" = 9999 ]
check "make upgrade: a new master" [ "$(master)" != "$pid_a" ]
check "make upgrade: the old master is gone" [ ! -d "/proc/$pid_a" ]
"$repo/scripts/linguamate" status > "$tmp/status" 2>&1
check "make status names the build loaded" grep -qF "build: $ver_b" "$tmp/status"
check "make status lists 2 workers" \
    [ "$(sed -n 's/^workers: //p' "$tmp/status" | wc -w)" = 2 ]
state_survives "after make upgrade"

# --- refused before USR2: the configuration on disk is the one running ----
cp -a "$tmp/run/conf" "$tmp/conf.running"
pid_b=$(master)
# refused WHAT MESSAGE NAME=VALUE: make rollback with that setting in its
# environment exits 1, says MESSAGE, and changes nothing
refused() {
    local what=$1 message=$2 rc
    env "$3" "$repo/scripts/upgrade.sh" rollback > "$tmp/cmd.out" 2>&1
    rc=$?
    sed 's/^/#   /' "$tmp/cmd.out"
    check "$what: exits 1" [ "$rc" = 1 ]
    check "... saying \"$message\"" grep -q "$message" "$tmp/cmd.out"
    check "... the configuration on disk is the running one" \
        diff -r "$tmp/conf.running" "$tmp/run/conf"
    check "... the same master serves" [ "$(master)" = "$pid_b" ]
    check "... the same build" [ "$(info_version)" = "$ver_b" ]
}
mkdir -p "$tmp/local.d"
echo 'not_a_directive on;' > "$tmp/local.d/bad.server.conf"
refused "an upgrade nginx -t refuses" "nginx -t failed.*nothing changed" \
    "NGINX_OVERRIDE_DIR=$tmp/local.d"
refused "an upgrade to another STATE_DIR" "STATE_DIR cannot change on upgrade" \
    "STATE_DIR=$tmp/state.other"

# --- 2. a new generation that fails its gate: rolled back at once ---------
# the new master reads the env file: staging with a short secret is not ready
sed -i -e 's/^NODE_ENV=.*/NODE_ENV=staging/' -e 's/^JWT_SECRET=.*/JWT_SECRET=short/' \
    "$LINGUAMATE_ENV_FILE"
pid_b=$(master)
under_load "a gate failure" 1 "$repo/scripts/upgrade.sh" rollback
check "a gate failure: reported" grep -q "failed its gate; rolled back" "$tmp/cmd.out"
check "a gate failure: the same master serves" [ "$(master)" = "$pid_b" ]
check "a gate failure: the build serving is unchanged" [ "$(info_version)" = "$ver_b" ]
check "a gate failure: no second master is left" \
    [ ! -e "$tmp/run/nginx.pid.oldbin" ]
check "a gate failure: the configuration on disk loads the serving module" \
    grep -qF "$(cat "$tmp/run/module.current")" "$tmp/run/conf/nginx.conf"
# the listen lines: deployment-server.conf, included by linguamate.conf
check "a gate failure: the gate's port is not left in the configuration" \
    bash -c "[ \$(cat '$tmp/run/conf/linguamate.conf' \
        '$tmp/run/conf/deployment-server.conf' | grep -c '^ *listen ') = 1 ]"
cp "$tmp/app.env.good" "$LINGUAMATE_ENV_FILE"
state_survives "after a failed gate"

# --- 3. make rollback B -> A ----------------------------------------------
under_load "make rollback" 0 "$repo/scripts/upgrade.sh" rollback
check "make rollback: /api/info names the previous build" \
    [ "$(info_version)" = "$ver_a" ]
check "make rollback: keeps nothing of the upgrade's environment" \
    [ "$(max_requests)" = 10000 ]
state_survives "after make rollback"

# --- 4. make start and make status tell the truth -------------------------
pid=$(master)
workers=$(pgrep -P "$pid" | tr '\n' ' ')
kill -9 "$pid"
gone() { [ ! -d "/proc/$pid" ]; }
poll 10 gone
"$repo/scripts/linguamate" status > "$tmp/status" 2>&1
rc=$?
check "after kill -9 of the master, make status fails" [ "$rc" = 1 ]
check "... and says the workers are left" grep -q '^crashed:' "$tmp/status"
sed 's/^/#   /' "$tmp/status"

# another deployment cannot start on the taken port
other_run=$tmp/other
out=$(LINGUAMATE_RUN_DIR=$other_run "$repo/scripts/linguamate" start 2>&1)
rc=$?
check "make start on a taken port fails" [ "$rc" = 1 ]
check "... saying so" grep -q "port $port is taken by" <<< "$out"
echo "# $out"

out=$("$repo/scripts/linguamate" start 2>&1)
rc=$?
echo "# $out"
check "make start recovers: stops the orphaned workers, starts" [ "$rc" = 0 ]
for w in $workers; do
    check "... orphaned worker $w is gone" [ ! -d "/proc/$w" ]
done
check "... and serves" [ "$(info_version)" = "$ver_a" ]
"$repo/scripts/linguamate" status > "$tmp/status" 2>&1
check "make status: running" grep -q '^running (pid' "$tmp/status"
state_survives "after a crash and make start"

"$repo/scripts/linguamate" stop > /dev/null 2>&1
finish
