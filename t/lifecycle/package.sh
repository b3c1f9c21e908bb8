#!/usr/bin/env bash
# The Debian packages (make deb) on a clean Debian 12: a root made by
# debootstrap (cached in build/rootfs/bookworm, copied for each run),
# "apt-get install ./<debs>" in it, then the unit's own commands run there
# (chroot; no systemd runs here):
#   - the module's package: the nginx-abi dependency, the .so, the
#     mod-http-linguamate.conf snippet enabled, Debian's nginx -t passes;
#   - the deployment's package: app.env 0600, STATE_DIR and logs owned by
#     www-data, no start without JWT_SECRET (production), /api/health once
#     it is set; the unit's ExecReload, ExecStop; the helper's status,
#     upgrade and rollback;
#   - the unit passes systemd-analyze verify.
# Needs root (chroot, mount), debootstrap, the mirror, build/deb/*.deb.
set -uo pipefail
# shellcheck source=t/lifecycle/lib.sh
. "$(dirname "$0")/lib.sh"

cache=$repo/build/rootfs/bookworm
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
debs=("$repo"/build/deb/libnginx-mod-http-linguamate_*.deb
      "$repo"/build/deb/linguamate-edge_*.deb)
[ -f "${debs[0]}" ] && [ -f "${debs[1]}" ] \
    || { echo "package: no build/deb/*.deb; run make deb" >&2; exit 1; }

if [ ! -f "$cache/.complete" ]; then
    echo "# debootstrap bookworm into $cache (cached for later runs)"
    rm -rf "$cache" "$cache.tmp"
    mkdir -p "$(dirname "$cache")"
    debootstrap --variant=minbase bookworm "$cache.tmp" "$mirror" \
        > "$repo/build/rootfs/debootstrap.log" 2>&1 \
        || { tail -n 20 "$repo/build/rootfs/debootstrap.log"; exit 1; }
    mv "$cache.tmp" "$cache"
    touch "$cache/.complete"
fi

root=$repo/build/rootfs/work.$$
cleanup() {
    [ -n "${root:-}" ] || return
    chroot "$root" /sbin/start-stop-daemon --quiet --stop --retry QUIT/10/KILL/5 \
        --pidfile /run/linguamate/nginx.pid > /dev/null 2>&1
    umount "$root/proc" 2>/dev/null
    rm -rf "$root"
}
trap cleanup EXIT
cp -a "$cache" "$root"
in_root() { chroot "$root" "$@"; }

mkdir -p "$root/tmp/debs"
cp "${debs[@]}" "$root/tmp/debs/"
cp /etc/resolv.conf "$root/etc/resolv.conf"
# no service starts in this root (nginx.service's would take port 80)
printf '#!/bin/sh\nexit 101\n' > "$root/usr/sbin/policy-rc.d"
chmod +x "$root/usr/sbin/policy-rc.d"
mount -t proc proc "$root/proc"

export DEBIAN_FRONTEND=noninteractive
in_root apt-get update -q > "$root/tmp/apt.log" 2>&1
# systemd too, for systemd-analyze verify --root (it does not run)
in_root sh -c 'apt-get install -y -q --no-install-recommends /tmp/debs/*.deb systemd' \
    >> "$root/tmp/apt.log" 2>&1
rc=$?
check "apt-get install ./<debs> on a clean Debian 12" [ "$rc" = 0 ]
[ "$rc" = 0 ] || { tail -n 30 "$root/tmp/apt.log"; finish; }

# --- the module's package ---------------------------------------------------
abi=$(in_root dpkg-query -W -f='${Depends}' libnginx-mod-http-linguamate)
echo "# Depends: $abi"
check "the module depends on the nginx ABI it was built against" \
    grep -qw "$(sed -n 's/^nginx:abi=//p' /usr/share/nginx/src/debian/libnginx-mod.abisubstvars)" <<< "$abi"
