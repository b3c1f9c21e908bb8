# vim:set ft= ts=4 sw=4 et fdm=marker:
#
# The informational endpoints: /api, /api/health (live, ready, detailed)
# and /api/info, their bodies as the contract gives them, GET/HEAD only.

use lib 't/lib';
use Test::Nginx::Socket 'no_plan';
use Linguamate::Defaults;
use Linguamate::Build;

our $commit = quotemeta Linguamate::Build::commit();
our $version = quotemeta Linguamate::Build::version();

no_shuffle();
run_tests();

__DATA__

=== TEST 1: /api answers ok with message, timestamp and version
--- config
    location = /api { linguamate_endpoint root; }
--- request
GET /api
--- error_code: 200
--- response_headers
Content-Type: application/json; charset=utf-8
--- response_body_like chomp
^\{"status":"ok","message":"Language Learning API is running","timestamp":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z","version":"1\.0\.0"\}$
--- no_error_log
[error]
[alert]



=== TEST 2: /api/health reports uptime, env and the commit as version
--- http_config
    linguamate_git_commit_sha abc123;
    linguamate_node_env test;
--- config
    location = /api/health { linguamate_endpoint health; }
--- request
GET /api/health
--- error_code: 200
--- response_body_like chomp
^\{"status":"ok","timestamp":"[0-9T:.Z-]{24}","uptime":\d+,"env":"test","version":"abc123"\}$
--- no_error_log
[error]



=== TEST 3: version is the commit compiled in without GIT_COMMIT_SHA
--- config
    location = /api/health { linguamate_endpoint health; }
--- request
GET /api/health
--- response_body_like eval
qr/"env":"development","version":"$::commit"\}$/
--- no_error_log
[error]



=== TEST 4: live answers alive
--- config
    location = /api/health/live { linguamate_endpoint health_live; }
--- request
GET /api/health/live
--- error_code: 200
--- response_body
{"status":"alive"}
--- no_error_log
[error]



=== TEST 5: ready answers ready when the configuration is sound
--- http_config
    linguamate_jwt_secret 0123456789abcdef0123456789abcdef;
--- config
    location = /api/health/ready { linguamate_endpoint health_ready; }
--- request
GET /api/health/ready
--- error_code: 200
--- response_body
{"status":"ready"}
--- no_error_log
[error]



=== TEST 6: ready is 503 with a reason in staging without a JWT secret
--- http_config
    linguamate_node_env staging;
--- config
    location = /api/health/ready { linguamate_endpoint health_ready; }
--- request
GET /api/health/ready
--- error_code: 503
--- response_body
{"status":"not ready","reason":"JWT_SECRET is not set or shorter than 32 bytes"}
--- no_error_log
[error]



=== TEST 7: detailed health is healthy with a sound configuration
--- http_config
    linguamate_jwt_secret 0123456789abcdef0123456789abcdef;
--- config
    location = /api/health/detailed { linguamate_endpoint health_detailed; }
--- request
GET /api/health/detailed
--- error_code: 200
--- response_body_like chomp
^\{"status":"healthy",.*"checks":\{"memory":\{"status":"healthy","details":\{"rssMB":[\d.]+,"limitMB":\d+,"usedPercent":\d+,"limitSource":"(cgroup|setting|system)","degradedAbovePercent":75,"unhealthyAbovePercent":90\}\},"sharedMemory":\{"status":"healthy","details":\{"zones":\{"linguamate_metrics":\{"sizeBytes":2097152,"usedBytes":\d+,"usedPercent":\d+,"entries":0,"evicted":0\},"linguamate_flags":\{"sizeBytes":32768,"usedBytes":\d+,"usedPercent":\d+,"entries":0,"evicted":0\}\}\}\},"circuitBreakers":\{"status":"healthy","details":\{"total":0,"open":0,"circuits":\{\}\}\},"environment":\{"status":"healthy","details":\{"nodeEnv":"development","jwtSecret":"configured","warnings":0,"ready":true\}\}\}\}$
--- no_error_log
[error]



