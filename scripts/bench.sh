#!/usr/bin/env bash
# make bench: wrk against the module's locations and a bare
# "location { return 200; }" in the same nginx, interleaved, several runs;
# prints each run, then medians of requests/s and p99 and the ratio.
#
#   BENCH_RUNS=3 BENCH_SECONDS=5 BENCH_CONNECTIONS=32 scripts/bench.sh
#   BENCH_TARGETS="bare bare20k jwt jwt20k health" scripts/bench.sh
#   (a subset; the summary lines of targets not run are left out)
#
# Cluster mode (docs/cluster.md): the targets "cluster" and "clu20k" go to
# a second nginx with the same module and configuration plus REDIS_URL, to
# a redis-server the bench starts, started only when one of them is asked
# for.  They are interleaved with their local twins ("limited": one key
# per connection; "lim20k": 20,000 keys in an X-Key header) and the
# summary prints cluster / local.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
runs=${BENCH_RUNS:-3}
secs=${BENCH_SECONDS:-5}
conns=${BENCH_CONNECTIONS:-32}
module=$("$repo/scripts/build.sh")

dir=$(mktemp -d /tmp/linguamate-bench.XXXXXX)
free_port() {
    perl -MIO::Socket::INET -e 'print IO::Socket::INET->new(Listen=>1,LocalAddr=>"127.0.0.1:0")->sockport'
}
port=$(free_port)
port2=$(free_port)
mkdir -p "$dir/conf" "$dir/logs"

# 200 named routes for the metrics rendering measurement
routes=""
for i in $(seq 0 199); do
    routes="$routes        location = /r/$i { linguamate off; linguamate_metrics on; linguamate_route r$i; access_log off; return 204; }
"
done

# the configuration of an instance: listen port, upstream port, directory,
# extra http{} lines (the cluster instance's REDIS_URL)
write_conf() {
local port=$1 port2=$2 dir=$3 extra=${4:-}
mkdir -p "$dir/conf" "$dir/logs"
# one worker and one wrk thread: on 2 cores each gets its own
cat > "$dir/conf/nginx.conf" <<CONF
load_module $module;
worker_processes 1;
daemon off;
pid $dir/nginx.pid;
error_log $dir/logs/error.log warn;
events { worker_connections 1024; }
http {
    linguamate_env_from_process off;
    # staging: CORS matches the list (development would echo any origin)
    linguamate_node_env staging;
    linguamate_cors_allowed_origins "https://web.example.org, *.example.com";
    linguamate_jwt_secret bench-secret-bench-secret-bench-secret;
    linguamate_session_zone sessions size=1m;
    linguamate_breaker bench;
    linguamate_breaker app;
    linguamate_app_upstream_url http://127.0.0.1:$port2;
    upstream local_upstream { server 127.0.0.1:$port2; keepalive 32; }
    server {
        listen 127.0.0.1:$port2;
        access_log off;
        location / { return 200 "upstream\n"; }
    }
    linguamate_state_dir $dir;
    linguamate_log_file $dir/logs/app.log;
    log_format linguamate escape=none '\$linguamate_log_line';
    # one key per connection, far above what one connection can send
    linguamate_limit_zone bench size=16m window=1s limit=10000 key=\$connection;
    # many clients: a key per request header (lim20k, clu20k)
    linguamate_limit_zone benchk size=16m window=1s limit=10000 key=\$http_x_key;
$extra
    access_log $dir/logs/app.log linguamate buffer=64k flush=1s
               if=\$linguamate_log_enabled;
    server {
        listen 127.0.0.1:$port;
        linguamate on;
        error_page 400 404 405 500 502 503 504 /_linguamate/error;
        location = /_linguamate/error { internal; linguamate_endpoint error; }
        location = /api/health { linguamate_endpoint health; }
        location = /bare { linguamate off; access_log off; return 200; }
        # "return" answers before the access phases: these two use the
        # smallest content handler of the module, with and without a limit
        location = /live {
            linguamate off;
            access_log off;
            linguamate_endpoint health_live;
        }
        # the bare location, counted in the metrics (full instrumentation)
        location = /counted {
            linguamate off;
            linguamate_metrics on;
            linguamate_route counted;
            access_log off;
            return 200;
        }
        location = /api/metrics { linguamate_endpoint metrics; }
$routes
        # a proxied location to a local upstream, without and with a breaker
        location = /proxied {
            linguamate off;
            access_log off;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_pass http://local_upstream/;
        }
        location = /breaker {
            linguamate off;
            access_log off;
            linguamate_circuit_breaker bench;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_pass http://local_upstream/;
        }
        location = /jwt {
            linguamate off;
            access_log off;
            linguamate_auth on;
            linguamate_endpoint health_live;
        }
        # the live endpoint as a browser calls it: CORS on, an Origin
        location = /cors {
            linguamate off;
            access_log off;
            linguamate_cors on;
            linguamate_endpoint health_live;
        }
        # the live endpoint behind the maintenance / feature gate (live
        # flags read from shared memory on every request)
        location = /gated {
            access_log off;
            linguamate_metrics off;
            linguamate_feature chat;
            linguamate_endpoint health_live;
        }
        # a tRPC call proxied to the local upstream: procedures parsed,
        # identity headers, the breaker "app"
        location /api/trpc/ {
            access_log off;
            linguamate_metrics off;
            linguamate_trpc on;
            linguamate_auth public;
            linguamate_circuit_breaker app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header X-User-Id \$linguamate_user_id;
            proxy_set_header X-Session-Id \$linguamate_session_id;
            proxy_pass http://local_upstream;
        }
        location = /limited {
            linguamate off;
            access_log off;
            linguamate_limit bench;
            linguamate_endpoint health_live;
        }
        location = /limitedk {
            linguamate off;
            access_log off;
            linguamate_limit benchk;
            linguamate_endpoint health_live;
        }
    }
}
CONF
}