check "the .so is in nginx's modules folder" \
    [ -f "$root/usr/lib/nginx/modules/ngx_http_linguamate_module.so" ]
check "mod-http-linguamate.conf loads it" \
    grep -qx 'load_module modules/ngx_http_linguamate_module.so;' \
    "$root/usr/share/nginx/modules-available/mod-http-linguamate.conf"
check "... and is enabled for Debian's nginx" \
    [ -L "$root/etc/nginx/modules-enabled/50-mod-http-linguamate.conf" ]
check "Debian's own nginx configuration with the module: nginx -t" \
    in_root /usr/sbin/nginx -t -q

# --- the deployment's package ---------------------------------------------
check "app.env is 0600 root" \
    [ "$(stat -c '%a %U' "$root/etc/linguamate/app.env")" = "600 root" ]
check "STATE_DIR /var/lib/linguamate belongs to www-data" \
    [ "$(stat -c '%U' "$root/var/lib/linguamate")" = www-data ]
check "the logs folder /var/log/linguamate exists" [ -d "$root/var/log/linguamate" ]
check "the unit is enabled" \
    [ -L "$root/etc/systemd/system/multi-user.target.wants/linguamate-edge.service" ]

unit=$root/lib/systemd/system/linguamate-edge.service
out=$(systemd-analyze verify --root="$root" /lib/systemd/system/linguamate-edge.service 2>&1)
rc=$?
check "systemd-analyze verify linguamate-edge.service" [ "$rc" = 0 ]
[ -z "$out" ] || echo "$out" | sed 's/^/#   /'
for want in 'Type=forking' 'Restart=on-failure' 'LimitNOFILE=' \
        'ProtectSystem=strict' 'ReadWritePaths=/var/lib/linguamate /var/log/linguamate' \
        'NoNewPrivileges=yes' 'PrivateTmp=yes' 'ExecReload=' \
        'ExecStop=.*--retry QUIT/' 'ExecStartPre=/usr/sbin/nginx -t'; do
    check "the unit has $want" grep -q "^$want" "$unit"
done

# the unit's commands, in its order, as systemd would run them
unit_cmds() { sed -n "s/^$1=-\{0,1\}//p" "$unit"; }
start_unit() {
    local c
    while read -r c; do
        in_root sh -c "$c" || return 1
    done < <(unit_cmds ExecStartPre; unit_cmds ExecStart)
}

out=$(start_unit 2>&1)
rc=$?
check "without JWT_SECRET (production) the unit does not start" [ "$rc" != 0 ]
check "... and says why" grep -q 'JWT_SECRET is not set in production' <<< "$out"
echo "$out" | tail -n 2 | sed 's/^/#   /'

port=$(free_port)
sed -i -e "s/^JWT_SECRET=.*/JWT_SECRET=package-secret-package-secret-package-0001/" \
       -e "s/^PORT=.*/PORT=$port/" -e "s/^WORKER_PROCESSES=.*/WORKER_PROCESSES=2/" \
       -e "s/^ADMIN_TOKEN=.*/ADMIN_TOKEN=package-admin-token-package-admin-0001/" \
       -e "s|^CORS_ALLOWED_ORIGINS=.*|CORS_ALLOWED_ORIGINS=https://app.example.com|" \
       "$root/etc/linguamate/app.env"
out=$(start_unit 2>&1)
rc=$?
check "with JWT_SECRET set the unit's commands start nginx" [ "$rc" = 0 ]
[ "$rc" = 0 ] || echo "$out" | sed 's/^/#   /'
url=http://127.0.0.1:$port
answers() { curl -s -o "$root/tmp/health" -w '%{http_code}' "$url/api/health" | grep -qx 200; }
check "GET /api/health answers 200" poll 10 answers
check "... status ok" [ "$(json "$root/tmp/health" '$j->{status}')" = ok ]
check "... env production" [ "$(json "$root/tmp/health" '$j->{env}')" = production ]
curl -s "$url/api/info" > "$root/tmp/info"
check "/api/info names the package version" \
    [ "$(json "$root/tmp/info" '$j->{build}{version}')" = "$(in_root dpkg-query -W -f='${Version}' libnginx-mod-http-linguamate)" ]
