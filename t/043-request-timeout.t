# vim:set ft= ts=4 sw=4 et fdm=marker:
#
# REQUEST_TIMEOUT_MS bounds a proxied call's total time, which nginx's
# proxy_read_timeout (per read) does not: with it at 1000 and reads
# allowed 10 s, an app or a toolkit that answers after 3 s, or trickles
# its answer for 3 s, is ended after about 1 s with 504 UPSTREAM_TIMEOUT
# (the tRPC shape under /api/trpc/), and the breaker counts a failure.

use strict;
use warnings;
use lib 't/lib';
use Test::More;
use JSON::PP;
use HTTP::Tiny;
use POSIX ();
use IO::Socket::INET;
use Time::HiRes qw(time sleep);
use Linguamate::Server;
use Linguamate::Upstream;

my $json = JSON::PP->new;
my $srv = Linguamate::Server->new(workers => 2);
my $dir = $srv->dir;
my $admin = 'admin-token-admin-token-admin-token-0';

sub count { open my $h, '>>', "$dir/hits" or die; print $h "$_[0]\n"; close $h }
sub hits { my $w = shift; open my $h, '<', "$dir/hits" or return 0; scalar grep { /^$w$/ } <$h> }

# each slow answer is written by a child of its own, so that the fake
# upstream goes on accepting while one hangs
my $up = Linguamate::Upstream->new(sub {
    my ($method, $uri) = @_;
    my $what = $uri =~ /slow/ ? 'slow' : $uri =~ /trickle/ ? 'trickle' : 'fast';
    count($what);
    return (200, '{"result":{"data":{"json":"fast"}}}') if $what eq 'fast';
    return ('RAW', sub {
        my $c = shift;
        my $pid = fork // die;
        return if $pid;
        if ($what eq 'slow') {
            sleep 3;
            print $c "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}";
        } else {
            # a header at once, then a byte every 0.3 s for 3 s: no read
            # ever waits long
            $c->autoflush(1);
            print $c "HTTP/1.1 200 OK\r\nContent-Length: 10\r\nConnection: close\r\n\r\n";
            for (1 .. 10) { sleep 0.3; print $c 'x' }
        }
        close $c;
        POSIX::_exit(0);
    });
});
my $port = $up->port;

$srv->configure(<<"_HTTP_", <<"_SERVER_");
    linguamate_admin_token $admin;
    linguamate_log_file logs/events.log;
    linguamate_request_timeout_ms 1000;
    linguamate_app_upstream_url http://127.0.0.1:$port;
    linguamate_toolkit_url http://127.0.0.1:$port;
    linguamate_breaker app failure_threshold=100 volume_threshold=100;
    linguamate_breaker toolkit failure_threshold=100 volume_threshold=100;
_HTTP_
        error_page 400 404 405 413 500 502 503 504 /_linguamate/error;
        location = /_linguamate/error { internal; linguamate_endpoint error; }
        location /api/trpc/ {
            linguamate_trpc on;
            linguamate_circuit_breaker app;
            proxy_pass \$linguamate_app_upstream;
            proxy_read_timeout 10s;
        }
        location = /api/toolkit/v1/text/llm {
            linguamate_circuit_breaker toolkit;
            linguamate_toolkit /text/llm/slow;
        }
        location = /api/toolkit/v1/images/generate {
            linguamate_circuit_breaker toolkit;
            linguamate_toolkit /images/generate/fast;
        }
        location = /_linguamate/toolkit {
            internal;
            proxy_pass \$linguamate_toolkit_target;
            proxy_buffering off;
            proxy_read_timeout 10s;
        }
        location /api/admin/ { linguamate_endpoint admin; }
_SERVER_
$srv->start;

# a new connection each time: HTTP::Tiny would repeat a GET cut off on a
# reused one
my $http = HTTP::Tiny->new(timeout => 10, keep_alive => 0);
sub timed {
    my ($method, $path) = @_;
    my $t = time;
    my $r = $http->request($method, $srv->url($path),
                           { headers => { 'Content-Type' => 'application/json' },
                             ($method eq 'POST' ? (content => '{"messages":[]}') : ()) });
    $r->{elapsed} = time - $t;
    $r->{json} = eval { $json->decode($r->{content}) };
    return $r;
}
sub breaker {
    my $s = eval { $json->decode($http->get($srv->url('/api/admin/state'),
                   { headers => { Authorization => "Bearer $admin" } })->{content}) } || {};
    my $b = $s->{breakers} // {};
    $b = $b->{circuits} // $b;
    return $b->{$_[0]} // {};
}

# --- the tRPC route ----------------------------------------------------------

my $r = timed('GET', '/api/trpc/fast.query');
is $r->{status}, 200, 'a fast call passes';

$r = timed('GET', '/api/trpc/slow.query');
is $r->{status}, 504, 'an app answering after 3 s: 504';
cmp_ok $r->{elapsed}, '>=', 0.9, sprintf('not before the budget (%.2f s)', $r->{elapsed});
cmp_ok $r->{elapsed}, '<', 2.5, 'after about REQUEST_TIMEOUT_MS, not 3 s';
is $r->{json}{error}{json}{data}{code}, 'GATEWAY_TIMEOUT', 'a tRPC error: GATEWAY_TIMEOUT';
is $r->{json}{error}{json}{data}{httpStatus}, 504, '... httpStatus 504';
is $r->{json}{error}{json}{data}{path}, 'slow.query', '... for the procedure';

my $b = breaker('app');
is $b->{failures}, 1, 'the breaker "app" counted a failure';

# one raw request: HTTP::Tiny would send a GET that was cut off again
{
    my $t = time;
    my $c = IO::Socket::INET->new('127.0.0.1:' . $srv->port) or die;
    print $c "GET /api/trpc/trickle.query HTTP/1.1\r\nHost: x\r\n"
           . "Connection: close\r\n\r\n";
    local $/;
    my $resp = <$c> // '';
    my $elapsed = time - $t;
    cmp_ok $elapsed, '<', 2.5,
           sprintf('an answer trickling for 3 s is cut after about 1 s (%.2f s)', $elapsed);
    my ($body) = $resp =~ /\r\n\r\n(.*)\z/s;
    cmp_ok length($body // ''), '<', 10, '... the client never sees it complete';
}
is hits('trickle'), 1, '... asked once';
is breaker('app')->{failures}, 2, '... and the breaker counts it as a failure';

# --- the toolkit ---------------------------------------------------------------

my $before = hits('slow');
$r = timed('POST', '/api/toolkit/v1/text/llm');
is $r->{status}, 504, 'a toolkit answering after 3 s: 504';
cmp_ok $r->{elapsed}, '<', 2.5, sprintf('after about 1 s (%.2f s)', $r->{elapsed});
is $r->{json}{error}{code}, 'UPSTREAM_TIMEOUT', 'the envelope: UPSTREAM_TIMEOUT';
is hits('slow') - $before, 1, 'no retry once the budget is spent';
is breaker('toolkit')->{failures}, 1, 'the breaker "toolkit" counted a failure';

$r = timed('POST', '/api/toolkit/v1/images/generate');
is $r->{status}, 200, 'a fast toolkit call passes';

# --- nothing left behind -----------------------------------------------------

$r = timed('GET', '/api/trpc/fast.query');
is $r->{status}, 200, 'the workers serve on';
$srv->stop;
my $err = $srv->slurp('logs/error.log');
like $err, qr/took REQUEST_TIMEOUT_MS \(1000 ms\); ending its upstream/,
     'the cut is logged at info';
unlike $err, qr/\[(alert|crit|emerg)\]|exited on signal/, 'no alert, no crash';

done_testing();
