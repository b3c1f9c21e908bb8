# vim:set ft= ts=4 sw=4 et fdm=marker:
#
# The Redis client itself (ngx_http_linguamate_redis.c, docs/cluster.md)
# against servers that misbehave: fake Redis servers (small Perl TCP
# servers forked here) that speak first (protected mode, maxclients),
# accept and close, answer garbage, a huge array count or a huge bulk;
# Debian's redis-server with a wrong password, a database number, a
# reload, and TLS (trusted, untrusted, another name, an IP address).  No
# input may crash a worker; a server that never gets READY is retried
# with a growing delay.  Conditions are polled, never slept for.

use strict;
use warnings;
use lib 't/lib';
use Test::More;
use HTTP::Tiny;
use IO::Socket::INET;
use POSIX ();
use Time::HiRes qw(time sleep);
use File::Temp qw(tempdir);
use Linguamate::Cluster;
use Linguamate::Prom;

plan skip_all => Linguamate::Cluster::no_redis_reason()
    if Linguamate::Cluster::no_redis_reason();

my $admin = 'admin-token-admin-token-admin-token-0';
my $secret = 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa';
my $http = HTTP::Tiny->new(timeout => 10, keep_alive => 0);
my $poll = \&Linguamate::Cluster::poll;
my %children;                       # the fake servers and TLS redis-servers

END {
    local $?;                       # the test's exit status, not a kill's
    for my $pid (keys %children) {
        next unless $children{$pid} == $$;
        kill 'KILL', $pid;
        waitpid $pid, 0;
    }
}

# --- helpers -----------------------------------------------------------------

