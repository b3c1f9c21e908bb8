# vim:set ft= ts=4 sw=4 et fdm=marker:
#
# Correlation ids and security headers on every response.

use lib 't/lib';
use Test::Nginx::Socket 'no_plan';
use Linguamate::Defaults;

no_shuffle();
run_tests();

__DATA__

=== TEST 1: a valid incoming correlation id is echoed
--- config
    location = /api { linguamate_endpoint root; }
--- request
GET /api
--- more_headers
X-Correlation-Id: req-2024.01:abc_DEF-9
--- response_headers
x-correlation-id: req-2024.01:abc_DEF-9
--- no_error_log
[error]



=== TEST 2: without one, a new UUID v4 is made
--- config
    location = /api { linguamate_endpoint root; }
--- request
GET /api
--- response_headers_like
x-correlation-id: ^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$
--- no_error_log
[error]



=== TEST 3: an id with characters outside [A-Za-z0-9._:-] is replaced
--- config
    location = /api { linguamate_endpoint root; }
--- request
GET /api
--- more_headers
X-Correlation-Id: <script>alert(1)</script>
--- response_headers_like
x-correlation-id: ^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$
--- no_error_log
[error]



=== TEST 4: an id of 128 characters is kept, 129 is replaced
--- config
    location = /api { linguamate_endpoint root; }
--- request eval
["GET /api", "GET /api"]
--- more_headers eval
["X-Correlation-Id: " . ("a" x 128), "X-Correlation-Id: " . ("a" x 129)]
--- response_headers_like eval
["x-correlation-id: ^a{128}\$", "x-correlation-id: ^[0-9a-f-]{36}\$"]
--- no_error_log
[error]



=== TEST 5: two requests get two different ids
--- config
    location = /api { linguamate_endpoint root; }
    location = /id { linguamate on; return 200 "$linguamate_correlation_id\n"; }
--- request eval
["GET /id", "GET /id"]
--- response_body_like eval
[qr/^[0-9a-f-]{36}$/, qr/^[0-9a-f-]{36}$/]
--- no_error_log
[error]



=== TEST 6: the id is a variable an upstream receives, same as the header
--- config
    location = /api/up {
        proxy_set_header X-Correlation-Id $linguamate_correlation_id;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/echo;
    }
    location = /echo {
        linguamate off;
        return 200 "upstream saw $http_x_correlation_id\n";
    }
--- request
GET /api/up
--- more_headers
X-Correlation-Id: trace-77
--- response_headers
x-correlation-id: trace-77
--- response_body
upstream saw trace-77
--- no_error_log
[error]



=== TEST 7: the security headers of the original are on every response
--- config
    location = /api { linguamate_endpoint root; }
--- request
GET /api
--- response_headers
X-Content-Type-Options: nosniff
X-Frame-Options: DENY
X-XSS-Protection: 1; mode=block
Referrer-Policy: strict-origin-when-cross-origin
Permissions-Policy: geolocation=(), microphone=(), camera=()
!Strict-Transport-Security
--- no_error_log
[error]



=== TEST 8: errors carry the security headers and id too
--- config
    location / { linguamate_endpoint not_found; }
--- request
GET /api/none
--- error_code: 404
--- response_headers
X-Content-Type-Options: nosniff
X-Frame-Options: DENY
--- response_headers_like
x-correlation-id: ^[0-9a-f-]{36}$
--- no_error_log
[error]



=== TEST 9: HSTS only in production
--- http_config
    linguamate_node_env production;
    linguamate_jwt_secret 0123456789abcdef0123456789abcdef;
    linguamate_cors_allowed_origins https://app.example.com;
--- config
    location = /api { linguamate_endpoint root; }
--- request
GET /api
--- response_headers
Strict-Transport-Security: max-age=31536000; includeSubDomains
X-Frame-Options: DENY
--- no_error_log
[error]



=== TEST 10: an upstream's own security header is not doubled
--- config
    location = /api/up {
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/inner;
    }
    location = /inner {
        linguamate off;
        add_header X-Frame-Options SAMEORIGIN;
        add_header x-correlation-id spoofed;
        return 200 "ok\n";
    }
--- request
GET /api/up
--- more_headers
X-Correlation-Id: mine
--- response_headers
X-Frame-Options: SAMEORIGIN
x-correlation-id: mine
--- raw_response_headers_unlike
X-Frame-Options: DENY
--- no_error_log
[error]



=== TEST 11: locations with linguamate off get no headers
--- config
    location = /plain { linguamate off; return 200 "plain\n"; }
--- request
GET /plain
--- response_headers
!x-correlation-id
!X-Frame-Options
--- no_error_log
[error]



=== TEST 12: a CR/LF injection attempt in the id never reaches a header
--- config
    location = /api { linguamate_endpoint root; }
--- raw_request eval
"GET /api HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nX-Correlation-Id: a\rSet-Cookie: x=1\r\n\r\n"
--- error_code: 400
--- raw_response_headers_unlike
Set-Cookie
--- no_error_log
[alert]
