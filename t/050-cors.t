# vim:set ft= ts=4 sw=4 et fdm=marker:
#
# CORS: development echoes any origin; otherwise exact origins and
# "*.example.com" on a label boundary only (the original's "ends with"
# let evilexample.com in); strict mode keeps exact entries only;
# preflights answered in-process before limits; credentials per setting.

use lib 't/lib';
use Test::Nginx::Socket 'no_plan';
use Linguamate::Defaults;

our $Staging = <<'_EOC_';
    linguamate_node_env staging;
    linguamate_jwt_secret 0123456789abcdef0123456789abcdef;
    linguamate_cors_allowed_origins "https://app.example.com, *.linguamate.app";
    linguamate_log_file logs/events.log;
    linguamate_limit_zone one size=1m window=60s limit=1;
_EOC_

our $Api = <<'_EOC_';
    linguamate_cors on;
    location = /api { linguamate_limit one; linguamate_endpoint root; }
    location = /log { linguamate off; alias logs/events.log; }
_EOC_

no_shuffle();
run_tests();

__DATA__

=== TEST 1: development echoes any origin, with credentials and exposed headers
--- http_config
    linguamate_limit_zone one size=1m window=60s limit=5;
--- config eval: $::Api
--- request
GET /api
--- more_headers
Origin: http://localhost:8081
--- response_headers
Access-Control-Allow-Origin: http://localhost:8081
Access-Control-Allow-Credentials: true
Vary: Origin
--- response_headers_like
Access-Control-Expose-Headers: x-correlation-id, X-RateLimit-Limit
--- no_error_log
[error]



=== TEST 2: an allowed origin, exact or by wildcard subdomain
--- http_config eval: $::Staging
--- config
    linguamate_cors on;
    location = /api { linguamate_endpoint root; }
--- request eval
["GET /api", "GET /api", "GET /api"]
--- more_headers eval
["Origin: https://app.example.com", "Origin: https://es.linguamate.app", "Origin: https://a.b.linguamate.app"]
--- response_headers eval
["Access-Control-Allow-Origin: https://app.example.com", "Access-Control-Allow-Origin: https://es.linguamate.app", "Access-Control-Allow-Origin: https://a.b.linguamate.app"]
--- no_error_log
[error]



=== TEST 3: look-alike origins get no CORS headers and a log line
--- http_config eval: $::Staging
--- config
    linguamate_cors on;
    location = /api { linguamate_endpoint root; }
    location = /log { linguamate off; alias logs/events.log; }
--- request eval
["GET /api", "GET /api", "GET /api", "GET /log"]
--- more_headers eval
["Origin: https://evillinguamate.app", "Origin: https://linguamate.app", "Origin: https://app.example.com.evil.org", ""]
--- response_headers eval
["!Access-Control-Allow-Origin\nVary: Origin", "!Access-Control-Allow-Origin", "!Access-Control-Allow-Origin", ""]
--- response_body_like eval
[qr/ok/, qr/ok/, qr/ok/, qr/"evt":"cors_rejected","msg":"Origin not allowed: no CORS headers","cat":"cors","origin":"https:\/\/evillinguamate\.app"/]
--- no_error_log
[error]



=== TEST 4: strict mode drops wildcards and development's echo
--- http_config eval: $::Staging . "linguamate_security_strict_mode on;"
--- config
    linguamate_cors on;
    location = /api { linguamate_endpoint root; }
--- request eval
["GET /api", "GET /api"]
--- more_headers eval
["Origin: https://app.example.com", "Origin: https://es.linguamate.app"]
--- response_headers eval
["Access-Control-Allow-Origin: https://app.example.com", "!Access-Control-Allow-Origin"]
--- no_error_log
[error]



=== TEST 5: a preflight is answered in-process (204), ahead of the rate limit
--- http_config eval: $::Staging
--- config eval: $::Api
--- request eval
["OPTIONS /api", "OPTIONS /api", "GET /api", "GET /api"]
--- more_headers eval
["Origin: https://app.example.com\nAccess-Control-Request-Method: POST\nAccess-Control-Request-Headers: authorization",
 "Origin: https://app.example.com\nAccess-Control-Request-Method: POST",
 "Origin: https://app.example.com", "Origin: https://app.example.com"]
--- error_code eval
[204, 204, 200, 429]
--- response_headers eval
["Access-Control-Allow-Origin: https://app.example.com\nAccess-Control-Allow-Methods: GET, POST, PUT, PATCH, DELETE, OPTIONS\nAccess-Control-Allow-Headers: Content-Type, Authorization, x-correlation-id, x-session-id, x-request-id, x-client-version, x-device-id\nAccess-Control-Max-Age: 86400\nAccess-Control-Allow-Credentials: true\n!X-RateLimit-Limit",
 "", "X-RateLimit-Remaining: 0", "Access-Control-Allow-Origin: https://app.example.com"]
--- no_error_log
[error]



=== TEST 6: a preflight from a disallowed origin gets no CORS headers
--- http_config eval: $::Staging
--- config eval: $::Api
--- request
OPTIONS /api
--- more_headers
Origin: https://evil.example.org
Access-Control-Request-Method: POST
--- error_code: 204
--- response_headers
!Access-Control-Allow-Origin
!Access-Control-Allow-Methods
--- no_error_log
[error]



