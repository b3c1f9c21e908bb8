# vim:set ft= ts=4 sw=4 et fdm=marker:
#
# Every error under /api, the module's and nginx's own, is the contract's
# envelope with the request's correlation id.

use lib 't/lib';
use Test::Nginx::Socket 'no_plan';
use Linguamate::Defaults;

no_shuffle();
run_tests();

__DATA__

=== TEST 1: an unknown route is a 404 NOT_FOUND envelope
--- config
    location / { linguamate_endpoint not_found; }
--- request
GET /api/nope
--- error_code: 404
--- response_headers
Content-Type: application/json; charset=utf-8
--- response_body_like chomp
^\{"error":\{"code":"NOT_FOUND","message":"Resource not found","timestamp":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z","requestId":"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"\}\}$
--- no_error_log
[error]



=== TEST 2: the envelope's requestId is the request's correlation id
--- config
    location / { linguamate_endpoint not_found; }
--- request
POST /api/whatever
--- more_headers
x-correlation-id: corr-abc.123:XY_z
--- error_code: 404
--- response_headers
x-correlation-id: corr-abc.123:XY_z
--- response_body_like chomp
"requestId":"corr-abc\.123:XY_z"\}\}$
--- no_error_log
[error]



=== TEST 3: nginx's own 404 (a missing static file) is the envelope
--- config
    location /api/static/ { root html; }
--- request
GET /api/static/missing.txt
--- error_code: 404
--- response_body_like chomp
^\{"error":\{"code":"NOT_FOUND","message":"Resource not found",
--- no_error_log
[alert]



=== TEST 4: a malformed request line is a 400 envelope
--- config
    location / { linguamate_endpoint not_found; }
--- raw_request eval
"GARBAGE\r\n\r\n"
--- error_code: 400
--- response_body_like chomp
^\{"error":\{"code":"BAD_REQUEST","message":"Bad request",.*"requestId":"[0-9a-f-]{36}"\}\}$
--- no_error_log
[alert]



=== TEST 5: a URI past the header buffers is a 414 envelope
--- http_config
    large_client_header_buffers 2 1k;
--- config
    location / { linguamate_endpoint not_found; }
--- request eval
"GET /" . ("a" x 3000)
--- error_code: 414
--- response_body_like chomp
^\{"error":\{"code":"URI_TOO_LONG","message":"URI too long",
--- no_error_log
[alert]



=== TEST 6: a header past the buffers is a 400 envelope (nginx's 494)
--- http_config
    large_client_header_buffers 2 1k;
--- config
    location = /api { linguamate_endpoint root; }
--- request
GET /api
--- more_headers eval
"X-Big: " . ("b" x 3000)
--- error_code: 400
--- response_body_like chomp
^\{"error":\{"code":"BAD_REQUEST",
--- no_error_log
[alert]



=== TEST 7: a body over client_max_body_size is a 413 envelope
--- config
    location = /api/echo {
        client_max_body_size 10;
        linguamate_endpoint root;
    }
--- request eval
"POST /api/echo\n" . ("x" x 100)
--- error_code: 413
--- response_body_like chomp
^\{"error":\{"code":"PAYLOAD_TOO_LARGE","message":"Payload too large",
--- no_error_log
[alert]



=== TEST 8: return 500 from the configuration is an envelope
--- config
    location = /api/boom { return 500; }
--- request
GET /api/boom
--- error_code: 500
--- response_body_like chomp
^\{"error":\{"code":"INTERNAL_SERVER_ERROR","message":"Internal server error",
--- no_error_log
[alert]



=== TEST 9: an unreachable upstream is a 502 envelope
--- config
    location = /api/up {
        proxy_pass http://127.0.0.1:$TEST_NGINX_RAND_PORT_1;
    }
--- request
GET /api/up
--- error_code: 502
--- response_body_like chomp
^\{"error":\{"code":"BAD_GATEWAY","message":"Bad gateway",
--- no_error_log
[alert]



=== TEST 10: 503 and 504 produced by nginx are envelopes
--- config
    location = /api/a { return 503; }
    location = /api/b { return 504; }
--- request eval
["GET /api/a", "GET /api/b"]
--- error_code eval
[503, 504]
--- response_body_like eval
[qr/^\{"error":\{"code":"SERVICE_UNAVAILABLE","message":"Service temporarily unavailable",/,
 qr/^\{"error":\{"code":"UPSTREAM_TIMEOUT","message":"Upstream timed out",/]
--- no_error_log
[alert]



=== TEST 11: 401 and 403 from nginx are envelopes
--- config
    location = /api/a { return 401; }
    location = /api/b { deny all; }
--- request eval
["GET /api/a", "GET /api/b"]
--- error_code eval
[401, 403]
--- response_body_like eval
[qr/^\{"error":\{"code":"UNAUTHORIZED",/, qr/^\{"error":\{"code":"FORBIDDEN",/]
--- no_error_log
[alert]



=== TEST 12: nginx's 405 (POST to a static file) is an envelope
--- config
    location /api/static/ { root html; }
--- user_files
>>> api/static/x.txt
hello
--- request
POST /api/static/x.txt
--- error_code: 405
--- response_body_like chomp
^\{"error":\{"code":"METHOD_NOT_ALLOWED",
--- no_error_log
[alert]



=== TEST 13: the error answer keeps the client's method in the log line
--- http_config
    log_format lm escape=none '$linguamate_log_line';
--- config
    access_log logs/app.log lm;
    location / { linguamate_endpoint not_found; }
    location = /log { access_log off; alias logs/app.log; }
--- request eval
["DELETE /api/x", "GET /log"]
--- error_code eval
[404, 200]
--- response_body_like eval
[qr/NOT_FOUND/, qr/"msg":"DELETE \/api\/x 404 \d+ms","req":\{"method":"DELETE","path":"\/api\/x","status":404,/]
--- no_error_log
[alert]



=== TEST 14: a HEAD to an unknown route gets the 404 without a body
--- config
    location / { linguamate_endpoint not_found; }
--- request
HEAD /api/nope
--- error_code: 404
--- response_body
--- no_error_log
[error]
