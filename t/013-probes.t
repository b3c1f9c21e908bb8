# vim:set ft= ts=4 sw=4 et fdm=marker:
#
# Probes and scrapes are never throttled: the health endpoints and
# /api/metrics skip the limits they inherit, unless RATE_LIMIT_PROBES
# (linguamate_rate_limit_probes) or a limit of their own location says
# otherwise.

use lib 't/lib';
use Test::Nginx::Socket 'no_plan';
use Linguamate::Defaults;

our $Http = <<'_EOC_';
    linguamate_jwt_secret 0123456789abcdef0123456789abcdef;
    linguamate_rate_limit_max_requests 5;
    linguamate_limit_zone global size=1m limit=requests;
_EOC_

our $Server = <<'_EOC_';
    linguamate_limit global;
    location = /api { linguamate_route root; linguamate_endpoint root; }
    location = /api/health { linguamate_endpoint health; }
    location = /api/health/live { linguamate_endpoint health_live; }
    location = /api/health/ready { linguamate_endpoint health_ready; }
    location = /api/health/detailed { linguamate_endpoint health_detailed; }
    location = /api/metrics { linguamate_endpoint metrics; }
_EOC_

our @Probes = map { ("GET /api/health/ready") x 40, "GET /api/health",
                    "GET /api/health/live", "GET /api/health/detailed",
                    "GET /api/metrics" } 1 .. 5;

no_shuffle();
run_tests();

__DATA__

=== TEST 1: 200 quick probes from one address answer 200 while /api is limited
--- http_config eval: $::Http
--- config eval: $::Server
--- request eval
[@::Probes, ("GET /api") x 6, "GET /api/health/ready"]
--- error_code eval
[(200) x 220, (200) x 5, 429, 200]
--- response_headers eval
[("!X-RateLimit-Limit") x 220, ("X-RateLimit-Limit: 5") x 6, "!X-RateLimit-Limit"]
--- no_error_log
[error]



=== TEST 2: RATE_LIMIT_PROBES puts them under the limit like any route
--- http_config eval: $::Http . "linguamate_rate_limit_probes on;\n"
--- config eval: $::Server
--- request eval
[("GET /api/health/ready") x 6, ("GET /api/metrics") x 6]
--- error_code eval
[(200) x 5, 429, (200) x 5, 429]
--- response_body_like eval
[("") x 5, qr/"code":"RATE_LIMIT_EXCEEDED"/, ("") x 5, qr/"code":"RATE_LIMIT_EXCEEDED"/]
--- no_error_log
[error]



=== TEST 3: a limit declared in the probe's own location applies
--- http_config eval: $::Http
--- config
    location = /api/health/ready {
        linguamate_limit global;
        linguamate_endpoint health_ready;
    }
--- request eval
[("GET /api/health/ready") x 6]
--- error_code eval
[(200) x 5, 429]
--- no_error_log
[error]



=== TEST 4: RATE_LIMIT_PROBES takes a boolean
--- http_config eval: $::Http . "linguamate_rate_limit_probes maybe;\n"
--- config eval: $::Server
--- must_die
--- error_log eval
qr/RATE_LIMIT_PROBES|rate_limit_probes/