=== TEST 7: OPTIONS without Access-Control-Request-Method is no preflight
--- http_config eval: $::Staging
--- config eval: $::Api
--- request
OPTIONS /api
--- more_headers
Origin: https://app.example.com
--- error_code: 405
--- no_error_log
[error]



=== TEST 8: CORS_ALLOW_CREDENTIALS false sends no credentials header
--- http_config eval: $::Staging . "linguamate_cors_allow_credentials false;"
--- config
    linguamate_cors on;
    location = /api { linguamate_endpoint root; }
--- request
GET /api
--- more_headers
Origin: https://app.example.com
--- response_headers
Access-Control-Allow-Origin: https://app.example.com
!Access-Control-Allow-Credentials
--- no_error_log
[error]



=== TEST 9: production without CORS_ALLOWED_ORIGINS refuses to start
--- http_config
    linguamate_node_env production;
    linguamate_jwt_secret 0123456789abcdef0123456789abcdef;
--- config
--- must_die
--- error_log
linguamate: CORS_ALLOWED_ORIGINS must name the app's origins in production



=== TEST 10: linguamate_cors off (the default) adds nothing
--- config
    location = /api { linguamate_endpoint root; }
--- request
GET /api
--- more_headers
Origin: https://anything.example
--- response_headers
!Access-Control-Allow-Origin
--- no_error_log
[error]



=== TEST 11: a preflight needs no token; the 401 it precedes still carries CORS
--- http_config eval: $::Staging
--- config
    linguamate_cors on;
    location = /api/auth/session { linguamate_auth on; linguamate_endpoint auth_session; }
--- request eval
["OPTIONS /api/auth/session", "GET /api/auth/session"]
--- more_headers eval
["Origin: https://app.example.com\nAccess-Control-Request-Method: GET",
 "Origin: https://app.example.com"]
--- error_code eval
[204, 401]
--- response_headers eval
["Access-Control-Allow-Origin: https://app.example.com",
 "Access-Control-Allow-Origin: https://app.example.com"]
--- response_body_like eval
[qr/^$/, qr/"code":"UNAUTHORIZED"/]
--- no_error_log
[error]



=== TEST 12: a wildcard without a scheme takes https only; ports must match
--- http_config eval: $::Staging
--- config
    linguamate_cors on;
    location = /api { linguamate_endpoint root; }
--- request eval
["GET /api", "GET /api", "GET /api"]
--- more_headers eval
["Origin: http://es.linguamate.app", "Origin: https://es.linguamate.app:8443", "Origin: https://app.example.com:443"]
--- response_headers eval
["!Access-Control-Allow-Origin\nVary: Origin", "!Access-Control-Allow-Origin", "!Access-Control-Allow-Origin"]
--- no_error_log
[error]



=== TEST 13: "*" answers "*" and never with credentials
--- http_config
    linguamate_node_env staging;
    linguamate_jwt_secret 0123456789abcdef0123456789abcdef;
    linguamate_cors_allowed_origins "*";
--- config
    linguamate_cors on;
    location = /api { linguamate_endpoint root; }
--- request
GET /api
--- more_headers
Origin: https://anyone.example.net
--- response_headers
Access-Control-Allow-Origin: *
!Access-Control-Allow-Credentials
--- no_error_log
[error]



=== TEST 14: an upstream's own CORS headers are replaced, never doubled; Vary even without Origin
--- http_config eval
$::Staging . <<"_EOC_";
    server {
        listen unix:$ENV{TEST_NGINX_HTML_DIR}/up.sock;
        location / {
            linguamate off;
            add_header Access-Control-Allow-Origin https://stale.example.org;
            add_header Access-Control-Allow-Credentials true;
            return 200 "from upstream\n";
        }
    }
_EOC_
--- config eval
"    linguamate_cors on;
    location = /proxied { proxy_pass http://unix:$ENV{TEST_NGINX_HTML_DIR}/up.sock:/; }"
--- request eval
["GET /proxied", "GET /proxied"]
--- more_headers eval
["Origin: https://app.example.com", ""]
--- response_headers eval
["Access-Control-Allow-Origin: https://app.example.com\nVary: Origin",
 "!Access-Control-Allow-Origin\n!Access-Control-Allow-Credentials\nVary: Origin"]
--- response_body eval
["from upstream\n", "from upstream\n"]
--- no_error_log
[error]



=== TEST 15: a preflight with an empty Origin is no preflight
--- http_config eval: $::Staging
--- config eval: $::Api
--- request
OPTIONS /api
--- more_headers
Origin:
Access-Control-Request-Method: POST
--- error_code: 405
--- no_error_log
[error]



=== TEST 16: rejected origins are logged at most once a second per worker
--- http_config eval: $::Staging
--- config eval: $::Api
--- request eval
[("OPTIONS /api") x 20, "GET /log"]
--- more_headers eval
[("Origin: https://flood.example.org\nAccess-Control-Request-Method: POST") x 20, ""]
--- error_code eval
[(204) x 20, 200]
--- response_body_like eval
[(qr/^$/) x 20, qr/\A(?=.*?"evt":"cors_rejected")(?!(?:.*?"evt":"cors_rejected"){20})/s]
--- no_error_log
[error]