declare -A rps p99
targets="bare counted health live gated limited jwt jwt20k bare20k cors"
targets=${BENCH_TARGETS:-"$targets proxied breaker trpc lim20k cluster clu20k"}
case " $targets " in *" bare "*) ;; *) targets="bare $targets" ;; esac
cluster=0
case " $targets " in *" cluster "*|*" clu20k "*) cluster=1 ;; esac

pids=()
redis=""
cleanup() {
    local p
    # nginx stops gracefully on QUIT, redis-server on TERM
    for p in "${pids[@]}"; do
        kill -QUIT "$p" 2>/dev/null || true
    done
    [ -z "$redis" ] || kill -TERM "$redis" 2>/dev/null || true
    for p in "${pids[@]}" $redis; do
        wait "$p" 2>/dev/null || true
    done
    rm -rf "$dir"
}
trap cleanup EXIT

# wait for a URL to answer 200 (at most 5 s)
wait_for() {
    local i
    for i in $(seq 1 100); do
        curl -fs -o /dev/null "$1" && return 0
        sleep 0.05
    done
    echo "bench: $1 does not answer" >&2
    return 1
}

write_conf "$port" "$port2" "$dir"
/usr/sbin/nginx -p "$dir/" -c "$dir/conf/nginx.conf" -e "$dir/logs/error.log" &
ngx=$!
pids+=("$ngx")

# the cluster instance: its own redis-server (no persistence), the same
# configuration with REDIS_URL, on its own ports and directory
port3=$(free_port)
if [ "$cluster" = 1 ]; then
    command -v redis-server > /dev/null || {
        echo "bench: the cluster targets need redis-server (scripts/install-deps.sh test)," \
             "or leave them out: BENCH_TARGETS=\"...\"" >&2
        exit 1
    }
    rport=$(free_port)
    mkdir -p "$dir/redis"
    redis-server --port "$rport" --bind 127.0.0.1 --save "" --appendonly no \
                 --dir "$dir/redis" --daemonize no \
                 --logfile "$dir/redis/redis.log" &
    redis=$!
    for i in $(seq 1 100); do
        [ "$(redis-cli -p "$rport" ping 2>/dev/null)" = PONG ] && break
        sleep 0.05
    done
    write_conf "$port3" "$(free_port)" "$dir/c" \
        "    linguamate_redis_url \"redis://127.0.0.1:$rport/0\";"
    /usr/sbin/nginx -p "$dir/c/" -c "$dir/c/conf/nginx.conf" \
                    -e "$dir/c/logs/error.log" &
    pids+=("$!")
fi

wait_for "http://127.0.0.1:$port/api/health"
if [ "$cluster" = 1 ]; then
    wait_for "http://127.0.0.1:$port3/api/health"
    # a figure labelled "cluster" must be one: the instance is connected
    up=""
    for i in $(seq 1 100); do
        up=$(curl -fs "http://127.0.0.1:$port3/api/metrics" \
             | awk '$1 == "linguamate_redis_up" {print $2}')
        [ "$up" = 1 ] && break
        sleep 0.05
    done
    [ "$up" = 1 ] || {
        echo "bench: the cluster instance is not connected to Redis" \
             "(linguamate_redis_up=${up:-absent}); see $dir/c/logs/error.log" >&2
        cat "$dir/c/logs/error.log" >&2 || true
        exit 1
    }
