# vim:set ft= ts=4 sw=4 et fdm=marker:
#
# Metrics with a real master and two workers: exact counts whichever
# worker served, counters kept across a HUP reload (a new route gets a
# series, old ones keep theirs), and the detailed health's memory check.

use strict;
use warnings;
use lib 't/lib';
use Test::More;
use HTTP::Tiny;
use JSON::PP;
use POSIX ();
use Linguamate::Server;
use Linguamate::Prom;

my $srv = Linguamate::Server->new(workers => 2);

my $server = <<'_SERVER_';
        location = /api/metrics { linguamate_route metrics; linguamate_endpoint metrics; }
        location = /api/a { linguamate_route a; linguamate_endpoint health_live; }
        location = /api/health/detailed { linguamate_endpoint health_detailed; }
_SERVER_

my $http_conf = "    linguamate_jwt_secret 0123456789abcdef0123456789abcdef;\n";
$srv->configure($http_conf, $server);
$srv->start;

# --- 10 clients x 100 requests, spread over both workers -----------------

my @kids;
for my $c (1 .. 10) {
    my $pid = fork // die;
    if ($pid == 0) {
        my $http = HTTP::Tiny->new(keep_alive => ($c % 2));
        $http->get($srv->url('/api/a')) for 1 .. 100;
        POSIX::_exit(0);
    }
    push @kids, $pid;
}
waitpid $_, 0 for @kids;

my $m = $srv->get('/api/metrics')->{content};
is promtool_check($m), "promtool ok\n", 'promtool accepts it';
is prom_value($m, 'linguamate_http_requests_total{route="a",method="GET",status="200"}'),
   1000, 'exactly 1000 requests counted across the workers';
is prom_value($m, 'linguamate_http_request_duration_seconds_count{route="a"}'),
   1000, 'and 1000 observations in the histogram';
is prom_value($m, 'linguamate_http_request_duration_seconds_bucket{route="a",le="+Inf"}'),
   1000, '+Inf bucket equals the count';

my $h = eval { JSON::PP->new->decode($srv->get('/api/health/detailed')->{content}) } || {};
is $h->{status}, 'healthy', 'detailed health is healthy';
cmp_ok $h->{checks}{memory}{details}{rssMB}, '>', 0, 'with the RSS of the nginx processes';

# --- counters survive a reload; a new route appears --------------------------

$srv->configure($http_conf, $server . <<'_MORE_');
        location = /api/b { linguamate_route b; linguamate_endpoint health_live; }
_MORE_
ok $srv->reload, 'HUP reload';

$srv->get('/api/a');
$srv->get('/api/b') for 1 .. 3;
# a request is counted in its LOG phase, which may end after the client
# has the answer: poll for the count
$srv->poll(sub {
    $m = $srv->get('/api/metrics')->{content};
    (prom_value($m, 'linguamate_http_requests_total{route="b",method="GET",status="200"}') // 0) >= 3
    && (prom_value($m, 'linguamate_http_requests_total{route="a",method="GET",status="200"}') // 0) >= 1001
}, 10);
is prom_value($m, 'linguamate_http_requests_total{route="a",method="GET",status="200"}'),
   1001, 'route a kept its count across the reload';
is prom_value($m, 'linguamate_http_requests_total{route="b",method="GET",status="200"}'),
   3, 'route b counts from the reload on';
is promtool_check($m), "promtool ok\n", 'still valid';

# --- process_cpu_seconds_total stays a counter across a reload -------------
# The workers that a reload replaces take their CPU time with them; the
# master's reaped-children time keeps it.  Load the workers until they
# have used a measurable amount, then reload.

sub cpu {
    prom_value($srv->get('/api/metrics')->{content}, 'process_cpu_seconds_total') // -1;
}
sub load_metrics {
    my @k;
    for my $c (1 .. 4) {
        my $pid = fork // die;
        if ($pid == 0) {
            my $http = HTTP::Tiny->new(keep_alive => 1);
            $http->get($srv->url('/api/metrics')) for 1 .. $_[0];
            POSIX::_exit(0);
        }
        push @k, $pid;
    }
    waitpid $_, 0 for @k;
}
my $cpu = 0;
for (1 .. 60) {
    load_metrics(100);
    $cpu = cpu();
    last if $cpu >= 0.3;
}
cmp_ok $cpu, '>=', 0.3, "the workers used CPU: $cpu s";
ok $srv->reload, 'HUP reload: the workers are replaced';
my $after = cpu();
cmp_ok $after, '>=', $cpu, "process_cpu_seconds_total did not go back ($after)";
load_metrics(50);
ok $srv->poll(sub { cpu() > $after }, 10), 'and it goes on growing';

# --- the memory check against a limit it exceeds ----------------------------

$srv->configure($http_conf . "    linguamate_memory_limit_mb 1;\n", $server);
ok $srv->reload, 'reload with MEMORY_LIMIT_MB=1';
my $r = $srv->get('/api/health/detailed');
my $cg = -r '/sys/fs/cgroup/memory.max'
         && `cat /sys/fs/cgroup/memory.max` =~ /^\d+$/;
SKIP: {
    skip 'a cgroup limit applies here, it wins over the setting', 3 if $cg;
    is $r->{status}, 503, 'over 90% of the limit: 503';
    my $d = eval { JSON::PP->new->decode($r->{content}) } || {};
    is $d->{checks}{memory}{status}, 'unhealthy', 'memory check unhealthy';
    is $d->{checks}{memory}{details}{limitSource}, 'setting', 'the limit came from the setting';
}

$srv->stop;
unlike $srv->slurp('logs/error.log'), qr/\[(alert|crit)\]|exited on signal/,
       'no alert, no crash';

done_testing();
