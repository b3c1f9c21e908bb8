# vim:set ft= ts=4 sw=4 et fdm=marker:
#
# The debug log (error_log ... debug; Debian's nginx is built --with-debug):
# the steps of the phase tables, the limit decision, the auth outcome and
# a breaker's transition are traced there, so an operator can follow a
# request through the edge.

use lib 't/lib';
use Test::Nginx::Socket 'no_plan';
use Linguamate::Defaults;

our $Http = <<'_EOC_';
    linguamate_jwt_secret a-test-secret-that-is-long-enough-0123456789;
    linguamate_log_file logs/events.log;
    linguamate_limit_zone three size=1m window=60s limit=3;
    linguamate_breaker dead failure_threshold=1 volume_threshold=1 reset_timeout=30s;
_EOC_

log_level('debug');
no_shuffle();
run_tests();

__DATA__

=== TEST 1: the phase steps, the limit decision and the auth outcome
--- http_config eval: $::Http
--- config
    location = /api/me {
        linguamate_route me;
        linguamate_limit three;
        linguamate_auth on;
        linguamate_endpoint root;
    }
--- request
GET /api/me
--- error_code: 401
--- error_log
linguamate phase post_read step: call
linguamate phase rewrite step: route
linguamate phase rewrite step: cors_preflight
linguamate phase rewrite step: maintenance
linguamate phase preaccess step: limit
linguamate limit "three" key "
weight 1: remaining 2
linguamate limit decision: PASSED
linguamate phase access step: auth
linguamate auth outcome: MISSING (linguamate_auth 1)
linguamate phase log step: metrics
linguamate phase log step: breaker



=== TEST 2: a rejected request: the limit's decision says so (a tRPC
batch of two auth procedures weighs 2 against a login limit of 1)
--- http_config eval
$::Http . "linguamate_rate_limit_max_login_attempts 1;\n"
. "linguamate_limit_zone auth size=1m window=60s limit=login;\n"
--- config
    location /api/trpc/ {
        linguamate_limit auth;
        linguamate_endpoint root;
    }
--- request
GET /api/trpc/auth.login,auth.signup?batch=1
--- error_code: 429
--- error_log
weight 2: remaining 
, rejected
linguamate limit decision: REJECTED



=== TEST 3: a breaker's transition is traced
--- http_config eval: $::Http
--- config
    location = /api/dead {
        linguamate_circuit_breaker dead;
        proxy_connect_timeout 1s;
        proxy_pass http://127.0.0.1:1/;
    }
--- request
GET /api/dead
--- error_code: 502
--- error_log
linguamate phase access step: breaker
linguamate breaker "dead": closed -> open