fi
token=$("$repo/scripts/jwt" sign --sub bench --sid bench --ttl 1h \
        --secret bench-secret-bench-secret-bench-secret)

# 20,000 distinct tokens (one per user, as real traffic brings them), sent
# in rotation by a wrk script: "jwt20k" to the JWT location, "bare20k" the
# same requests to the bare location (what the script costs wrk itself)
perl -MDigest::SHA=hmac_sha256 -MMIME::Base64 -e '
    sub b { my $s = encode_base64(shift, ""); $s =~ tr{+/}{-_}; $s =~ s/=+$//; $s }
    my $h = b(q({"alg":"HS256","typ":"JWT"}));
    my $now = time;
    for my $i (1 .. 20000) {
        my $p = b(qq({"exp":@{[$now + 3600]},"iat":$now,"sid":"session-$i",)
                  . qq("sub":"user-$i","type":"access"}));
        print "$h.$p.", b(hmac_sha256("$h.$p", $ARGV[0])), "\n";
    }' bench-secret-bench-secret-bench-secret > "$dir/tokens"
# 20,000 client keys for the limits (lim20k, clu20k)
seq -f 'client-%g' 1 20000 > "$dir/keys"
# args: path, a file of header values, the header (Authorization: tokens)
cat > "$dir/rotate.lua" <<'LUA'
local reqs, n, i = {}, 0, 0
function init(args)
    local name = args[3] or "Authorization"
    local prefix = args[3] and "" or "Bearer "
    for line in io.lines(args[2]) do
        n = n + 1
        reqs[n] = wrk.format("GET", args[1], { [name] = prefix .. line })
    end
end
function request()
    i = i % n + 1
    return reqs[i]
end
LUA
url_bare="http://127.0.0.1:$port/bare"
url_health="http://127.0.0.1:$port/api/health"
url_live="http://127.0.0.1:$port/live"
url_counted="http://127.0.0.1:$port/counted"
url_proxied="http://127.0.0.1:$port/proxied"
url_breaker="http://127.0.0.1:$port/breaker"
url_limited="http://127.0.0.1:$port/limited"
url_cluster="http://127.0.0.1:$port3/limited"
url_lim20k="http://127.0.0.1:$port/limitedk"
url_clu20k="http://127.0.0.1:$port3/limitedk"
url_jwt="http://127.0.0.1:$port/jwt"
url_jwt20k="http://127.0.0.1:$port/jwt"
url_bare20k="http://127.0.0.1:$port/bare"
url_cors="http://127.0.0.1:$port/cors"
url_gated="http://127.0.0.1:$port/gated"
url_trpc="http://127.0.0.1:$port/api/trpc/user.me,lessons.list?batch=1"

to_ms() {  # wrk latency "1.23ms" / "850.00us" / "1.02s" -> ms
    perl -e '$_=shift; /([\d.]+)(us|ms|s)/ or die; printf "%.3f", $2 eq "us" ? $1/1000 : $2 eq "s" ? $1*1000 : $1' "$1"
}

printf '%-8s %-4s %12s %10s\n' target run "requests/s" "p99 ms"
for r in $(seq 1 "$runs"); do
    for t in $targets; do
        url_var="url_$t"
        hdr=()
        [ "$t" = jwt ] && hdr=(-H "Authorization: Bearer $token")
        [ "$t" = cors ] && hdr=(-H "Origin: https://app.example.com")
        script=()
        args=()
        case $t in
            lim20k|clu20k) script=(-s "$dir/rotate.lua")
                  args=(-- /limitedk "$dir/keys" X-Key) ;;
            *20k) script=(-s "$dir/rotate.lua")
                  args=(-- "/${t%20k}" "$dir/tokens") ;;
        esac
        out=$(wrk -t1 -c"$conns" -d"${secs}s" --latency "${hdr[@]}" \
              "${script[@]}" "${!url_var}" "${args[@]}")
        q=$(echo "$out" | awk '/^Requests\/sec:/ {print $2}')
        l=$(to_ms "$(echo "$out" | awk '$1 == "99%" {print $2}')")
        errs=$(echo "$out" | awk '/Non-2xx|Socket errors/' || true)
        [ -z "$errs" ] || { echo "bench: $t: $errs" >&2; exit 1; }
        rps[$t]="${rps[$t]:-} $q"
        p99[$t]="${p99[$t]:-} $l"
        printf '%-8s %-4s %12s %10s\n' "$t" "$r" "$q" "$l"
    done
done

