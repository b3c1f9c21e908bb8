# vim:set ft= ts=4 sw=4 et fdm=marker:
#
# /api/metrics: valid exposition (promtool), counts by route, method and
# status, histogram buckets, _sum/_count, rate-limit and auth counters,
# zone sizes, and series bounded by configuration.

use lib 't/lib';
use Test::Nginx::Socket 'no_plan';
use Linguamate::Defaults;
use Linguamate::Prom;
use Linguamate::Build;
use Linguamate::Token;

our $Conf = <<'_EOC_';
    location = /api/metrics { linguamate_route metrics; linguamate_endpoint metrics; }
    location = /api/health { linguamate_route health; linguamate_endpoint health; }
    location = /api/x { linguamate_route x; linguamate_limit one; linguamate_endpoint root; }
    location = /api/me { linguamate_route me; linguamate_auth on; linguamate_endpoint auth_session; }
    location = /api/boom { linguamate_route boom; return 500; }
    location / { linguamate_endpoint not_found; }
_EOC_

our $Http = <<"_EOC_";
    linguamate_limit_zone one size=1m window=60s limit=1;
    linguamate_jwt_secret $SECRET;
_EOC_

no_shuffle();
run_tests();

__DATA__

=== TEST 1: promtool accepts the exposition
--- http_config eval: $::Http
--- config eval: $::Conf
--- request eval
["GET /api/health", "GET /api/x", "GET /api/x", "GET /api/me", "GET /nope", "GET /api/boom", "GET /api/metrics"]
--- error_code eval
[200, 200, 429, 401, 404, 500, 200]
--- response_body_filters eval
sub { $_[0] =~ /^# HELP/ ? Linguamate::Prom::promtool_check($_[0]) : "" }
--- response_body eval
["", "", "", "", "", "", "promtool ok\n"]
--- response_headers eval
["", "", "", "", "", "", "Content-Type: text/plain; version=0.0.4; charset=utf-8"]
--- no_error_log
[alert]



=== TEST 2: requests are counted by route, method and status
--- http_config eval: $::Http
--- config eval: $::Conf
--- request eval
["GET /api/health", "GET /api/health", "HEAD /api/health", "POST /api/health", "GET /api/x", "GET /api/x",
 "GET /api/me", "GET /api/boom", "GET /no/such/thing", "DELETE /api/whatever", "GET /api/metrics"]
--- error_code eval
[200, 200, 200, 405, 200, 429, 401, 500, 404, 404, 200]
--- response_body_filters eval
sub {
    return "" unless $_[0] =~ /^# HELP/;
    my $s = Linguamate::Prom::prom_samples($_[0]);
    CORE::join "", map { "$_ " . ($s->{$_} // "none") . "\n" } (
        'linguamate_http_requests_total{route="health",method="GET",status="200"}',
        'linguamate_http_requests_total{route="health",method="HEAD",status="200"}',
        'linguamate_http_requests_total{route="health",method="POST",status="405"}',
        'linguamate_http_requests_total{route="x",method="GET",status="200"}',
        'linguamate_http_requests_total{route="x",method="GET",status="429"}',
        'linguamate_http_requests_total{route="me",method="GET",status="401"}',
        'linguamate_http_requests_total{route="boom",method="GET",status="500"}',
        'linguamate_http_requests_total{route="other",method="GET",status="404"}',
        'linguamate_http_requests_total{route="other",method="DELETE",status="404"}',
        'linguamate_rate_limit_rejected_total{zone="one"}',
        'linguamate_auth_failures_total{reason="MISSING"}',
        'linguamate_http_request_duration_seconds_count{route="health"}',
        'linguamate_http_request_duration_seconds_bucket{route="health",le="+Inf"}',
        'linguamate_http_request_duration_seconds_bucket{route="health",le="10"}',
        'linguamate_shm_zone_bytes{zone="one",kind="size"}',
        'linguamate_build_info{version="' . Linguamate::Build::version()
            . '",env="development",nginx="1.22.1",commit="'
            . Linguamate::Build::commit() . '"}',
    );
}
--- response_body eval
["", "", "", "", "", "", "", "", "", "",
'linguamate_http_requests_total{route="health",method="GET",status="200"} 2
linguamate_http_requests_total{route="health",method="HEAD",status="200"} 1
linguamate_http_requests_total{route="health",method="POST",status="405"} 1
linguamate_http_requests_total{route="x",method="GET",status="200"} 1
linguamate_http_requests_total{route="x",method="GET",status="429"} 1
linguamate_http_requests_total{route="me",method="GET",status="401"} 1
linguamate_http_requests_total{route="boom",method="GET",status="500"} 1
linguamate_http_requests_total{route="other",method="GET",status="404"} 1
linguamate_http_requests_total{route="other",method="DELETE",status="404"} 1
linguamate_rate_limit_rejected_total{zone="one"} 1
linguamate_auth_failures_total{reason="MISSING"} 1
linguamate_http_request_duration_seconds_count{route="health"} 4
linguamate_http_request_duration_seconds_bucket{route="health",le="+Inf"} 4
linguamate_http_request_duration_seconds_bucket{route="health",le="10"} 4
linguamate_shm_zone_bytes{zone="one",kind="size"} 1048576
linguamate_build_info{version="' . Linguamate::Build::version()
. '",env="development",nginx="1.22.1",commit="' . Linguamate::Build::commit()
. '"} 1
']
--- no_error_log
[alert]



=== TEST 3: a flood of random URIs adds no series
--- http_config eval: $::Http
--- config eval: $::Conf
--- request eval
[(map { "GET /random/" . int(rand(1e9)) . "/$_?q=" . rand() } 1 .. 150), "GET /api/metrics"]
--- error_code eval
[(map { 404 } 1 .. 150), 200]
--- response_body_filters eval
sub {
    return "" unless $_[0] =~ /^# HELP/;
    my @req = grep { /^linguamate_http_requests_total/ } split /\n/, $_[0];
    my @hist = grep { /^linguamate_http_request_duration_seconds_count/ } split /\n/, $_[0];
    CORE::join "\n", @req, @hist, "";
}
--- response_body eval
[(map { "" } 1 .. 150),
'linguamate_http_requests_total{route="other",method="GET",status="404"} 150
linguamate_http_request_duration_seconds_count{route="other"} 150
']
--- no_error_log
[alert]



=== TEST 4: process, memory and connection metrics are there
--- http_config eval: $::Http
--- config eval: $::Conf
--- request
GET /api/metrics
--- response_body_like eval
qr/^linguamate_connections\{state="active"\} [1-9]\d*\n.*^linguamate_connections_accepted_total [1-9]\d*\n.*^linguamate_memory_limit_bytes [1-9]\d+\n.*^process_resident_memory_bytes [1-9]\d+\n.*^process_cpu_seconds_total \d+\.\d\d\n.*^process_start_time_seconds \d{10}\.\d{3}\n/ms
--- no_error_log
[alert]



=== TEST 5: linguamate_metrics off leaves a location out
--- http_config eval: $::Http
--- config
    location = /api/metrics { linguamate_metrics off; linguamate_endpoint metrics; }
    location = /api/quiet { linguamate_route quiet; linguamate_metrics off; linguamate_endpoint root; }
    location = /api/counted { linguamate off; linguamate_metrics on; linguamate_route counted; return 204; }
--- request eval
["GET /api/quiet", "GET /api/counted", "GET /api/metrics"]
--- error_code eval
[200, 204, 200]
--- response_body_filters eval
sub { CORE::join "\n", (grep { /^linguamate_http_requests_total/ } split /\n/, $_[0]), "" }
--- response_body eval
["", "", 'linguamate_http_requests_total{route="counted",method="GET",status="204"} 1
']
--- no_error_log
[alert]
