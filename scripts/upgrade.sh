#!/usr/bin/env bash
# Load another build of the module into a running deployment with no
# request lost: nginx's binary upgrade, gated by the new workers' health.
#
#   scripts/upgrade.sh upgrade [SO]  build the module (or take SO), copy it
#                                    to a new versioned path, nginx -t, USR2,
#                                    gate, then WINCH and QUIT the old master
#   scripts/upgrade.sh rollback      the same, back to the previous module
#   scripts/upgrade.sh stage [SO]    only the copy; prints the staged path
#   scripts/upgrade.sh current       prints the path of the loaded module
#
# A loaded module is never overwritten: each build is copied once to
# RUN_DIR/modules/ngx_http_linguamate_module-<sha256>.so, which nginx then
# loads; a reload keeps the loaded one (RUN_DIR/module.current).
#
# The gate: the new configuration listens on one more, loopback-only port,
# which only the new workers have; on it /api/health/ready must answer
# 200, /api/health/detailed must not be unhealthy, /api and /api/health
# must answer 200 and /api/info must name the build being loaded.  If
# ready fails for UPGRADE_GATE_TIMEOUT seconds (default 10), or any other
# check fails, the new master is stopped (QUIT) and the old one, never
# touched, serves on.  UPGRADE_TIMEOUT (30) bounds each other wait.
#
# The new master's settings are rendered as by a reload: the env file
# under the contract's settings in this command's environment (which win,
# .run/conf/environment.conf); nothing of an earlier start's environment is
# kept.  STATE_DIR cannot change (the state is journaled in the old folder).
# If the upgrade is refused or rolled back, the configuration files the old
# master runs are put back as they were.
#
# Environment: as scripts/linguamate (LINGUAMATE_RUN_DIR, NGINX, ...);
# LINGUAMATE_CTL (scripts/linguamate) renders the configuration.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
run_dir=${LINGUAMATE_RUN_DIR:-$repo/.run}
nginx=${NGINX:-/usr/sbin/nginx}
# nginx itself reads NGINX as the sockets of a binary upgrade
unset NGINX
ctl=${LINGUAMATE_CTL:-$repo/scripts/linguamate}
timeout=${UPGRADE_TIMEOUT:-30}
gate_timeout=${UPGRADE_GATE_TIMEOUT:-10}

say() { echo "upgrade: $*" >&2; }
die() { say "$*"; exit 1; }

alive() { [ -n "${1:-}" ] && [ -d "/proc/$1" ] && ! grep -qs '^State:.*Z' "/proc/$1/status"; }

pid_in() { local p; p=$(cat "$1" 2>/dev/null) || return 1; alive "$p" && echo "$p"; }

# poll a condition for up to $timeout seconds
until_true() {
    local end=$((SECONDS + timeout))
    while ! "$@"; do
        [ $SECONDS -lt $end ] || return 1
        sleep 0.1
    done
}

stage() {
    local so=${1:-} h dst
    if [ -z "$so" ]; then
        so=$("$repo/scripts/build.sh")
    fi
    [ -f "$so" ] || die "module $so not found"
    h=$(sha256sum "$so" | cut -c1-16)
    mkdir -p "$run_dir/modules"
    dst="$run_dir/modules/ngx_http_linguamate_module-$h.so"
    # same name, same bytes: a staged file is never written again
    if [ ! -f "$dst" ]; then
        cp "$so" "$dst.tmp.$$"
        chmod 0644 "$dst.tmp.$$"
        mv "$dst.tmp.$$" "$dst"
    fi
    echo "$dst"
}

# the build a module file says it is: its /api/info "build" object
build_of() {
    grep -aoE '"build":\{"version":"[^"]*","commit":"[^"]*"' "$1" | head -n 1
}

free_port() {
    perl -MIO::Socket::INET -e \
        'print IO::Socket::INET->new(Listen => 1, LocalAddr => "127.0.0.1:0")->sockport'
}

render_with() {
    LINGUAMATE_MODULE=$1 "$ctl" render > /dev/null
}

# the files of the configuration the old master runs, kept aside until the
# new one has passed its gate
save_running() {
    rm -rf "$run_dir/conf.upgrade"
    (umask 077 && mkdir "$run_dir/conf.upgrade")
    cp -a "$run_dir/conf" "$run_dir/url" "$run_dir/port" \
        "$run_dir/conf.upgrade/" 2>/dev/null || true
}

restore_running() {
    local saved=$run_dir/conf.upgrade
    [ -d "$saved/conf" ] || return 0
    rm -rf "$run_dir/conf"
    mv "$saved/conf" "$run_dir/conf"
    mv "$saved/url" "$saved/port" "$run_dir/" 2>/dev/null || true
    rm -rf "$saved" "$run_dir/state_dir.new"
}

nginx_t() {
    "$nginx" -p "$run_dir/" -c "$run_dir/conf/nginx.conf" \
        -e "$run_dir/logs/error.log" -t -q
}

get() {
    curl -sS -m 5 -o "$tmp/body" -w '%{http_code}' \
        "http://127.0.0.1:$gate_port$1" 2>/dev/null || echo 000
}

ready() { [ "$(get /api/health/ready)" = 200 ]; }

