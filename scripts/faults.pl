#!/usr/bin/env perl
# Faults under load (issue #9, item 3), each bounded in time, on loopback,
# against 2-worker nginx instances with the module (t/lib's
# Linguamate::Server): run by scripts/faults.sh, which builds the module
# and sets the environment.  One PASS/FAIL line per sub-test with its
# figures; exits non-zero on any failure.
#
#   FAULTS_SECONDS=30   the length of the load of (a), (b) and (d)
#   FAULTS_ONLY=a,c     run only these sub-tests
#   FAULTS_CLIENTS=6    load processes

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../t/lib";
use JSON::PP;
use IO::Socket::INET;
use IO::Select;
use POSIX qw(WNOHANG strftime);
use Time::HiRes qw(time sleep);
use File::Temp ();
use Linguamate::Server;
use Linguamate::Upstream;
use Linguamate::Token;

$SIG{PIPE} = 'IGNORE';
$| = 1;

my $secs = $ENV{FAULTS_SECONDS} // 30;
my $clients = $ENV{FAULTS_CLIENTS} // 6;
my %only = map { $_ => 1 } split /,/, ($ENV{FAULTS_ONLY} // 'a,b,c,d,e,f');
my $json = JSON::PP->new->utf8->canonical;
my $admin = 'admin-token-admin-token-admin-token-0';
my $failed = 0;

# --- helpers -------------------------------------------------------------------

sub result {
    my ($name, $ok, $figures) = @_;
    printf "%s faults(%s): %s\n", $ok ? 'PASS' : 'FAIL', $name, $figures;
    $failed++ unless $ok;
}

# one request, Connection: close; returns (status, body) or (0, error)
sub req {
    my ($port, $method, $path, %o) = @_;
    my $t = $o{timeout} // 10;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
                                  Timeout => $t) or return (0, "connect: $!");
    my $body = $o{body};
    my $h = "$method $path HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n";
    $h .= "$_: $o{headers}{$_}\r\n" for keys %{ $o{headers} // {} };
    $h .= 'Content-Length: ' . length($body) . "\r\nContent-Type: application/json\r\n"
        if defined $body;
    unless (syswrite $s, "$h\r\n" . ($body // '')) {
        return (0, "write: $!");
    }
    my $sel = IO::Select->new($s);
    my $in = '';
    my $end = time + $t;
    while (time < $end) {
        last unless $sel->can_read($end - time);
        my $n = sysread $s, my $buf, 65536;
        last unless $n;
        $in .= $buf;
    }
    close $s;
    return (0, 'no answer') unless $in =~ m{^HTTP/1\.\d (\d{3})};
    my $st = $1;
    my (undef, $b) = split /\r\n\r\n/, $in, 2;
    return ($st, $b // '');
}

sub jreq {
    my ($st, $b) = req(@_);
    return ($st, eval { $json->decode($b) } // {});
}

# $n processes sending requests from $paths (array of [method, path, %o])
# round robin until $deadline; returns the totals
sub load_start {
    my ($port, $n, $deadline, $paths, %o) = @_;
    my @kids;
    for my $c (1 .. $n) {
        pipe my $r, my $w or die;
        my $pid = fork // die "fork: $!";
        if ($pid == 0) {
            close $r;
            my %st;
            my $i = $c;
            while (time < $deadline) {
                my $p = $paths->[ $i++ % @$paths ];
                my ($s) = req($port, @$p);
                if (!$s && $o{retry}) {
                    # reset in flight on a killed worker: a client (or a
                    # load balancer) tries again once; counted as status 1
                    $st{1}++;
                    ($s) = req($port, @$p);
                }
                $st{$s}++;
                sleep $o{pause} if $o{pause};
            }
            print $w join(',', map { "$_=$st{$_}" } keys %st), "\n";
            close $w;
            POSIX::_exit(0);
        }
        close $w;
        push @kids, [$pid, $r];
    }
    return \@kids;
}

sub load_wait {
    my ($kids) = @_;
    my %st;
    for my $k (@$kids) {
        my $line = readline($k->[1]) // '';
        waitpid $k->[0], 0;
        $st{$1} += $2 while $line =~ /(\d+)=(\d+)/g;
    }
    my %t = (status => \%st, sent => 0, ok => 0, non2xx => 0, errors => 0,
             s5xx => 0, retried => delete $st{1} // 0);
    for my $s (keys %st) {
        $t{sent} += $st{$s};
        if ($s == 0) { $t{errors} += $st{$s} }
        elsif ($s >= 200 && $s < 300) { $t{ok} += $st{$s} }
        else { $t{non2xx} += $st{$s} }
        $t{s5xx} += $st{$s} if $s >= 500;
    }
    return \%t;
}

sub statuses { my $s = shift; join ' ', map { "$_:$s->{$_}" } sort keys %$s }

sub rss_kb {
    my $kb = 0;
    for my $pid (@_) {
        open my $f, '<', "/proc/$pid/status" or next;
        while (<$f>) { $kb += $1 if /^VmRSS:\s+(\d+)/ }
    }
    return $kb;
}

sub srv_rss { my $s = shift; rss_kb($s->{pid}, $s->worker_pids) }

# the value of the metric lines matching $re, summed
sub metric {
    my ($port, $re) = @_;
    my ($st, $body) = req($port, 'GET', '/api/metrics');
    my $sum = 0;
    for (split /\n/, $body) {
        next if /^#/;
        $sum += $1 if /$re/ && /\s(\S+)$/;
    }
    return $sum;
}

sub count_lines {
    my ($srv, $file, $re) = @_;
    return scalar grep { /$re/ } split /\n/, $srv->slurp($file);
}

my $app = Linguamate::Upstream->new(sub {
    return (200, '{"result":{"data":{"json":{"ok":true}}}}');
});

# the flapping toolkit: healthy and failing by turns of $flap seconds
my $flap = $ENV{FAULTS_FLAP_SECONDS} // 4;
my $flap_t0 = time;
my $toolkit = Linguamate::Upstream->new(sub {
    my $phase = int((time - $flap_t0) / $flap) % 2;
    return $phase ? (500, '{"e":"down"}') : (200, '{"ok":true}');
});
$flap_t0 = time;

# a 2-worker nginx with every zone of the module and its routes
sub server {
    my (%o) = @_;
    my $srv = Linguamate::Server->new(workers => 2, connections => 4096,
                                      main => 'worker_rlimit_nofile 16384;');
    my $state = $o{state} // $srv->dir . '/state';
    mkdir $state;
    chmod 0777, $state;
    my ($ap, $tp) = ($app->port, $toolkit->port);
    my $logins = $o{logins} // 1000;
    $srv->configure(<<"_HTTP_", <<'_SERVER_');
    linguamate_jwt_secret $SECRET;
    linguamate_state_dir $state;
    linguamate_admin_token $admin;
    linguamate_log_file logs/events.log;
    linguamate_rate_limit_max_login_attempts $logins;
    linguamate_app_upstream_url http://127.0.0.1:$ap;
    linguamate_toolkit_url http://127.0.0.1:$tp;
    linguamate_request_timeout_ms 5000;
    linguamate_limit_zone global size=4m window=1s limit=10000;
    linguamate_limit_zone exact size=1m window=1h limit=100;
    linguamate_limit_zone auth size=1m window=1s limit=10000;
    linguamate_limit_zone tiny size=32k window=1h limit=5 key=\$http_x_key;
    linguamate_lockout_zone auth_lockout size=1m;
    linguamate_lockout_zone tiny_lockout size=32k;
    linguamate_session_zone sessions size=1m;
    linguamate_breaker toolkit failure_threshold=3 volume_threshold=5 reset_timeout=1s monitoring_period=2s;
    linguamate_breaker app;
_HTTP_
        client_max_body_size 1m;
        linguamate_limit global;
        error_page 400 401 403 404 405 408 413 414 429 494 500 501 502 503
                   504 505 /_linguamate/error;
        location = /_linguamate/error {
            internal;
            linguamate_limit off;
            linguamate_endpoint error;
        }
        location = /api/health { linguamate_route health; linguamate_endpoint health; }
        location = /api/exact { linguamate_route exact; linguamate_limit exact; linguamate_endpoint root; }
        location = /api/tiny { linguamate_route tiny; linguamate_limit tiny; linguamate_endpoint root; }
        location = /api/metrics { linguamate_route metrics; linguamate_endpoint metrics; }
        location = /api/auth/session {
            linguamate_route auth_session;
            linguamate_auth on;
            linguamate_endpoint auth_session;
        }
        location = /api/auth/refresh {
            linguamate_route auth_refresh;
            linguamate_limit global;
            linguamate_limit auth;
            linguamate_lockout auth_lockout;
            client_max_body_size 16k;
            linguamate_endpoint auth_refresh;
        }
        location = /api/auth/tiny {
            linguamate_route auth_tiny;
            linguamate_lockout tiny_lockout;
            linguamate_endpoint auth_refresh;
        }
        location = /api/toolkit/v1/text/llm {
            linguamate_route toolkit_llm;
            linguamate_auth optional;
            linguamate_circuit_breaker toolkit;
            linguamate_toolkit /text/llm/;
        }
        location = /api/toolkit/health {
            linguamate_route toolkit_health;
            linguamate_endpoint toolkit_health;
        }
        location = /_linguamate/toolkit {
            internal;
            proxy_pass $linguamate_toolkit_target;
            proxy_set_header Authorization "Bearer $linguamate_toolkit_key";
            proxy_http_version 1.1;
            proxy_buffering off;
            proxy_connect_timeout 2s;
            proxy_read_timeout 5s;
        }
        location /api/trpc/ {
            linguamate_route trpc;
            linguamate_trpc on;
            linguamate_auth public;
            linguamate_limit global;
            linguamate_limit auth;
            linguamate_lockout auth_lockout;
            linguamate_circuit_breaker app;
            proxy_max_temp_file_size 0;
            proxy_ignore_client_abort on;
            proxy_pass $linguamate_app_upstream;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_read_timeout 5s;
        }
        location /api/admin/ { linguamate_route admin; linguamate_endpoint admin; }
        location / { linguamate_route other; linguamate_endpoint not_found; }
_SERVER_
    $srv->start;
    return $srv;
}

my $auth = { Authorization => "Bearer $admin" };
my $user = token(sub => 'u-1', sid => 's-1');

# exactly L of N parallel requests pass a limit of L
sub exact_limit {
    my ($srv) = @_;
    my @kids;
    for my $c (1 .. 50) {
        pipe my $r, my $w or die;
        my $pid = fork // die;
        if ($pid == 0) {
            close $r;
            my %n;
            $n{ (req($srv->port, 'GET', '/api/exact'))[0] }++ for 1 .. 10;
            print $w join(',', map { "$_=$n{$_}" } keys %n), "\n";
            close $w;
            POSIX::_exit(0);
        }
        close $w;
        push @kids, [$pid, $r];
    }
    my $res = load_wait(\@kids);
    return ($res->{status}{200} // 0, $res->{status}{429} // 0, $res->{sent});
}

# every zone-using route answers promptly (no zone left locked)
sub zones_answer {
    my ($srv) = @_;
    my @calls = (
        ['GET', '/api/health'], ['GET', '/api/metrics'],
        ['GET', '/api/auth/session', headers => { Authorization => "Bearer $user" }],
        ['POST', '/api/auth/refresh', body => '{"refreshToken":"x"}'],
        ['GET', '/api/toolkit/health'], ['GET', '/api/admin/state', headers => $auth],
        ['PATCH', '/api/admin/flags', headers => $auth, body => '{"cacheTtlSeconds":null}'],
        ['POST', '/api/trpc/auth.login', body => '{"json":{"email":"z@x"}}'],
        ['GET', '/api/tiny', headers => { 'X-Key' => 'probe' }],
    );
    my $worst = 0;
    my @bad;
    for my $c (@calls) {
        my $t = time;
        my ($st) = req($srv->port, @$c, timeout => 5);
        my $dt = time - $t;
        $worst = $dt if $dt > $worst;
        push @bad, "$c->[1]=$st" if $st == 0 || $st >= 500 || $dt > 2;
    }
    return ($worst, \@bad);
}

# --- soak (scripts/soak.sh): wrk at high load, RSS and zones sampled -----------

if (($ARGV[0] // '') eq 'soak') {
    %only = ();
    my $dur = $ENV{SOAK_SECONDS} // 600;
    my $every = $ENV{SOAK_SAMPLE} // 30;
    my $warm = $ENV{SOAK_WARMUP} // 60;
    my $bound = $ENV{SOAK_RSS_BOUND_KB} // 8192;
    my $srv = server();
    my $port = $srv->port;
    my $lua = $srv->dir . '/mix.lua';
    open my $f, '>', $lua or die;
    print $f <<"_LUA_";
local t = "Bearer $user"
local reqs = {
  wrk.format("GET", "/api/health"),
  wrk.format("GET", "/api/auth/session", { Authorization = t }),
  wrk.format("POST", "/api/auth/refresh", { ["Content-Type"] = "application/json" },
             '{"refreshToken":"bad"}'),
  wrk.format("GET", "/api/toolkit/health"),
  wrk.format("GET", "/api/exact"),
  wrk.format("GET", "/nope"),
  wrk.format("GET", "/api/metrics"),
}
local i = 0
request = function()
  i = i + 1
  if i % 8 == 0 then
    return wrk.format("GET", "/api/tiny", { ["X-Key"] = "k" .. math.random(1, 1000000) })
  end
  return reqs[i % #reqs + 1]
end
_LUA_
    close $f;
    my $zones = sub {
        my (undef, $b) = req($port, 'GET', '/api/metrics');
        my %z;
        $z{$1} = $2 while $b =~ /^linguamate_shm_zone_bytes\{zone="([^"]+)",kind="used"\} (\d+)/mg;
        return \%z;
    };
    my $conns = $ENV{SOAK_CONNECTIONS} // 64;
    my $out = $srv->dir . '/wrk.out';
    my $wrk = fork // die;
    if ($wrk == 0) {
        open STDOUT, '>', $out;
        exec 'wrk', '-t2', "-c$conns", "-d${dur}s", '--timeout', '5s', '-s', $lua,
             "http://127.0.0.1:$port/";
        die "wrk: $!";
    }
    my $t0 = time;
    my (@s, $max);
    my $sample = sub {
        my $rss = srv_rss($srv);
        my $z = $zones->();
        my $used = 0;
        $used += $_ for values %$z;
        push @s, { t => time - $t0, rss => $rss, zones => $z, used => $used };
        $max = $rss if !$max || $rss > $max;
        printf "soak: t=%4ds RSS master+workers %d kB, zones used %d bytes (%s)\n",
               time - $t0, $rss, $used,
               join ' ', map { "$_=$z->{$_}" } sort keys %$z;
    };
    $sample->();
    while (waitpid($wrk, WNOHANG) == 0) {
        my $next = $t0 + @s * $every;
        while (time < $next && waitpid($wrk, WNOHANG) == 0) { sleep 0.5 }
        last if time >= $t0 + $dur + 5;
        $sample->();
    }
    waitpid $wrk, 0;
    $sample->();
    my $w = do { local (@ARGV, $/) = ($out); <> } // '';
    print $w;
    my ($n) = $w =~ /(\d+) requests in/;
    my ($non2xx) = $w =~ /Non-2xx or 3xx responses: (\d+)/;
    my ($sockerr) = $w =~ /(Socket errors: .*)/;
    my ($rps) = $w =~ /Requests\/sec:\s+(\S+)/;
    my ($base) = grep { $_->{t} >= $warm } @s;
    $base //= $s[-1];
    my $last = $s[-1];
    my $grew = $last->{rss} - $base->{rss};
    my @zgrew = grep { ($last->{zones}{$_} // 0)
                       > 1.1 * ($base->{zones}{$_} // 0) + 65536 } keys %{ $last->{zones} };
    my $workers = $srv->worker_pids;
    my $crash = count_lines($srv, 'logs/error.log', qr/exited on signal|\[alert\]|\[crit\]/);
    result('soak', $grew <= $bound && !@zgrew && !$crash && $n,
           sprintf('%ds, %d connections: %s requests (%s/s), %s non-2xx, %s; RSS '
                   . 'master+workers start %d, after warm-up (t=%ds) %d, end %d, '
                   . 'max %d kB (growth %d kB, bound %d); zones used %d -> %d -> %d '
                   . 'bytes%s; crashes %d',
                   $dur, $conns, $n // '?', $rps // '?', $non2xx // 0,
                   $sockerr // 'no socket errors', $s[0]{rss}, $base->{t}, $base->{rss},
                   $last->{rss}, $max, $grew, $bound, $s[0]{used}, $base->{used},
                   $last->{used}, @zgrew ? " (GREW: @zgrew)" : '', $crash));
    $srv->stop;
    $app->stop;
    $toolkit->stop;
    exit($failed ? 1 : 0);
}

# --- (a) 20 HUP reloads during a load -------------------------------------------

if ($only{a}) {
    my $srv = server();
    my $port = $srv->port;
    my $before = metric($port, qr/^linguamate_http_requests_total\{route="health"/);
    my $rss0 = srv_rss($srv);
    my $t0 = time;
    my $kids = load_start($port, $clients, $t0 + $secs, [['GET', '/api/health']]);
    my ($reloads, $reload_fail) = (0, 0);
    for my $i (1 .. 20) {
        my $at = $t0 + $i * $secs / 21;
        sleep $at - time if $at > time;
        $srv->reload ? $reloads++ : $reload_fail++;
    }
    my $t = load_wait($kids);
    my $delta;
    # counted in the log phase, right after the answer: poll briefly
    $srv->poll(sub {
        $delta = metric($port, qr/^linguamate_http_requests_total\{route="health"/) - $before;
        $delta == $t->{sent};
    }, 5);
    my $rss1 = srv_rss($srv);
    my $crash = count_lines($srv, 'logs/error.log', qr/exited on signal|\[alert\]|\[crit\]/);
    my $fails = $t->{errors} + $t->{non2xx};
    result('a reloads', $reloads == 20 && $fails == 0 && $delta == $t->{sent} && !$crash,
           sprintf('%d reloads (%d slow) in %ds, %d requests (%.0f/s), %d failed '
                   . '(%d conn errors, %d non-2xx), counter delta %d, crashes %d, '
                   . 'RSS master+workers %d -> %d kB',
                   $reloads, $reload_fail, $secs, $t->{sent}, $t->{sent} / $secs,
                   $fails, $t->{errors}, $t->{non2xx}, $delta, $crash, $rss0, $rss1));
    $srv->stop;
}

# --- (b) kill -9 of a worker every few seconds under load -----------------------

if ($only{b}) {
    my $srv = server();
    my $port = $srv->port;
    my $rss0 = srv_rss($srv);
    my $t0 = time;
    my $mix = [
        ['GET', '/api/health'],
        ['GET', '/api/auth/session', headers => { Authorization => "Bearer $user" }],
        ['POST', '/api/auth/refresh', body => '{"refreshToken":"bad"}'],
        ['GET', '/api/admin/state', headers => $auth],
        ['GET', '/api/metrics'],
        ['POST', '/api/trpc/auth.login', body => '{"json":{"email":"k@x"}}'],
        ['GET', '/api/tiny', headers => { 'X-Key' => 'kill' }],
    ];
    my $kids = load_start($port, $clients, $t0 + $secs, $mix, retry => 1);
    my ($kills, $respawns) = (0, 0);
    my $every = $ENV{FAULTS_KILL_EVERY} // 3;
    while (time < $t0 + $secs - $every) {
        sleep $every;
        my @w = $srv->worker_pids;
        next unless @w;
        my $victim = $w[ int rand @w ];
        kill 'KILL', $victim or next;
        $kills++;
        $respawns++ if $srv->poll(sub {
            my @now = $srv->worker_pids;
            @now == 2 && !grep { $_ == $victim } @now;
        }, 10);
    }
    my $t = load_wait($kids);
    my ($worst, $bad) = zones_answer($srv);
    my ($pass, $refused, $n) = exact_limit($srv);
    my $rss1 = srv_rss($srv);
    my $signals = count_lines($srv, 'logs/error.log', qr/exited on signal 9/);
    my $unlocked = count_lines($srv, 'logs/error.log', qr/was locked by/);
    my $other = count_lines($srv, 'logs/error.log', qr/exited on signal (?!9)|\[crit\]/);
    result('b kill -9',
           $kills >= 1 && $respawns == $kills && $signals == $kills && !@$bad
           && $pass == 100 && $refused == $n - 100 && !$other && !$t->{s5xx}
           && !$t->{errors},
           sprintf('%d kills every %ds, %d respawned, %d requests, %d failed '
                   . '(%d reset in flight on a killed worker and retried once), '
                   . '%d 5xx, zones force-unlocked '
                   . 'by the master %d; after: slowest zone route %.0f ms%s, '
                   . 'limit 100 of %d parallel: %d passed, %d refused; '
                   . 'RSS %d -> %d kB',
                   $kills, $every, $respawns, $t->{sent}, $t->{errors},
                   $t->{retried}, $t->{s5xx},
                   $unlocked, 1000 * $worst, @$bad ? " (BAD: @$bad)" : '', $n,
                   $pass, $refused, $rss0, $rss1));
    $srv->stop;
}

# --- (c) STATE_DIR full or unwritable -------------------------------------------

if ($only{c}) {
    my $tmp = File::Temp::tempdir('linguamate-faults-XXXXXX', TMPDIR => 1,
                                  CLEANUP => 1);
    chmod 0755, $tmp;
    my $state = "$tmp/state";
    mkdir $state;
    my $how;
    if (system("mount -t tmpfs -o size=64k,mode=0777 tmpfs '$state' 2>/dev/null") == 0) {
        $how = 'tmpfs of 64k, filled';
    } else {
        $how = 'state files made directories (mount refused)';
    }
    my $srv = server(state => $state, logins => 3);
    my $port = $srv->port;
    my ($sf, $sb, $st) = (0, 0, 0);
    if ($how =~ /tmpfs/) {
        # fill it: every write from now on is ENOSPC
        system("dd if=/dev/zero of='$state/filler' bs=4k 2>/dev/null");
    } else {
        for my $f (glob "$state/*") { unlink $f; mkdir $f }
        mkdir "$state/flags.state";
    }
    my @errs;
    my ($s1, $b1) = jreq($port, 'PATCH', '/api/admin/flags', headers => $auth,
                         body => '{"cacheTtlSeconds":7}');
    my $tok = token(sub => 'u-2', sid => 's-full');
    my ($s2) = req($port, 'POST', '/api/admin/sessions/s-full/revoke', headers => $auth);
    my ($s3, $b3) = jreq($port, 'GET', '/api/auth/session',
                         headers => { Authorization => "Bearer $tok" });
    my %lock;
    $lock{ (req($port, 'POST', '/api/auth/refresh', body => '{"refreshToken":"x"}'))[0] }++
        for 1 .. 8;
    my ($s5) = req($port, 'GET', '/api/health');
    my ($s6, $state_json) = jreq($port, 'GET', '/api/admin/state', headers => $auth);
    my $logged = count_lines($srv, 'logs/error.log',
                             qr/No space left on device|Is a directory|cannot (rename|write|open)/);
    # space again: the next change is saved
    unlink "$state/filler";
    for my $f (glob "$state/*") { rmdir $f if -d $f }
    my ($s7) = req($port, 'PATCH', '/api/admin/flags', headers => $auth,
                   body => '{"cacheTtlSeconds":8}');
    my $saved = 0;
    if (open my $fh, '<', "$state/flags.state") {
        local $/;
        $saved = (<$fh> // '') =~ /^cacheTtlSeconds 8 /m ? 1 : 0;
        close $fh;
    }
    my $crash = count_lines($srv, 'logs/error.log', qr/exited on signal|\[alert\]/);
    my $ok = $s1 == 200 && ($b1->{flags}{cacheTtlSeconds} // -1) == 7
             && $s2 == 200 && $s3 == 401 && ($b3->{error}{reason} // '') eq 'REVOKED'
             && ($lock{429} // 0) >= 1 && $s5 == 200 && $s6 == 200
             && $logged >= 2 && $s7 == 200 && $saved && !$crash;
    result('c STATE_DIR', $ok,
           sprintf('%s: flags PATCH %d (applied: ttl %s), revoke %d then token %d %s, '
                   . 'failed refreshes %s, health %d, state %d; %d write errors logged; '
                   . 'space back: PATCH %d saved %s; crashes %d',
                   $how, $s1, $b1->{flags}{cacheTtlSeconds} // '?', $s2, $s3,
                   $b3->{error}{reason} // '', statuses(\%lock), $s5, $s6, $logged,
                   $s7, $saved ? 'yes' : 'no', $crash));
    $srv->stop;
    if ($how =~ /tmpfs/) {
        $srv->poll(sub { system("umount '$state' 2>/dev/null") == 0 }, 10)
            or print "faults(c): could not unmount $state\n";
    }
}

# --- (d) a flapping toolkit behind the breaker ----------------------------------

if ($only{d}) {
    my $srv = server();
    my $port = $srv->port;
    my $t0 = time;
    my $dur = $secs;
    my $kids = load_start($port, 3, $t0 + $dur,
                          [['POST', '/api/toolkit/v1/text/llm', body => '{"prompt":"x"}']],
                          pause => 0.05);
    my (@states, %seen);
    my ($half_since, $half_max, $last) = (undef, 0, '');
    while (time < $t0 + $dur) {
        my (undef, $h) = jreq($port, 'GET', '/api/toolkit/health', timeout => 5);
        my $s = $h->{breaker} // '?';
        $s = $s->{state} if ref $s;
        if ($s ne $last) { push @states, $s; $last = $s }
        $seen{$s}++;
        if ($s eq 'HALF_OPEN') {
            $half_since //= time;
            $half_max = time - $half_since if time - $half_since > $half_max;
        } else {
            undef $half_since;
        }
        sleep 0.1;
    }
    my $t = load_wait($kids);
    my %to = map { $_ => metric($port, qr/^linguamate_circuit_breaker_transitions_total\{name="toolkit",to="$_"/) }
             qw(open half_open closed);
    # healthy again: the breaker closes
    my $closed = $srv->poll(sub {
        my $phase = int((time - $flap_t0) / $flap) % 2;
        req($port, 'POST', '/api/toolkit/v1/text/llm', body => '{"prompt":"x"}') unless $phase;
        my (undef, $h) = jreq($port, 'GET', '/api/toolkit/health');
        my $s = $h->{breaker} // '';
        $s = $s->{state} if ref $s;
        $s eq 'CLOSED';
    }, 4 * $flap + 10);
    my $cycles = (sort { $a <=> $b } values %to)[0];
    result('d flapping toolkit',
           $cycles >= 3 && $half_max < 10 && $closed && !$t->{errors},
           sprintf('%ds, flap every %ds, %d calls (%s); transitions to OPEN %d, '
                   . 'HALF_OPEN %d, CLOSED %d; longest HALF_OPEN seen %.1f s; '
                   . 'closed once healthy: %s',
                   $dur, $flap, $t->{sent}, statuses($t->{status}), $to{open},
                   $to{half_open}, $to{closed}, $half_max, $closed ? 'yes' : 'no'));
    $srv->stop;
}

# --- (e) zones far too small ----------------------------------------------------

if ($only{e}) {
    my $srv = server();
    my $port = $srv->port;
    my $keys = $ENV{FAULTS_TINY_KEYS} // 6000;
    my $per = int($keys / $clients);
    my $t0 = time;
    my @kids;
    for my $c (1 .. $clients) {
        pipe my $r, my $w or die;
        my $pid = fork // die;
        if ($pid == 0) {
            close $r;
            my %n;
            for my $i (1 .. $per) {
                my $k = "client-$c-key-$i-with-some-length";
                $n{ (req($port, 'GET', '/api/tiny', headers => { 'X-Key' => $k }))[0] }++;
                # and a login failure for as many accounts (a 32k lockout zone)
                $n{ (req($port, 'POST', '/api/auth/tiny',
                         body => qq({"email":"$k\@example.com","refreshToken":"x"})))[0] }++
                    if $i % 4 == 0;
            }
            print $w join(',', map { "$_=$n{$_}" } keys %n), "\n";
            close $w;
            POSIX::_exit(0);
        }
        close $w;
        push @kids, [$pid, $r];
    }
    my $t = load_wait(\@kids);
    my $dt = time - $t0;
    $srv->poll(sub { count_lines($srv, 'logs/error.log', qr/is full, evicted/) }, 3);
    my $lines = count_lines($srv, 'logs/error.log', qr/is full, evicted/);
    my $evicted = metric($port, qr/^linguamate_shm_zone_evicted_total\{zone="tiny(_lockout)?"/);
    my $uncounted = count_lines($srv, 'logs/error.log', qr/could not allocate|no memory/);
    # at most one line a second per zone and worker
    my $bound = 2 * 2 * (int($dt) + 2);
    result('e tiny zones',
           $t->{s5xx} == 0 && $t->{errors} == 0 && $lines >= 1 && $lines <= $bound
           && $uncounted <= $bound && $evicted > 0,
           sprintf('%d requests in %.1f s (%s) over %d limit keys and %d accounts '
                   . 'in 32k zones: %d evicted, %d eviction log lines (bound %d), '
                   . '%d "no room" lines (bound %d), %d 5xx',
                   $t->{sent}, $dt, statuses($t->{status}), $per * $clients,
                   int($per / 4) * $clients, $evicted, $lines, $bound, $uncounted,
                   $bound, $t->{s5xx}));
    $srv->stop;
}

# --- (f) a worker killed while it holds a zone's lock ---------------------------
#
# gdb stops a worker in ngx_shmtx_unlock, i.e. with a zone's mutex still
# held (the module takes it in the rate limiter), and kills it there: the
# master must log that it unlocked the dead worker's mutex, and every zone
# must go on serving, with the limit exact.

if ($only{f} && !system('command -v gdb >/dev/null 2>&1')) {
    my $srv = server();
    my $port = $srv->port;
    my ($victim) = $srv->worker_pids;
    my $gdb = fork // die;
    if ($gdb == 0) {
        open STDOUT, '>', $srv->dir . '/logs/gdb.log';
        open STDERR, '>&', \*STDOUT;
        exec 'timeout', '60', 'gdb', '-p', $victim, '-batch', '-nx',
             '-ex', 'set pagination off', '-ex', 'handle SIGPIPE nostop noprint',
             '-ex', 'break ngx_shmtx_unlock', '-ex', 'continue',
             '-ex', 'bt 4', '-ex', 'kill', '-ex', 'quit'
            or POSIX::_exit(1);
    }
    # requests until the victim takes a lock and gdb kills it there
    my $deadline = time + 60;
    my $sent = 0;
    while (time < $deadline && kill(0, $victim)) {
        req($port, 'GET', '/api/tiny', headers => { 'X-Key' => "f$sent" }, timeout => 2);
        $sent++;
        last if waitpid($gdb, WNOHANG) == $gdb;
    }
    waitpid $gdb, 0;
    my $bt = $srv->slurp('logs/gdb.log');
    my $held = $bt =~ /ngx_shmtx_unlock/ && $bt =~ /ngx_http_linguamate_/;
    my $unlocked = $srv->poll(sub {
        count_lines($srv, 'logs/error.log', qr/was locked by $victim/) }, 10);
    my $respawned = $srv->poll(sub {
        my @w = $srv->worker_pids; @w == 2 && !grep { $_ == $victim } @w }, 10);
    my ($worst, $bad) = zones_answer($srv);
    my ($pass, $refused, $n) = exact_limit($srv);
    result('f killed holding a lock',
           $held && $unlocked && $respawned && !@$bad && $pass == 100
           && $refused == $n - 100,
           sprintf('worker %d stopped in ngx_shmtx_unlock from the module (%s) '
                   . 'after %d requests and killed; the master logged "was '
                   . 'locked by %d": %s; respawned: %s; after: slowest zone '
                   . 'route %.0f ms%s, limit 100 of %d parallel: %d passed',
                   $victim, $held ? 'yes' : 'NO', $sent, $victim,
                   $unlocked ? 'yes' : 'NO', $respawned ? 'yes' : 'NO',
                   1000 * $worst, @$bad ? " (BAD: @$bad)" : '', $n, $pass));
    $srv->stop;
}

$app->stop;
$toolkit->stop;
exit($failed ? 1 : 0);
