# vim:set ft= ts=4 sw=4 et fdm=marker:
#
# Rate limiting: the exact sliding window, its headers, per-route keys,
# custom keys, the allowlist, dry run, IPv6 through realip, and several
# limits in one location (eviction: 011-limit-cluster.t).

use lib 't/lib';
use Test::Nginx::Socket 'no_plan';
use Linguamate::Defaults;

our $Zones = <<'_EOC_';
    linguamate_limit_zone three size=1m window=60s limit=3;
    linguamate_log_file logs/events.log;
_EOC_

no_shuffle();
run_tests();

__DATA__

=== TEST 1: passed requests count down in the headers, then 429
--- http_config eval: $::Zones
--- config
    location = /api/x {
        linguamate_route x;
        linguamate_limit three;
        linguamate_endpoint root;
    }
--- request eval
["GET /api/x", "GET /api/x", "GET /api/x", "GET /api/x"]
--- error_code eval
[200, 200, 200, 429]
--- response_headers eval
["X-RateLimit-Limit: 3\nX-RateLimit-Remaining: 2\nX-RateLimit-Reset: 60\nRateLimit-Policy: \"three\";q=3;w=60\nRateLimit: \"three\";r=2;t=60\n!Retry-After",
 "X-RateLimit-Remaining: 1",
 "X-RateLimit-Remaining: 0",
 "X-RateLimit-Limit: 3\nX-RateLimit-Remaining: 0\nRateLimit: \"three\";r=0;t=60"]
