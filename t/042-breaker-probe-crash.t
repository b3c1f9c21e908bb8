# vim:set ft= ts=4 sw=4 et fdm=marker:
#
# A half-open breaker whose probe's worker is killed (kill -9) while the
# probe waits on the upstream: the next call finds that worker gone and
# becomes the probe itself, instead of every call failing fast until the
# probe timeout (at least 5 minutes) gives the lost probe up.

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

my $srv = Linguamate::Server->new(workers => 2);
my $dir = $srv->dir;

sub set_mode { open my $f, '>', "$dir/mode" or die; print $f shift; close $f }
set_mode('fail');

my $up = Linguamate::Upstream->new(sub {
    my $mode = do { open my $f, '<', "$dir/mode"; local $/; <$f> } // 'ok';
    return (500, '{"e":1}') if $mode eq 'fail';
    if ($mode eq 'hang') {
        open my $h, '>', "$dir/hanging"; close $h;
        sleep 3;
    }
    return (200, '{"ok":true}');
});
my $port = $up->port;

$srv->configure(<<"_HTTP_", <<"_SERVER_");
    linguamate_log_file logs/events.log;
    linguamate_breaker tk failure_threshold=2 volume_threshold=2 reset_timeout=1s;
_HTTP_
        location /api/tk/ {
            linguamate_circuit_breaker tk;
            proxy_pass http://127.0.0.1:$port/;
            proxy_read_timeout 10s;
        }
        location = /api/health/detailed { linguamate_endpoint health_detailed; }
_SERVER_
$srv->start;

my $http = HTTP::Tiny->new(timeout => 10);
sub tk { $http->get($srv->url('/api/tk/x'))->{status} }
sub state {
    my $d = eval { JSON::PP->new->decode($srv->get('/api/health/detailed')->{content}) } || {};
    return $d->{checks}{circuitBreakers}{details}{circuits}{tk}{state} // '?';
}

is tk(), 500, 'a failure' for 1;
is tk(), 500, 'a second failure';
is state(), 'OPEN', 'the breaker opened';

# the probe: hangs in the upstream, from a child we leave behind
set_mode('hang');
sleep 1.2;    # reset_timeout=1s: the subject here is time itself
unlink "$dir/hanging";
my $probe = fork // die;
if ($probe == 0) {
    HTTP::Tiny->new(timeout => 10)->get($srv->url('/api/tk/probe'));
    POSIX::_exit(0);
}
ok $srv->poll(sub { -e "$dir/hanging" }, 5), 'the probe waits on the upstream';
is state(), 'HALF_OPEN', 'half-open with its probe in flight';
is tk(), 503, 'another call fails fast meanwhile';

# kill -9 both workers: the probe's is among them
my @old = $srv->worker_pids;
kill 'KILL', @old;
ok $srv->poll(sub {
    my @now = $srv->worker_pids;
    @now == 2 && !grep { my $o = $_; grep { $_ == $o } @now } @old;
}, 10), 'the master respawned the workers';
waitpid $probe, 0;

set_mode('ok');
my $t0 = time;
my $st;
ok $srv->poll(sub { $st = tk(); $st == 200 }, 15),
   'a later call becomes the probe and goes through';
cmp_ok time - $t0, '<', 10, 'long before the probe timeout (5 minutes)';
is state(), 'CLOSED', 'and the breaker closed';

$srv->stop;
like $srv->slurp('logs/error.log'), qr/exited on signal 9/, 'the kills are logged';
is_deeply [ grep { /\[(alert|crit|emerg)\]/ && !/exited on signal 9/ }
            split /\n/, $srv->slurp('logs/error.log') ], [],
          'no other alert';

done_testing;