master=$(cat "$root/run/linguamate/nginx.pid")
check "the workers do not run as root" \
    bash -c "! ps -o user= --ppid $master | grep -qx root"
check "nginx's error log is in /var/log/linguamate" [ -f "$root/var/log/linguamate/error.log" ]
poll 5 test -s "$root/var/log/linguamate/requests.log"
check "request lines go to /var/log/linguamate/requests.log" \
    grep -q '"evt":"http_request"' "$root/var/log/linguamate/requests.log"

in_root linguamate-edge status > "$root/tmp/status" 2>&1
check "linguamate-edge status: running" grep -q "^running (pid $master" "$root/tmp/status"
sed 's/^/#   /' "$root/tmp/status"

# ExecReload: a changed setting, the same master
sed -i 's/^RATE_LIMIT_MAX_REQUESTS=.*/RATE_LIMIT_MAX_REQUESTS=4242/' "$root/etc/linguamate/app.env"
in_root sh -c "$(unit_cmds ExecReload)" > /dev/null 2>&1
reloaded() { curl -s "$url/api/info" | grep -q '"maxRequests":4242'; }
check "ExecReload applies app.env" poll 10 reloaded
check "... with the same master" [ "$(cat "$root/run/linguamate/nginx.pid")" = "$master" ]

# the helper's upgrade: a new module installed (as apt-get upgrade would,
# by rename), loaded with no restart; then rollback
so=$("$repo/scripts/build.sh") || exit 1
rm -rf "$root/tmp/build-b"
cp -a "$(dirname "$(dirname "$so")")" "$root/tmp/build-b"
LINGUAMATE_BUILD_VERSION=9.9.9-helper "$repo/scripts/build-info.sh" \
    "$root/tmp/build-b/objs/ngx_http_linguamate_build.c"
make -s -C "$root/tmp/build-b" -f objs/Makefile modules >&2
cp "$root/tmp/build-b/objs/ngx_http_linguamate_module.so" \
    "$root/usr/lib/nginx/modules/.new.so"
mv "$root/usr/lib/nginx/modules/.new.so" \
    "$root/usr/lib/nginx/modules/ngx_http_linguamate_module.so"
version() { curl -s "$url/api/info" | json - '$j->{build}{version}'; }
# the production refusal of a missing JWT_SECRET: only at the start above,
# never again for the masters of upgrade and rollback (they get app.env)
emergs() {
    cat "$root/var/log/linguamate/error.log" 2>/dev/null \
        | grep -c 'JWT_SECRET is not set in production'
}
emergs_before=$(emergs)
out=$(in_root linguamate-edge upgrade 2>&1)
check "linguamate-edge upgrade loads the newly installed module" \
    [ "$(version)" = 9.9.9-helper ]
echo "$out" | sed 's/^/#   /'
helper_out=$out
out=$(in_root linguamate-edge rollback 2>&1)
helper_out+=$out
check "linguamate-edge rollback loads the previous one" \
    [ "$(version)" = "$(in_root dpkg-query -W -f='${Version}' libnginx-mod-http-linguamate)" ]
echo "$out" | sed 's/^/#   /'
check "no JWT_SECRET refusal after the start without it" \
    [ "$(emergs)" = "$emergs_before" ]
check "... nor in the helper's output" \
    bash -c '! grep -q "JWT_SECRET is not set" <<< "$1"' _ "$helper_out"

# ExecStop: graceful stop
master=$(cat "$root/run/linguamate/nginx.pid")
in_root sh -c "$(unit_cmds ExecStop)"
stopped() { [ ! -d "/proc/$master" ]; }
check "ExecStop stops nginx" poll 40 stopped

finish