--- response_body_like eval
[qr/"status":"ok"/, qr/"status":"ok"/, qr/"status":"ok"/,
 qr/^\{"error":\{"code":"RATE_LIMIT_EXCEEDED","message":"Rate limit exceeded","timestamp":"[^"]+","requestId":"[0-9a-f-]{36}","retryAfter":(60|59)\}\}$/]
--- response_headers_like eval
["", "", "", "Retry-After: ^(60|59)\$"]
--- no_error_log
[error]



=== TEST 2: a rejection is logged with zone, client and route
--- http_config eval: $::Zones
--- config
    location = /api/x {
        linguamate_route x;
        linguamate_limit three;
        linguamate_endpoint root;
    }
    location = /log { linguamate off; alias logs/events.log; }
--- request eval
["GET /api/x", "GET /api/x", "GET /api/x", "GET /api/x?token=abc", "GET /log"]
--- more_headers
X-Correlation-Id: rl-1
Authorization: Bearer not-a-real-token
--- error_code eval
[200, 200, 200, 429, 200]
--- response_body_like eval
[qr//, qr//, qr//, qr//,
 qr/^\{"level":40,"time":\d+,"pid":\d+,"hostname":"[^"]+","env":"development","evt":"rate_limit_exceeded","msg":"Rate limit exceeded","cat":"rate_limit","zone":"three","client":"127\.0\.0\.1","route":"x","limit":3,"windowMs":60000,"retryAfter":\d+,"dryRun":false,"corr":\{"correlationId":"rl-1"\}\}$/m]
--- response_body_unlike eval
["", "", "", "", qr/not-a-real-token|token=abc/]
--- no_error_log
[error]



=== TEST 3: routes sharing a zone count separately
--- http_config eval: $::Zones
--- config
    location = /api/a { linguamate_route a; linguamate_limit three; linguamate_endpoint root; }
    location = /api/b { linguamate_route b; linguamate_limit three; linguamate_endpoint root; }
--- request eval
["GET /api/a", "GET /api/a", "GET /api/a", "GET /api/a", "GET /api/b"]
--- error_code eval
[200, 200, 200, 429, 200]
--- response_headers eval
["", "", "", "", "X-RateLimit-Remaining: 2"]
--- no_error_log
[error]



=== TEST 4: a key made of variables
--- http_config
    linguamate_limit_zone bykey size=1m window=60s limit=1 key=$http_x_api_key;
--- config
    location = /api/k { linguamate_limit bykey; linguamate_endpoint root; }
--- request eval
["GET /api/k", "GET /api/k", "GET /api/k", "GET /api/k"]
--- more_headers eval
["X-Api-Key: one", "X-Api-Key: one", "X-Api-Key: two", ""]
--- error_code eval
[200, 429, 200, 200]
--- response_headers eval
["X-RateLimit-Limit: 1", "X-RateLimit-Limit: 1", "X-RateLimit-Limit: 1", "!X-RateLimit-Limit"]
--- no_error_log
[error]



=== TEST 5: the allowlist bypasses every limit
--- http_config eval: $::Zones . "linguamate_rate_limit_allowlist \"10.0.0.0/8, 127.0.0.1/32\";"
--- config
    location = /api/x {
        linguamate_limit three;
        linguamate_endpoint root;
        add_header X-Limit-Status $linguamate_limit_status always;
    }
--- request eval
["GET /api/x", "GET /api/x", "GET /api/x", "GET /api/x", "GET /api/x"]
--- error_code eval
[200, 200, 200, 200, 200]
--- response_headers eval
["X-Limit-Status: ALLOWLISTED\n!X-RateLimit-Limit", "", "", "", "X-Limit-Status: ALLOWLISTED\n!X-RateLimit-Limit"]
--- no_error_log
[error]



=== TEST 6: dry run logs what it would reject and rejects nothing
--- http_config eval: $::Zones
--- config
    location = /api/x {
        linguamate_route x;
        linguamate_limit three dry_run;
        linguamate_endpoint root;
        add_header X-Limit-Status $linguamate_limit_status always;
    }
    location = /log { linguamate off; alias logs/events.log; }
--- request eval
["GET /api/x", "GET /api/x", "GET /api/x", "GET /api/x", "GET /log"]
--- error_code eval
[200, 200, 200, 200, 200]
--- response_headers eval
["X-Limit-Status: PASSED", "", "", "X-Limit-Status: REJECTED_DRY_RUN\nX-RateLimit-Remaining: 0\n!Retry-After", ""]
--- response_body_like eval
[qr//, qr//, qr//, qr//, qr/"evt":"rate_limit_exceeded","msg":"Rate limit exceeded \(dry run: not rejected\)".*"dryRun":true/]
--- no_error_log
[error]



=== TEST 7: linguamate_limit_dry_run on switches a whole scope to dry run
--- http_config eval: $::Zones
--- config
    linguamate_limit_dry_run on;
    location = /api/x { linguamate_limit three; linguamate_endpoint root; }
--- request eval
["GET /api/x", "GET /api/x", "GET /api/x", "GET /api/x"]
--- error_code eval
[200, 200, 200, 200]
--- no_error_log
[error]



=== TEST 8: IPv6 clients through realip have keys and allowlist entries of their own
--- http_config eval: $::Zones . "linguamate_rate_limit_allowlist 2001:db8:ffff::/48;"
--- config
    set_real_ip_from 127.0.0.1;
    real_ip_header X-Real-IP;
    location = /api/x { linguamate_limit three; linguamate_endpoint root; }
--- request eval
["GET /api/x", "GET /api/x", "GET /api/x", "GET /api/x", "GET /api/x", "GET /api/x"]
--- more_headers eval
["X-Real-IP: 2001:db8::1", "X-Real-IP: 2001:db8::1", "X-Real-IP: 2001:db8::1",
 "X-Real-IP: 2001:db8::1", "X-Real-IP: 2001:db8::2", "X-Real-IP: 2001:db8:ffff::9"]
--- error_code eval
[200, 200, 200, 429, 200, 200]
--- response_headers eval
["", "", "", "", "X-RateLimit-Remaining: 2", "!X-RateLimit-Limit"]
--- no_error_log
[error]



=== TEST 9: X-Forwarded-For from an untrusted client changes nothing
--- http_config eval: $::Zones
--- config
    location = /api/x { linguamate_limit three; linguamate_endpoint root; }
--- request eval
["GET /api/x", "GET /api/x", "GET /api/x", "GET /api/x"]
--- more_headers eval
["X-Forwarded-For: 1.1.1.1", "X-Forwarded-For: 2.2.2.2", "X-Forwarded-For: 3.3.3.3", "X-Forwarded-For: 4.4.4.4"]
--- error_code eval
[200, 200, 200, 429]
--- no_error_log
[error]



=== TEST 10: several limits: the most restrictive shows, every policy is listed
--- http_config
    linguamate_limit_zone wide size=1m window=60s limit=10;
    linguamate_limit_zone narrow size=1m window=10s limit=2;
--- config
    location = /api/x {
        linguamate_limit wide;
        linguamate_limit narrow;
        linguamate_endpoint root;
    }
--- request eval
["GET /api/x", "GET /api/x", "GET /api/x"]
--- error_code eval
[200, 200, 429]
--- response_headers eval
["X-RateLimit-Limit: 2\nX-RateLimit-Remaining: 1\nX-RateLimit-Reset: 10\nRateLimit-Policy: \"wide\";q=10;w=60, \"narrow\";q=2;w=10\nRateLimit: \"wide\";r=9;t=60, \"narrow\";r=1;t=10",
 "RateLimit: \"wide\";r=8;t=60, \"narrow\";r=0;t=10",
 "X-RateLimit-Limit: 2\nRateLimit: \"wide\";r=8;t=60, \"narrow\";r=0;t=10"]
--- no_error_log
[error]



=== TEST 11: a request a later limit rejects is not counted by the earlier one
--- http_config
    linguamate_limit_zone wide size=1m window=60s limit=3;
    linguamate_limit_zone narrow size=1m window=60s limit=1;
--- config
    location = /api/x { linguamate_route x; linguamate_limit wide; linguamate_limit narrow; linguamate_endpoint root; }
    location = /api/y { linguamate_route x; linguamate_limit wide; linguamate_endpoint root; }
--- request eval
["GET /api/x", "GET /api/x", "GET /api/x", "GET /api/y"]
--- error_code eval
[200, 429, 429, 200]
--- response_headers eval
["", "", "", "X-RateLimit-Remaining: 1"]
--- no_error_log
[error]



=== TEST 12: limits are inherited from the server level, "off" drops them
--- http_config eval: $::Zones
--- config
    linguamate_limit three;
    location = /api/x { linguamate_endpoint root; }
    location = /api/free { linguamate_limit off; linguamate_endpoint root; }
--- request eval
["GET /api/x", "GET /api/free"]
--- response_headers eval
["X-RateLimit-Limit: 3", "!X-RateLimit-Limit"]
--- no_error_log
[error]



=== TEST 13: the default deployment's limits follow the settings
--- http_config
    linguamate_rate_limit_window_ms 30000;
    linguamate_rate_limit_max_requests 2;
    linguamate_rate_limit_max_login_attempts 1;
    linguamate_limit_zone global size=1m;
    linguamate_limit_zone auth size=1m window=60s limit=login;
--- config
    location = /api/x { linguamate_limit global; linguamate_endpoint root; }
    location = /api/login { linguamate_limit global; linguamate_limit auth; linguamate_endpoint root; }
--- request eval
["GET /api/x", "GET /api/login", "GET /api/login"]
--- error_code eval
[200, 200, 429]
--- response_headers eval
["RateLimit-Policy: \"global\";q=2;w=30", "RateLimit-Policy: \"global\";q=2;w=30, \"auth\";q=1;w=60", ""]
--- no_error_log
[error]



=== TEST 14: an unknown zone is a configuration error
--- config
    location = /api/x { linguamate_limit nope; linguamate_endpoint root; }
--- must_die
--- error_log
linguamate: unknown limit zone "nope" (declare it first with linguamate_limit_zone)



=== TEST 15: a zone needs a size
--- http_config
    linguamate_limit_zone z window=60s;
--- config
--- must_die
--- error_log
linguamate: zone "z" needs a size=



=== TEST 16: a limit above 100000000 is refused
--- http_config
    linguamate_limit_zone z size=1m limit=100000001;
--- config
--- must_die
--- error_log
linguamate: invalid limit "100000001" of zone "z": 1 to 100000000



=== TEST 17: a window below one second is refused
--- http_config
    linguamate_limit_zone z size=1m window=500ms;
--- config
--- must_die
--- error_log
linguamate: invalid window "500ms" of zone "z": 1s to 1d



=== TEST 18: a 429 keeps the correlation id and security headers
--- http_config
    linguamate_limit_zone one size=1m window=60s limit=1;
--- config
    location = /api/x { linguamate_limit one; linguamate_endpoint root; }
--- request eval
["GET /api/x", "GET /api/x"]
--- more_headers
X-Correlation-Id: keep-me
--- error_code eval
[200, 429]
--- response_headers eval
["x-correlation-id: keep-me", "x-correlation-id: keep-me\nX-Frame-Options: DENY\nContent-Type: application/json; charset=utf-8"]
--- response_body_like eval
[qr//, qr/"requestId":"keep-me","retryAfter":60\}\}$/]
--- no_error_log
[error]



=== TEST 19: a rejected POST with a body keeps the connection usable
--- http_config
    linguamate_limit_zone one size=1m window=60s limit=1;
--- config
    location = /api/x { linguamate_limit one; linguamate_endpoint not_found; }
    location / { linguamate_endpoint not_found; }
--- pipelined_requests eval
["POST /api/x\n" . ("a" x 5000), "POST /api/x\n" . ("b" x 5000), "GET /api/none"]
--- error_code eval
[404, 429, 404]
--- no_error_log
[error]
[alert]



=== TEST 20: a limit above 10000 (the bucketed window) counts down and refuses
--- http_config
    linguamate_limit_zone big size=1m window=60s limit=20000;
    linguamate_limit_zone one size=1m window=60s limit=1;
--- config
    location = /api/x { linguamate_route x; linguamate_limit big; linguamate_endpoint root; }
    location = /api/y { linguamate_route x; linguamate_limit big; linguamate_limit one; linguamate_endpoint root; }
--- request eval
["GET /api/x", "GET /api/x", "GET /api/y", "GET /api/y", "GET /api/y", "GET /api/x"]
--- error_code eval
[200, 200, 200, 429, 429, 200]
--- response_headers eval
["X-RateLimit-Limit: 20000\nX-RateLimit-Remaining: 19999\nRateLimit-Policy: \"big\";q=20000;w=60\n!Retry-After",
 "X-RateLimit-Remaining: 19998",
 "X-RateLimit-Limit: 1",
 "X-RateLimit-Limit: 1\nRetry-After: 60",
 "X-RateLimit-Limit: 1",
 "X-RateLimit-Remaining: 19996"]
--- response_headers_like eval
["X-RateLimit-Reset: ^6[01]\$", "", "RateLimit: ^\"big\";r=19997;t=6[01], \"one\";r=0;t=60\$", "", "", ""]
--- no_error_log
[error]



=== TEST 21: RATE_LIMIT_MAX_REQUESTS above 10000 is a bucketed limit
--- http_config
    linguamate_rate_limit_max_requests 50000;
    linguamate_limit_zone global size=1m window=60s;
--- config
    location = /api/x { linguamate_limit global; linguamate_endpoint root; }
--- request eval
["GET /api/x", "GET /api/x"]
--- error_code eval
[200, 200]
--- response_headers eval
["X-RateLimit-Limit: 50000\nX-RateLimit-Remaining: 49999", "X-RateLimit-Remaining: 49998"]
--- response_headers_like eval
["X-RateLimit-Reset: ^6[01]\$", ""]
--- no_error_log
[error]