median() { tr ' ' '\n' | awk NF | sort -g | awk '{a[NR]=$1} END {if (NR) print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

echo
printf '%-8s %14s %12s %8s\n' target "median req/s" "median p99" "vs bare"
base=$(echo "${rps[bare]:-}" | median)
for t in $targets; do
    m=$(echo "${rps[$t]}" | median)
    p=$(echo "${p99[$t]}" | median)
    ratio=$(perl -e 'printf "%.1f%%", 100*$ARGV[0]/$ARGV[1]' "$m" "$base")
    printf '%-8s %14s %10sms %8s\n' "$t" "$m" "$p" "$ratio"
done

# a summary line needs its targets: left out when one was not run
ratio_line() {
    local a
    for a in "${@:2}"; do
        [ -n "$a" ] || return 0
    done
    perl -e "$@"
}

live=$(echo "${rps[live]:-}" | median)
lim=$(echo "${rps[limited]:-}" | median)
echo
jwt=$(echo "${rps[jwt]:-}" | median)
counted=$(echo "${rps[counted]:-}" | median)
proxied=$(echo "${rps[proxied]:-}" | median)
breaker=$(echo "${rps[breaker]:-}" | median)
ratio_line 'printf "breaker cost: breaker / proxied = %.1f%%\n", 100*$ARGV[0]/$ARGV[1]' "$breaker" "$proxied"
ratio_line 'printf "metrics cost: counted / bare = %.1f%%\n", 100*$ARGV[0]/$ARGV[1]' "$counted" "$base"
ratio_line 'printf "rate limit cost: limited / live = %.1f%%\n", 100*$ARGV[0]/$ARGV[1]' "$lim" "$live"
ratio_line 'printf "JWT cost: jwt / live = %.1f%%\n", 100*$ARGV[0]/$ARGV[1]' "$jwt" "$live"
health=$(echo "${rps[health]:-}" | median)
jwt20k=$(echo "${rps[jwt20k]:-}" | median)
bare20k=$(echo "${rps[bare20k]:-}" | median)
ratio_line 'printf "JWT, one token: jwt / health = %.1f%% (goal: 95%% or more)\n", 100*$ARGV[0]/$ARGV[1]' "$jwt" "$health"
ratio_line 'printf "JWT, 20,000 tokens: jwt20k / bare = %.1f%% (goal: 65%% or more); / bare20k (the same wrk script) = %.1f%%; / jwt (one token) = %.1f%%\n", 100*$ARGV[0]/$ARGV[1], 100*$ARGV[0]/$ARGV[2], 100*$ARGV[0]/$ARGV[3]' "$jwt20k" "$base" "$bare20k" "$jwt"
gated=$(echo "${rps[gated]:-}" | median)
ratio_line 'printf "module on with the flags gate: gated / live = %.1f%%\n", 100*$ARGV[0]/$ARGV[1]' "$gated" "$live"
trpc=$(echo "${rps[trpc]:-}" | median)
ratio_line 'printf "tRPC edge (parse, identity, breaker, module on): trpc / proxied = %.1f%%\n", 100*$ARGV[0]/$ARGV[1]' "$trpc" "$proxied"
cors=$(echo "${rps[cors]:-}" | median)
ratio_line 'printf "CORS cost: cors / live = %.1f%%\n", 100*$ARGV[0]/$ARGV[1]' "$cors" "$live"
clus=$(echo "${rps[cluster]:-}" | median)
ratio_line 'printf "cluster mode, one key per connection: cluster / limited (local) = %.1f%% (goal: 95%% or more)\n", 100*$ARGV[0]/$ARGV[1]' "$clus" "$lim"
lim20k=$(echo "${rps[lim20k]:-}" | median)
clu20k=$(echo "${rps[clu20k]:-}" | median)
ratio_line 'printf "cluster mode, 20,000 keys: clu20k / lim20k (local) = %.1f%% (goal: 95%% or more)\n", 100*$ARGV[0]/$ARGV[1]' "$clu20k" "$lim20k"

# rendering /api/metrics with 200 routes that all have series
for i in $(seq 0 199); do
    curl -fs -o /dev/null "http://127.0.0.1:$port/r/$i"
done
times=""
for i in $(seq 1 21); do
    t=$(curl -fs -o /dev/null -w '%{time_total}' "http://127.0.0.1:$port/api/metrics")
    times="$times $t"
done
series=$(curl -fs "http://127.0.0.1:$port/api/metrics" | grep -vc '^#')
ms=$(echo "$times" | median)
perl -e 'printf "metrics rendering: %d series, median %.2f ms per scrape (curl time_total)\n", $ARGV[0], 1000*$ARGV[1]' "$series" "$ms"
