#!/bin/sh
# linguamate-edge: the packaged deployment's helper (linguamate-edge).
# scripts/linguamate and scripts/upgrade.sh with the Debian paths:
#
#   linguamate-edge prepare    stage the installed module, render the
#                              configuration (the unit's ExecStartPre)
#   linguamate-edge reload     re-read app.env: nginx -t, then HUP
#   linguamate-edge status     master, workers, the build loaded
#   linguamate-edge upgrade    load the installed module (after apt-get
#                              upgrade) with no request lost
#   linguamate-edge rollback   load the module loaded before it
#   linguamate-edge start | stop | run | admin | flags | state
#                              as scripts/linguamate (without systemd)
#
# Paths: /etc/linguamate/app.env (settings, 0600), /etc/linguamate/conf/
# (site configuration), /run/linguamate (pid, rendered configuration,
# staged modules), /var/log/linguamate, /var/lib/linguamate (STATE_DIR).
set -eu

share=/usr/share/linguamate
module=/usr/lib/nginx/modules/ngx_http_linguamate_module.so
export LINGUAMATE_RUN_DIR="${LINGUAMATE_RUN_DIR:-/run/linguamate}"
export LINGUAMATE_ENV_FILE="${LINGUAMATE_ENV_FILE:-/etc/linguamate/app.env}"
log_dir="${LINGUAMATE_LOG_DIR:-/var/log/linguamate}"
run=$LINGUAMATE_RUN_DIR

# nginx's own logs (error.log) go to the log directory
link_logs() {
    mkdir -p "$run" "$log_dir"
    if [ ! -L "$run/logs" ]; then
        rm -rf "$run/logs"
        ln -s "$log_dir" "$run/logs"
    fi
}

# the installed module, copied to its own path in the run directory: an
# apt-get upgrade that replaces the installed file never touches it
stage() {
    LINGUAMATE_MODULE=$("$share/scripts/upgrade.sh" stage "$module")
    export LINGUAMATE_MODULE
}

cmd=${1:-}
case "$cmd" in
prepare)
    link_logs
    stage
    echo "$LINGUAMATE_MODULE" > "$run/module.current"
    exec "$share/scripts/linguamate" render > /dev/null
    ;;
start|run)
    link_logs
    stage
    exec "$share/scripts/linguamate" "$@"
    ;;
upgrade)
    exec "$share/scripts/upgrade.sh" upgrade "${2:-$module}"
    ;;
rollback)
    exec "$share/scripts/upgrade.sh" rollback
    ;;
stop|reload|status|admin|flags|state|render)
    exec "$share/scripts/linguamate" "$@"
    ;;
*)
    sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
