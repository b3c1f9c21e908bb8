# vim:set ft= ts=4 sw=4 et fdm=marker:
#
# One way to refuse: a phase step records its refusal in the request ctx
# and returns the status to nginx.  Then nginx's own rules apply: "satisfy
# any" lets "allow" grant what auth refused, and an operator's error_page
# for the status takes over.  Without any error_page, the module still
# answers with its envelope (or the tRPC shape), not nginx's HTML page; with
# the deployment's error_page to "linguamate_endpoint error", that endpoint
# renders the recorded refusal (the other suites).

use lib 't/lib';
use Test::Nginx::Socket 'no_plan';
use Linguamate::Defaults;

our $Http = <<'_EOC_';
    linguamate_jwt_secret a-test-secret-that-is-long-enough-0123456789;
    linguamate_log_file logs/events.log;
    linguamate_limit_zone one size=1m window=60s limit=1;
    linguamate_breaker b failure_threshold=1 volume_threshold=1 reset_timeout=30s;
_EOC_

no_shuffle();
run_tests();

__DATA__

=== TEST 1: satisfy any: "allow 127.0.0.1" grants what auth refused
--- http_config eval: $::Http
--- config
    location = /api/me {
        satisfy any;
        allow 127.0.0.1;
        deny all;
        linguamate_auth on;
        linguamate_endpoint root;
    }
--- request
GET /api/me
--- error_code: 200
--- response_headers
!WWW-Authenticate
Content-Type: application/json; charset=utf-8
--- response_body_like chomp
"status":"ok"
--- no_error_log
[error]



=== TEST 2: satisfy any, nobody allowed: the auth refusal is the answer,
and the breaker's gate was not asked (no probe spent on it)
--- http_config eval: $::Http
--- config
    location = /api/me {
        satisfy any;
        deny all;
        linguamate_auth on;
        linguamate_circuit_breaker b;
        linguamate_endpoint root;
    }
--- request
GET /api/me
--- error_code: 401
--- response_headers
WWW-Authenticate: Bearer realm="linguamate"
Content-Type: application/json; charset=utf-8
--- response_body_like chomp
^\{"error":\{"code":"UNAUTHORIZED","message":"Authentication required","timestamp":"[^"]+","requestId":"[^"]+","reason":"MISSING"\}\}$
--- error_log
linguamate phase access step: auth
--- no_error_log
linguamate phase access step: breaker



=== TEST 3: satisfy all (the default): allowed by address, still refused
--- http_config eval: $::Http
--- config
    location = /api/me {
        allow 127.0.0.1;
        linguamate_auth on;
        linguamate_endpoint root;
    }
--- request
GET /api/me
--- error_code: 401
--- response_body_like chomp
^\{"error":\{"code":"UNAUTHORIZED","message":"Authentication required","timestamp":"[^"]+","requestId":"[^"]+","reason":"MISSING"\}\}$



=== TEST 4: an operator's own error_page for 429 takes over
--- http_config eval: $::Http
--- config
    location = /api/x {
        linguamate_limit one;
        linguamate_endpoint root;
        error_page 429 /busy;
    }
    location = /busy {
        internal;
        linguamate off;
        default_type text/plain;
        return 200 "slow down\n";
    }
--- request eval
["GET /api/x", "GET /api/x"]
--- error_code eval
[200, 429]
--- response_headers eval
["X-RateLimit-Remaining: 0", "Retry-After: 60\nContent-Type: text/plain"]
--- response_body_like eval
[qr/"status":"ok"/, qr/^slow down$/]



=== TEST 5: no error_page at all: the envelope and the limit's headers
--- no_error_pages: 1
--- http_config eval: $::Http
--- config
    linguamate on;
    location = /api/x {
        linguamate_limit one;
        linguamate_endpoint root;
    }
--- request eval
["GET /api/x", "GET /api/x", "HEAD /api/x"]
--- error_code eval
[200, 429, 429]
--- response_headers eval
["X-RateLimit-Remaining: 0",
 "Retry-After: 60\nX-RateLimit-Limit: 1\nX-RateLimit-Remaining: 0\nContent-Type: application/json; charset=utf-8\nX-Content-Type-Options: nosniff",
 "Retry-After: 60\nContent-Type: application/json; charset=utf-8"]
--- response_body_like eval
[qr/"status":"ok"/,
 qr/^\{"error":\{"code":"RATE_LIMIT_EXCEEDED","message":"Rate limit exceeded","timestamp":"[^"]+","requestId":"[0-9a-f-]{36}","retryAfter":(60|59)\}\}$/,
 qr/^$/]
--- no_error_log
[error]



=== TEST 6: no error_page at all: a tRPC refusal keeps the tRPC shape
--- no_error_pages: 1
--- http_config eval: $::Http
--- config
    linguamate on;
    location /api/trpc/ {
        linguamate_trpc on;
        linguamate_endpoint root;
    }
--- request
GET /api/trpc/a..b
--- error_code: 404
--- response_headers
Content-Type: application/json; charset=utf-8
--- response_body_like chomp
^\{"error":\{"json":\{"message":"No procedure found on this path(?:[^"\\]|\\.)*","code":-32004,"data":\{"code":"NOT_FOUND","httpStatus":404,"path":"a..b","correlationId":"[0-9a-f-]{36}","edgeCode":"NOT_FOUND"\}\}\}\}$



=== TEST 7: no error_page at all: a 400 refusal of a batch
--- no_error_pages: 1
--- http_config eval: $::Http
--- config
    linguamate on;
    location /api/trpc/ {
        linguamate_endpoint root;
    }
--- request eval
"GET /api/trpc/" . CORE::join(",", map { "a.b$_" } 1 .. 65) . "?batch=1"
--- error_code: 400
--- response_headers
Content-Type: application/json; charset=utf-8
--- response_body_like chomp
"edgeCode":"VALIDATION_ERROR"



=== TEST 8: nginx's own errors are not touched: a 404 of a missing file
--- no_error_pages: 1
--- http_config eval: $::Http
--- config
    linguamate on;
    location /static/ {
        root html;
    }
--- request
GET /static/nope.txt
--- error_code: 404
--- response_headers
Content-Type: text/html
--- response_body_like chomp
404 Not Found



=== TEST 9: no error_page: a refusal before a body nginx cannot discard
(a bad chunk) closes the connection; the body is never read as a request
--- http_config eval: $::Http
--- config
    location = /api/me {
        linguamate on;
        linguamate_auth on;
        linguamate_endpoint root;
    }
    location = /smuggled { return 200 "SMUGGLED\n"; }
--- raw_request eval
"POST /api/me HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
--- timeout: 3
--- error_code: 401
--- response_headers
Connection: close
--- response_body_unlike
SMUGGLED



=== TEST 10: no error_page: a login body nginx cannot read (a bad chunk)
is refused with the envelope, not nginx's page
--- http_config eval
$::Http . "linguamate_lockout_zone lz size=1m;"
--- config
    location = /api/auth/login {
        linguamate on;
        linguamate_lockout lz;
        return 200 "app\n";
    }
--- raw_request eval
"POST /api/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\nzz\r\n{}\r\n0\r\n\r\n"
--- timeout: 3
--- error_code: 400
--- response_headers
Content-Type: application/json; charset=utf-8
--- response_body_like chomp
^\{"error":\{"code":"BAD_REQUEST","message":"Bad request"