# an nginx (one worker: one command client and one subscriber) whose
# REDIS_URL is $url; not started
sub replica {
    my ($url, %o) = @_;
    my $srv = Linguamate::Server->new(workers => $o{workers} // 1,
                                      main => $o{main} // '');
    my $state = $srv->dir . '/state';
    mkdir $state;
    chmod 0777, $state;
    $srv->configure(<<"_HTTP_", <<'_SERVER_');
    linguamate_jwt_secret $secret;
    linguamate_admin_token $admin;
    linguamate_state_dir $state;
    linguamate_redis_url "$url";
    linguamate_cluster_sync_ms 100;
_HTTP_
        location = /api/metrics { linguamate_endpoint metrics; }
        location /api/admin/ {
            linguamate_lockout off;
            linguamate_endpoint admin;
        }
_SERVER_
    return $srv;
}

sub metric {
    my ($srv, $name) = @_;
    my $r = $http->get($srv->url('/api/metrics'));
    return undef unless $r->{success};
    return prom_samples($r->{content})->{$name};
}

sub up_is {
    my ($srv, $v) = @_;
    return sub { (metric($srv, 'linguamate_redis_up') // -1) == $v };
}

sub log_has {
    my ($srv, $re) = @_;
    return sub { $srv->slurp('logs/error.log') =~ $re };
}

sub no_crash {
    my ($srv, $what, @workers) = @_;
    my $log = $srv->slurp('logs/error.log');
    unlike $log, qr/exited on signal|\[alert\]/, "$what: no worker crashed";
    is_deeply [$srv->worker_pids], \@workers,
              "$what: the same worker still serves";
}

# what a fake Redis of the mode says as soon as it accepts (then closes)
my %greeting = (
    denied => "-DENIED Redis is running in protected mode because "
            . "protected mode is enabled\r\n",
    maxclients => "-ERR max number of clients reached\r\n",
    # no reply type begins with "?": never read as a reply (and goes on)
    garbage => '?' . join('', map { chr(int rand 256) } 1 .. 4096),
);

# a fake Redis: a forked child listening on a free port, a child per
# connection; every accepted connection is one line ("conn TIME") in
# its log.  $mode: what it does with a connection.
sub fake_redis {
    my ($mode) = @_;
    my $dir = tempdir('linguamate-fake-XXXXXX', TMPDIR => 1, CLEANUP => 1);
    my $ls = IO::Socket::INET->new(Listen => 64, LocalAddr => '127.0.0.1:0',
                                   ReuseAddr => 1) or die "listen: $!";
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        $SIG{CHLD} = 'IGNORE';
        $SIG{PIPE} = 'IGNORE';
        open my $log, '>>', "$dir/conns" or POSIX::_exit(1);
        $log->autoflush(1);
        while (1) {
            my $c = $ls->accept or next;
            # what is said first, at once: before nginx may have seen
            # its connect complete
            syswrite $c, $greeting{$mode} if $greeting{$mode};
            printf $log "conn %.6f\n", time;
            my $k = fork;
            if (defined $k && $k == 0) {
                fake_session($c, $mode, $log);
                POSIX::_exit(0);
            }
            close $c;
        }
    }
    my $port = $ls->sockport;
    close $ls;
    $children{$pid} = $$;
    return { pid => $pid, port => $port, dir => $dir };
}

sub fake_session {
    my ($c, $mode, $log) = @_;
    $c->autoflush(1);
    my $buf;
    return if $greeting{$mode} && $mode ne 'garbage';
    return if $mode eq 'flap';
    # the first command (PING, AUTH or SELECT): the answer of the mode
    sysread($c, $buf, 65536) or return;
    if ($mode eq 'bigarray') {
        print $c "*2000000000\r\n";
    } elsif ($mode eq 'negarray') {
        print $c "*-7\r\n";
    } elsif ($mode eq 'hugebulk') {
        # 100 MB of a 2 GB string, or less if the client hangs up
        print $c "\$2000000000\r\n";
        my $chunk = 'a' x 1048576;
        my $sent = 0;
        for (1 .. 100) {
            my $n = syswrite($c, $chunk) or last;
            $sent += $n;
        }
        printf $log "sent %d\n", $sent;
    }
    1 while sysread($c, $buf, 65536);
}

sub fake_conns {
    my ($f) = @_;
    open my $fh, '<', "$f->{dir}/conns" or return ();
    return map { /^conn (\S+)/ ? $1 : () } <$fh>;
}

sub fake_stop {
    my ($f) = @_;
    kill 'KILL', $f->{pid};
    waitpid $f->{pid}, 0;
    delete $children{$f->{pid}};
}

# --- REDIS_URL that is not valid: nginx -t fails, the password unsaid ------

{
    my $bin = $ENV{TEST_NGINX_BINARY} // 'nginx';
    for my $url ('redis://:s3cret-pw-1@/0',
                 'redis://:s3cret-pw-1@127.0.0.1:99999/0',
                 'redis://user:s3cret-pw-1@127.0.0.1/zero',
                 'redis://:s3cret-pw-1%zz@127.0.0.1/0',
                 'http://:s3cret-pw-1@127.0.0.1/0')
    {
        my $srv = replica($url);
        my $dir = $srv->dir;
        my $out = `'$bin' -t -p '$dir/' -c conf/nginx.conf \\
                   -e logs/error.log 2>&1`;
        my $rc = $?;
        $out .= $srv->slurp('logs/error.log');
        (my $shown = $url) =~ s/s3cret-pw-1/PASSWORD/;
        isnt $rc, 0, "nginx -t refuses REDIS_URL $shown";
        like $out, qr/REDIS_URL/, "$shown: the message names REDIS_URL";
        unlike $out, qr/s3cret/, "$shown: the message has no password";
    }
}

# --- fake servers: no crash, a growing delay --------------------------------

# five connections of each of the $clients clients: from the first to
# the last at least 1.5 s with the delay growing (100 ms doubling:
# 100+200+400+800 before a client's 5th); about 0.5 s without
sub backs_off {
    my ($f, $what, $clients) = @_;
    my $n = 5 * $clients;
    my @t;
    ok $poll->(sub { @t = fake_conns($f); @t >= $n }, 30),
       "$what: retried ($n connections)";
    my $span = @t >= $n ? $t[$n - 1] - $t[0] : 0;
    diag sprintf "%s: %d connections in %.2f s", $what, $n, $span;
    cmp_ok $span, '>=', 1.2, "$what: with a growing delay";
}

for my $case (['denied', qr/refused: DENIED Redis is running in protected/],
              ['maxclients', qr/refused: ERR max number of clients/],
              ['flap', qr/closed by redis|read failed|send failed/],
              ['bigarray', qr/: protocol error;/],
              ['negarray', qr/: protocol error;/],
              ['garbage', qr/: protocol error;/])
{
    my ($mode, $re) = @$case;
    my $f = fake_redis($mode);
    my $srv = replica("redis://127.0.0.1:$f->{port}/0", workers => 2);
    $srv->start;
    my @w = $srv->worker_pids;
    ok $poll->(log_has($srv, $re), 15), "$mode: the error is logged"
        or diag $srv->slurp('logs/error.log');
    # two workers: two command clients and a subscriber
    backs_off($f, $mode, 3);
    ok up_is($srv, 0)->(), "$mode: linguamate_redis_up is 0";
    no_crash($srv, $mode, @w);
    if ($greeting{$mode}) {
        # a worker's first connection is where a server that speaks
        # first could find no reader: new workers, new first connections
        for my $n (1 .. 3) {
            my $seen = () = fake_conns($f);
            ok $srv->reload, "$mode: reload $n";
            ok $poll->(sub { fake_conns($f) >= $seen + 3 }, 10),
               "$mode: reload $n: the new workers connected";
        }
        unlike $srv->slurp('logs/error.log'), qr/exited on signal/,
               "$mode: no worker crashed through the reloads";
    }
    $srv->stop;
    fake_stop($f);
}

{
    my $f = fake_redis('hugebulk');
    my $srv = replica("redis://127.0.0.1:$f->{port}/0");
    $srv->start;
    my @w = $srv->worker_pids;
    my @sent;
    my $streams = sub {
        open my $fh, '<', "$f->{dir}/conns" or return 0;
        @sent = map { /^sent (\d+)/ ? $1 : () } <$fh>;
        return @sent >= 2;
    };
    ok $poll->($streams, 60), 'huge bulk: two connections streamed';
    diag 'huge bulk: MB sent before the client hung up: '
         . join ' ', map { sprintf '%.1f', $_ / 1048576 } @sent;
    # at 64 MB unread (or at the 2 s reply timeout on a slow machine) the
    # client hangs up: the socket buffers hold a few MB more, never 100
    ok !grep({ $_ >= 100 * 1048576 } @sent),
       'huge bulk: the client hung up before the 100 MB were sent';
    my $log = $srv->slurp('logs/error.log');
    ok $log =~ /: reply too large;/ || $log =~ /: no reply in time;/,
       'huge bulk: refused' or diag $log;
    diag 'huge bulk: "reply too large" was not reached in the 2 s reply '
         . 'timeout: a slow machine' unless $log =~ /: reply too large;/;
    ok $poll->(sub { fake_conns($f) >= 2 }, 15), 'huge bulk: retried';
    ok up_is($srv, 0)->(), 'huge bulk: linguamate_redis_up is 0';
    no_crash($srv, 'huge bulk', @w);
    $srv->stop;
    fake_stop($f);
}

# --- Debian's redis-server ----------------------------------------------------

my $redis = Linguamate::Cluster::Redis->new;
$redis->start;
my $rport = $redis->port;
my $cli = -x '/usr/bin/redis-cli' ? '/usr/bin/redis-cli' : undef;

# a database number: changes land in that database
SKIP: {
    skip 'redis-cli is not installed (Debian package redis-tools)', 4
        unless $cli;
    my $srv = replica("redis://127.0.0.1:$rport/3");
    $srv->start;
    ok $poll->(up_is($srv, 1), 10), 'db 3: up';
    my $r = $http->request('PATCH', $srv->url('/api/admin/flags'), {
        headers => { Authorization => "Bearer $admin",
                     'Content-Type' => 'application/json' },
        content => '{"maintenance":true}' });
    is $r->{status}, 200, 'db 3: a flag set';
    my $key = '{linguamate}:state:flags.state';
    ok $poll->(sub {
        `$cli -p $rport -n 3 hget '$key' maintenance` =~ /\S/ }, 10),
       'db 3: the change is in database 3';
    is `$cli -p $rport -n 0 exists '$key'` + 0, 0,
       'db 3: and not in database 0';

    # a reload closes the old workers' connections: not a lost Redis
    my $before = metric($srv, 'linguamate_redis_reconnects_total');
    ok $srv->reload, 'reload: done';
    ok $srv->reload, 'reload: again';
    ok $poll->(up_is($srv, 1), 10), 'reload: up';
    is metric($srv, 'linguamate_redis_reconnects_total'), $before,
       'reload: no reconnect counted';
    unlike $srv->slurp('logs/error.log'), qr/\[alert\]|open socket/,
           'reload: the old workers closed their connections';
    $srv->stop;
}

# a wrong password: refused, retried, never a crash; the right one works
{
    is $redis->command('CONFIG', 'SET', 'requirepass', 'good-pw'), '+OK',
       'password: redis requires one';
    # AUTH refused so far (ACL LOG counts them)
    my $denied = sub {
        my $s = IO::Socket::INET->new("127.0.0.1:$rport") or return 0;
        print $s "AUTH good-pw\r\nACL LOG 1\r\nQUIT\r\n";
        local $/;
        my $all = <$s> // '';
        return $all =~ /count\r\n:(\d+)/ ? $1 : 0;
    };
    my $srv = replica("redis://:bad-pw\@127.0.0.1:$rport/0");
    $srv->start;
    my @w = $srv->worker_pids;
    ok $poll->(log_has($srv, qr/AUTH refused: (?:WRONGPASS|ERR)/), 10),
       'password: AUTH refused is logged' or diag $srv->slurp('logs/error.log');
    ok $poll->(sub { $denied->() >= 4 }, 15), 'password: retried';
    ok up_is($srv, 0)->(), 'password: linguamate_redis_up is 0';
    unlike $srv->slurp('logs/error.log'), qr/bad-pw/,
           'password: never in the log';
    no_crash($srv, 'password', @w);
    $srv->stop;

    $srv = replica("redis://:good-pw\@127.0.0.1:$rport/0");
    $srv->start;
    ok $poll->(up_is($srv, 1), 10), 'password: the right one is up';
    $srv->stop;
    $redis->command('AUTH', 'good-pw');
}

# --- TLS (rediss://) --------------------------------------------------------

SKIP: {
    my $openssl = -x '/usr/bin/openssl' ? '/usr/bin/openssl' : undef;
    skip 'openssl is not installed', 12 unless $openssl;

    my $d = tempdir('linguamate-tls-XXXXXX', TMPDIR => 1, CLEANUP => 1);
    chmod 0755, $d;                  # the workers read the CA
    my $run = sub {
        system("$openssl @_ >>'$d/openssl.log' 2>&1") == 0
            or die "openssl @_ failed: " . `cat '$d/openssl.log'`;
    };
    # two CAs: "ca" is trusted by nginx, "other" is not
    for my $ca ('ca', 'other') {
        $run->("req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=$ca"
               . " -keyout '$d/$ca.key' -out '$d/$ca.pem'");
    }
    # name => [CA, subjectAltName]
    my %cert = (good  => ['ca', 'DNS:localhost,IP:127.0.0.1'],
                other => ['ca', 'DNS:redis.example'],
                rogue => ['other', 'DNS:localhost,IP:127.0.0.1']);
    for my $n (sort keys %cert) {
        my ($ca, $san) = @{ $cert{$n} };
        open my $fh, '>', "$d/$n.ext" or die $!;
        print $fh "subjectAltName=$san\n";
        close $fh;
        $run->("req -newkey rsa:2048 -nodes -subj /CN=$n"
               . " -keyout '$d/$n.key' -out '$d/$n.csr'");
        $run->("x509 -req -in '$d/$n.csr' -CA '$d/$ca.pem'"
               . " -CAkey '$d/$ca.key' -CAcreateserial -days 2"
               . " -extfile '$d/$n.ext' -out '$d/$n.pem'");
    }

    # a redis-server on a TLS port with that certificate
    my %port;
    for my $n (sort keys %cert) {
        my $port = Linguamate::Server::free_port();
        my $pid = fork // die "fork: $!";
        if ($pid == 0) {
            open STDIN, '<', '/dev/null';
            open STDOUT, '>>', "$d/redis-$n.log";
            open STDERR, '>&', \*STDOUT;
            no warnings 'exec';
            exec Linguamate::Cluster::redis_bin(), '--port', '0',
                 '--tls-port', $port, '--bind', '127.0.0.1',
                 '--tls-cert-file', "$d/$n.pem", '--tls-key-file', "$d/$n.key",
                 '--tls-ca-cert-file', "$d/$cert{$n}[0].pem",
                 '--tls-auth-clients', 'no', '--save', '',
                 '--appendonly', 'no', '--dir', $d;
            POSIX::_exit(127);
        }
        $children{$pid} = $$;
        $port{$n} = $port;
    }
    my $listening = sub {
        !grep { !IO::Socket::INET->new("127.0.0.1:$port{$_}") } keys %port
    };
    skip 'redis-server without TLS: ' . `cat '$d/redis-good.log'`, 12
        unless $poll->($listening, 10);

    my $main = "env SSL_CERT_FILE=$d/ca.pem;";
    for my $case (['trusted name', "localhost:$port{good}", 1],
                  ['IP address in the certificate', "127.0.0.1:$port{good}", 1],
                  ['another name', "localhost:$port{other}", 0,
                   qr/certificate is not of "localhost"/],
                  ['IP address not in the certificate',
                   "127.0.0.1:$port{other}", 0,
                   qr/certificate is not of "127\.0\.0\.1"/],
                  ['untrusted CA', "localhost:$port{rogue}", 0,
                   qr/certificate of "localhost" not trusted/])
    {
        my ($what, $hp, $ok, $re) = @$case;
        my $srv = replica("rediss://$hp/0", main => $main);
        $srv->start;
        my @w = $srv->worker_pids;
        if ($ok) {
            ok $poll->(up_is($srv, 1), 15), "TLS, $what: up"
                or diag $srv->slurp('logs/error.log');
        } else {
            ok $poll->(log_has($srv, $re), 15), "TLS, $what: refused"
                or diag $srv->slurp('logs/error.log');
            ok up_is($srv, 0)->(), "TLS, $what: linguamate_redis_up is 0";
            unlike $srv->slurp('logs/error.log'), qr/\[crit\]/,
                   "TLS, $what: no [crit] from nginx";
        }
        $srv->stop;
    }
}

$redis->stop;

done_testing;