=== TEST 8: detailed health is degraded on configuration warnings
--- config
    location = /api/health/detailed { linguamate_endpoint health_detailed; }
--- request
GET /api/health/detailed
--- error_code: 200
--- response_body_like chomp
^\{"status":"degraded",.*"environment":\{"status":"degraded","details":\{"nodeEnv":"development","jwtSecret":"development-default","warnings":1,
--- no_error_log
[error]



=== TEST 9: detailed health is unhealthy (503) when not ready
--- http_config
    linguamate_node_env staging;
--- config
    location = /api/health/detailed { linguamate_endpoint health_detailed; }
--- request
GET /api/health/detailed
--- error_code: 503
--- response_body_like chomp
^\{"status":"unhealthy",.*"environment":\{"status":"unhealthy",.*"ready":false,"reason":"JWT_SECRET is not set or shorter than 32 bytes"\}
--- no_error_log
[error]



=== TEST 10: info shows token lifetimes and rate limits from settings
--- http_config
    linguamate_jwt_expires_in 15m;
    linguamate_jwt_refresh_expires_in 3600;
    linguamate_rate_limit_window_ms 30000;
    linguamate_rate_limit_max_requests 100;
    linguamate_rate_limit_max_login_attempts 3;
--- config
    location = /api/info { linguamate_endpoint info; }
--- request
GET /api/info
--- error_code: 200
--- response_body_like eval
qr!^\{"name":"Language Learning Backend","version":"1\.0\.0","env":"development","build":\{"version":"$::version","commit":"$::commit","nginx":"1\.22\.1"\},"endpoints":\{"trpc":"/api/trpc",.*\},"auth":\{"accessTokenExpiresIn":"15m","refreshTokenExpiresIn":"3600","accessTokenExpiresInSeconds":900,"refreshTokenExpiresInSeconds":3600,"leewaySeconds":30\},"rateLimit":\{"windowMs":30000,"maxRequests":100,"maxLoginAttempts":3\}\}$!
--- no_error_log
[error]



=== TEST 11: info defaults are 7d / 30d and 60000 ms / 60 / 5
--- config
    location = /api/info { linguamate_endpoint info; }
--- request
GET /api/info
--- response_body_like chomp
"auth":\{"accessTokenExpiresIn":"7d","refreshTokenExpiresIn":"30d","accessTokenExpiresInSeconds":604800,"refreshTokenExpiresInSeconds":2592000,"leewaySeconds":30\},"rateLimit":\{"windowMs":60000,"maxRequests":60,"maxLoginAttempts":5\}\}$
--- no_error_log
[error]



=== TEST 12: POST to a GET endpoint is a 405 envelope with Allow
--- config
    location = /api/health { linguamate_endpoint health; }
--- request
POST /api/health
{"a":1}
--- more_headers
Content-Type: application/json
--- error_code: 405
--- response_headers
Allow: GET, HEAD
Content-Type: application/json; charset=utf-8
--- response_body_like chomp
^\{"error":\{"code":"METHOD_NOT_ALLOWED","message":"Method not allowed","timestamp":"[0-9T:.Z-]{24}","requestId":"[0-9a-f-]{36}"\}\}$
--- no_error_log
[error]
[alert]



=== TEST 13: DELETE on info is 405 too
--- config
    location = /api/info { linguamate_endpoint info; }
--- request
DELETE /api/info
--- error_code: 405
--- response_headers
Allow: GET, HEAD
--- no_error_log
[error]



=== TEST 14: HEAD on health answers headers only
--- config
    location = /api/health { linguamate_endpoint health; }
--- request
HEAD /api/health
--- error_code: 200
--- response_headers
Content-Type: application/json; charset=utf-8
--- response_body
--- no_error_log
[error]
