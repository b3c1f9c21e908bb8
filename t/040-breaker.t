# vim:set ft= ts=4 sw=4 et fdm=marker:
#
# Circuit breakers with a real master and two workers in front of a fake
# upstream we control: opening at the threshold and not below the volume,
# fast failure without upstream traffic while open, exactly one probe
# across the workers when half-open, closing on success, re-opening on a
# failed probe, failures ageing out, 4xx not counted, connect errors
# counted, manual reset, the detailed health and metrics, and the state
# kept across a HUP reload.

use strict;
use warnings;
use lib 't/lib';
use Test::More;
use JSON::PP;
use HTTP::Tiny;
use POSIX ();
use Time::HiRes qw(sleep time);
use Linguamate::Server;
use Linguamate::Upstream;

my $json = JSON::PP->new;
my $srv = Linguamate::Server->new(workers => 2);
my $dir = $srv->dir;
my $admin = 'admin-token-admin-token-admin-token-0';

sub set_mode { open my $f, '>', "$dir/mode" or die; print $f shift; close $f }
sub hits { -s "$dir/hits" // 0 }
set_mode('ok');

my $up = Linguamate::Upstream->new(sub {
    my ($method, $uri) = @_;
    open my $h, '>>', "$dir/hits"; print $h '.'; close $h;
    my $mode = do { open my $f, '<', "$dir/mode"; local $/; <$f> } // 'ok';
    return (500, '{"e":1}') if $mode eq 'fail';
    return (429, '{"e":1}') if $mode eq '429';
    return (404, '{"e":1}') if $mode eq '404';
    if ($mode eq 'slow') { sleep 1.5; return (200, '{"ok":true}') }
    return (200, '{"ok":true}');
});
my $port = $up->port;
my $dead = Linguamate::Server::free_port();

my $conf_http = <<"_HTTP_";
    linguamate_admin_token $admin;
    linguamate_log_file logs/events.log;
    linguamate_request_timeout_ms 10000;
    linguamate_breaker toolkit failure_threshold=3 volume_threshold=5 reset_timeout=1s monitoring_period=60s;
    linguamate_breaker short failure_threshold=3 volume_threshold=3 reset_timeout=1s monitoring_period=1s;
    linguamate_breaker dead failure_threshold=2 volume_threshold=2 reset_timeout=30s;
_HTTP_
my $conf_server = <<"_SERVER_";
        location /api/tk/ {
            linguamate_route toolkit;
            linguamate_circuit_breaker toolkit;
            proxy_pass http://127.0.0.1:$port/;
        }
        location /api/short/ {
            linguamate_circuit_breaker short;
            proxy_pass http://127.0.0.1:$port/;
        }
        location /api/dead/ {
            linguamate_circuit_breaker dead;
            proxy_pass http://127.0.0.1:$dead/;
        }
        location = /api/health/detailed { linguamate_endpoint health_detailed; }
        location = /api/metrics { linguamate_endpoint metrics; }
        location /api/admin/ { linguamate_endpoint admin; }
_SERVER_
$srv->configure($conf_http, $conf_server);
$srv->start;

my $http = HTTP::Tiny->new(timeout => 10);
sub tk { $http->get($srv->url('/api/tk/x')) }
sub events { grep { /"evt":"circuit_/ } split /\n/, $srv->slurp('logs/events.log') }
sub detailed { eval { $json->decode($srv->get('/api/health/detailed')->{content}) } || {} }
sub reset_all {
    $http->post($srv->url('/api/admin/breakers/reset'),
                { headers => { Authorization => "Bearer $admin" } });
}

# --- below the volume threshold it stays closed ---------------------------

set_mode('fail');
is tk()->{status}, 500, "failure $_ passes through" for 1 .. 2;
set_mode('ok');
is tk()->{status}, 200, 'still closed: 2 failures in 3 requests (volume 5)';

# --- opening at the threshold ---------------------------------------------

tk();
set_mode('fail');
is tk()->{status}, 500, 'the third failure, fifth request';
my $r = tk();
is $r->{status}, 503, 'open: the next call fails fast';
my $e = eval { $json->decode($r->{content}) } || {};
is $e->{error}{code}, 'CIRCUIT_OPEN', 'CIRCUIT_OPEN';
is $e->{error}{message}, 'Circuit breaker is OPEN for toolkit', 'the original message';
ok $e->{error}{retryAfter} >= 1, 'retryAfter';
ok $r->{headers}{'retry-after'}, 'Retry-After';

my $before = hits();
tk() for 1 .. 10;
is hits(), $before, 'no upstream traffic while open';

my @opened = grep { /"evt":"circuit_opened"/ } events();
is scalar @opened, 1, 'one circuit_opened line';
like $opened[0], qr/"level":50,.*"msg":"Circuit breaker opened due to failures".*"breaker":"toolkit".*"failures":3,"recentRequests":5,"failureRate":0\.60/,
     'at error, with failures, recent requests and the failure rate';

my $d = detailed();
is $d->{status}, 'degraded', 'detailed health: degraded';
is $d->{checks}{circuitBreakers}{details}{circuits}{toolkit}{state}, 'OPEN',
   'the guide\'s jq path shows the open breaker';
is $d->{checks}{circuitBreakers}{details}{open}, 1, 'one open';
like $srv->get('/api/metrics')->{content},
     qr/^linguamate_circuit_breaker_state\{name="toolkit"\} 1\n.*^linguamate_circuit_breaker_open\{name="toolkit"\} 1\n/ms,
     'metrics: state 1, open 1';

# --- half-open: exactly one probe across the workers -------------------------

set_mode('slow');
ok $srv->poll(sub { $d = detailed(); $d->{checks}{circuitBreakers}{details}{circuits}{toolkit}{timeSinceLastFailure} >= 1000 }, 5),
   'the reset timeout passes';
$before = hits();

my @kids;
for my $i (1 .. 10) {
    pipe my $rd, my $wr or die;
    my $pid = fork // die;
    if ($pid == 0) {
        close $rd;
        my $res = HTTP::Tiny->new(timeout => 10)->get($srv->url('/api/tk/x'));
        print $wr $res->{status};
        close $wr;
        POSIX::_exit(0);
    }
    close $wr;
    push @kids, [$pid, $rd];
}
my %probe;
for (@kids) {
    my $s = readline($_->[1]) // 'none';
    waitpid $_->[0], 0;
    $probe{$s}++;
}
is_deeply \%probe, { 200 => 1, 503 => 9 },
          '10 concurrent calls: one probe passes, nine fail fast';
is hits() - $before, 1, 'the upstream saw exactly one request';
is detailed()->{checks}{circuitBreakers}{details}{circuits}{toolkit}{state}, 'CLOSED',
   'the successful probe closed the breaker';
ok((grep { /"evt":"circuit_half_open"/ } events()), 'circuit_half_open logged');
ok((grep { /"evt":"circuit_closed".*"level"|"level":30,.*"evt":"circuit_closed"/ } events()), 'circuit_closed logged at info');

# --- a failed probe re-opens ---------------------------------------------------

set_mode('fail');
tk() for 1 .. 5;
is tk()->{status}, 503, 'open again';
ok $srv->poll(sub { detailed()->{checks}{circuitBreakers}{details}{circuits}{toolkit}{timeSinceLastFailure} >= 1000 }, 5),
   'reset timeout';
is tk()->{status}, 500, 'the probe goes through and fails';
is tk()->{status}, 503, 'the breaker re-opened at once';
ok((grep { /"level":40,.*"evt":"circuit_opened","msg":"Circuit breaker re-opened: the probe failed"/ } events()),
   're-opening is logged at warn');

# --- manual reset -----------------------------------------------------------

$r = $http->post($srv->url('/api/admin/breakers/toolkit/reset'),
                 { headers => { Authorization => "Bearer $admin" } });
is $r->{status}, 200, 'reset through the operations API';
set_mode('ok');
is tk()->{status}, 200, 'closed again';
my @resets = grep { /"evt":"circuit_reset"/ } events();
is scalar @resets, 1, 'one circuit_reset line';
like $resets[0] // '', qr/"breaker":"toolkit","from":"open","to":"closed"/,
     'the reset logs the state it really left: open';

# resetting a closed breaker: logged as such, no transition counted
sub closed_transitions {
    $srv->get('/api/metrics')->{content}
        =~ /^linguamate_circuit_breaker_transitions_total\{name="toolkit",to="closed"\} (\d+)$/m
        ? $1 : -1;
}
my $closed_before = closed_transitions();
ok $closed_before >= 1, "transitions to closed so far: $closed_before";
is $http->post($srv->url('/api/admin/breakers/toolkit/reset'),
               { headers => { Authorization => "Bearer $admin" } })->{status},
   200, 'a closed breaker can be reset';
is closed_transitions(), $closed_before,
   'resetting a closed breaker counts no transition';
@resets = grep { /"evt":"circuit_reset"/ } events();
is scalar @resets, 2, 'a second circuit_reset line';
like $resets[1] // '', qr/"from":"closed","to":"closed"/,
     'it says the breaker was closed';
is $http->post($srv->url('/api/admin/breakers/nope/reset'),
               { headers => { Authorization => "Bearer $admin" } })->{status},
   404, 'an unknown breaker is a 404';

# --- 4xx are not failures; 429 is ------------------------------------------

set_mode('404');
is tk()->{status}, 404, "a 404 passes through ($_)" for 1 .. 8;
is detailed()->{checks}{circuitBreakers}{details}{circuits}{toolkit}{state}, 'CLOSED',
   '4xx answers do not open it';
set_mode('429');
tk() for 1 .. 5;
is tk()->{status}, 503, 'but 429 answers do';
reset_all();

# --- failures age out of the monitoring period ------------------------------

set_mode('fail');
$http->get($srv->url('/api/short/x')) for 1 .. 2;
sleep 1.2;      # the subject of this check is the period itself
is $http->get($srv->url('/api/short/x'))->{status}, 500, 'a third failure, after the period';
is $http->get($srv->url('/api/short/x'))->{status}, 500,
   'still closed: the first two failures aged out';
set_mode('ok');

# --- connect errors count -----------------------------------------------------

is $http->get($srv->url('/api/dead/x'))->{status}, 502, 'an unreachable upstream: 502';
is $http->get($srv->url('/api/dead/x'))->{status}, 502, 'twice';
is $http->get($srv->url('/api/dead/x'))->{status}, 503, 'and the breaker opens';

# --- kept across a HUP reload ---------------------------------------------------

ok $srv->reload, 'HUP reload';
is $http->get($srv->url('/api/dead/x'))->{status}, 503, 'still open after the reload';
is detailed()->{checks}{circuitBreakers}{details}{circuits}{dead}{state}, 'OPEN',
   'the state was kept';

$srv->stop;
$up->stop;
unlike $srv->slurp('logs/error.log'), qr/\[(alert|crit)\]|exited on signal/,
       'no alert, no crash';

done_testing();
