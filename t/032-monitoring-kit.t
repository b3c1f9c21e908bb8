# vim:set ft= ts=4 sw=4 et fdm=marker:
#
# The monitoring kit with Prometheus's own tool: the scrape config, the
# alert and recording rules and their unit tests; and the Grafana
# dashboard's panels query metrics the module exports (the cluster
# mode's among them, docs/cluster.md).

use strict;
use warnings;
use Test::More;
use JSON::PP;

my $kit = ($ENV{LINGUAMATE_REPO} // '.') . '/conf/monitoring';

for my $cmd ("promtool check config $kit/prometheus.yml",
             "promtool check rules $kit/alert-rules.yml $kit/recording-rules.yml",
             "promtool test rules $kit/alert-rules.test.yml")
{
    my $out = `$cmd 2>&1`;
    is $?, 0, $cmd or diag $out;
}

my $out = `promtool test rules $kit/alert-rules.test.yml 2>&1`;
like $out, qr/SUCCESS/, 'the six alerts pass their unit tests';

my $rules = do { local $/; open my $f, '<', "$kit/alert-rules.yml" or die; <$f> };
for my $a (qw(BackendDown HighErrorRate HighMemoryUsage CircuitBreakerOpen
              LinguamateRedisDown LinguamateClusterSyncLag)) {
    like $rules, qr/alert: $a\n/, "alert $a is defined";
}

my $dash = decode_json(do { local $/; open my $f, '<', "$kit/grafana-dashboard.json" or die; <$f> });
my %titles = map { $_->{title} => $_ } @{ $dash->{panels} };
for my $t ('Request rate', 'Response time (p50 / p95 / p99)', 'Error rate by endpoint',
           'Circuit breaker status (0 closed, 1 open, 2 half-open)', 'Memory usage', 'CPU usage',
           'Redis up per instance (cluster mode)', 'Cluster sync lag',
           'Unsynced updates (not yet written to Redis)')
{
    ok $titles{$t}, "dashboard panel: $t";
}

my %exported = map { $_ => 1 } qw(
    linguamate_http_requests_total linguamate_http_request_duration_seconds_bucket
    linguamate_circuit_breaker_state linguamate_circuit_breaker_open
    process_resident_memory_bytes linguamate_memory_limit_bytes
    process_cpu_seconds_total linguamate_rate_limit_rejected_total
    linguamate_auth_failures_total linguamate_build_info up
    linguamate_redis_up linguamate_cluster_sync_lag_seconds
    linguamate_cluster_unsynced_updates);
for my $p (@{ $dash->{panels} }) {
    for my $t (@{ $p->{targets} // [] }) {
        my @names = $t->{expr} =~ /\b((?:linguamate|process)_[a-z_]+)\b/g;
        ok((!grep { !$exported{$_} } @names), "panel '$p->{title}' queries known metrics")
            or diag "@names";
    }
}

done_testing();