gate() {
    local code want
    if ! timeout=$gate_timeout until_true ready; then
        say "gate: /api/health/ready on the new workers did not answer 200" \
            "within ${gate_timeout}s: $(head -c 300 "$tmp/body" 2>/dev/null)"
        return 1
    fi
    code=$(get /api/health/detailed)
    if [ "$code" != 200 ] || grep -q '"status":"unhealthy"' "$tmp/body"; then
        say "gate: /api/health/detailed: HTTP $code $(head -c 300 "$tmp/body")"
        return 1
    fi
    for path in /api /api/health /api/health/live; do
        code=$(get "$path")
        [ "$code" = 200 ] || { say "gate: $path: HTTP $code"; return 1; }
    done
    code=$(get /api/info)
    want=$(build_of "$new_so")
    if [ "$code" != 200 ] || [ -z "$want" ] || ! grep -qF "$want" "$tmp/body"
    then
        say "gate: /api/info: HTTP $code, not the build being loaded ($want)"
        return 1
    fi
    say "gate passed: ${want#\"build\":\{}"
}

upgrade_to() {
    new_so=$1
    local old new cur state_old state_new
    old=$(pid_in "$run_dir/nginx.pid") \
        || die "not running (no master in $run_dir/nginx.pid); use make start"
    if pid=$(pid_in "$run_dir/nginx.pid.oldbin"); then
        die "an upgrade is under way (old master $pid, new $old): finish it" \
            "with kill -QUIT $pid, or undo it with kill -HUP $pid;" \
            "kill -QUIT $old"
    fi
    cur=$(cat "$run_dir/module.current" 2>/dev/null || true)
    [ -n "$cur" ] && [ -f "$cur" ] \
        || die "the loaded module is unknown ($run_dir/module.current);" \
               "restart once with make stop && make start"
    if [ "$cur" = "$new_so" ]; then
        say "$new_so is already loaded"
        return 0
    fi
    gate_port=$(free_port)
    tmp=$(mktemp -d)
    save_running
    trap 'restore_running; rm -rf "$tmp"' EXIT

    # the new configuration: the new module, this command's environment,
    # plus the gate's own port after the deployment's listen line
    render_with "$new_so" || die "the configuration cannot be rendered;" \
        "nothing changed"
    state_old=$(cat "$run_dir/state_dir" 2>/dev/null || true)
    state_new=$(cat "$run_dir/state_dir.new")
    if [ -n "$state_old" ] && [ "$state_old" != "$state_new" ]; then
        die "STATE_DIR cannot change on upgrade ($state_old ->" \
            "$state_new): the state is journaled in the old folder;" \
            "nothing changed"
    fi
    rm -f "$run_dir/state_dir.new"
    sed -i "0,/^listen .*;\$/s//&\nlisten 127.0.0.1:$gate_port;/" \
        "$run_dir/conf/deployment-server.conf"
    grep -qx "listen 127.0.0.1:$gate_port;" \
        "$run_dir/conf/deployment-server.conf" \
        || die "no listen line in deployment-server.conf; nothing changed"
    if ! nginx_t; then
        die "nginx -t failed with $new_so; nothing changed"
    fi

    say "USR2 to master $old: starting a new master with $new_so"
    kill -USR2 "$old"
    new_master() {
        new=$(pid_in "$run_dir/nginx.pid") && [ "$new" != "$old" ] \
            && [ -f "$run_dir/nginx.pid.oldbin" ]
    }
    if ! until_true new_master; then
        tail -n 5 "$run_dir/logs/error.log" >&2 || true
        die "the new master did not start; master $old serves on"
    fi
    say "new master $new"

    if ! gate; then
        say "rolling back: QUIT new master $new; master $old serves on"
        kill -QUIT "$new" 2>/dev/null || true
        # the old master takes nginx.pid back when the new one has gone
        back() { ! alive "$new" && [ "$(cat "$run_dir/nginx.pid")" = "$old" ]; }
        until_true back || say "new master $new still running"
        # the old master may have been WINCHed by hand: restart its workers
        [ -n "$(pgrep -P "$old" | grep -vx "$new" || true)" ] \
            || kill -HUP "$old"
        die "upgrade to $new_so failed its gate; rolled back to $cur"
    fi

    # WINCH: the old workers stop accepting and finish (a master run with
    # "daemon off", as by make start, ignores it); QUIT: the old master
    # waits for its workers' requests to finish, then exits
    say "WINCH and QUIT old master $old"
    kill -WINCH "$old"
    kill -QUIT "$old"
    gone() { ! alive "$old"; }
    until_true gone || say "old master $old still finishing requests"

    echo "$cur" > "$run_dir/module.previous"
    echo "$new_so" > "$run_dir/module.current"
    # what is on disk is what runs, without the gate's port (it closes at
    # the next reload)
    sed -i "/^listen 127.0.0.1:$gate_port;\$/d" \
        "$run_dir/conf/deployment-server.conf"
    trap 'rm -rf "$tmp"' EXIT
    rm -rf "$run_dir/conf.upgrade"
    prune
    say "upgraded: master $new runs $new_so"
}

# keep the loaded, the previous and the three newest staged modules
prune() {
    local keep f
    keep=$(cat "$run_dir/module.current" "$run_dir/module.previous" \
           2>/dev/null || true)
    for f in $(ls -t "$run_dir"/modules/*.so 2>/dev/null | tail -n +4); do
        case " $keep " in *"$f"*) continue ;; esac
        grep -qsF "$f" /proc/[0-9]*/maps 2>/dev/null || rm -f "$f"
    done
}

cmd=${1:-}
case "$cmd" in
stage)
    stage "${2:-}"
    ;;
current)
    cat "$run_dir/module.current"
    ;;
upgrade)
    upgrade_to "$(stage "${2:-}")"
    ;;
rollback)
    prev=$(cat "$run_dir/module.previous" 2>/dev/null) \
        || die "no previous version recorded in $run_dir/module.previous"
    [ -f "$prev" ] || die "the previous module $prev is gone"
    upgrade_to "$prev"
    ;;
*)
    sed -n '2,32p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
