# vim:set ft= ts=4 sw=4 et fdm=marker:
#
# Settings: directives, the env file (dotenv syntax), defaults, and the
# configuration errors that name the setting.

use lib 't/lib';
use Test::Nginx::Socket 'no_plan';
use Linguamate::Defaults;

no_shuffle();
run_tests();

__DATA__

=== TEST 1: values come from the env file, in dotenv syntax
--- http_config
    linguamate_env_file $TEST_NGINX_HTML_DIR/app.env;
--- config
    location = /api/info { linguamate_endpoint info; }
--- user_files
>>> app.env
# a comment line
export NODE_ENV=test
JWT_EXPIRES_IN="15m"   # quoted, with a comment
JWT_REFRESH_EXPIRES_IN='2w'
RATE_LIMIT_WINDOW_MS = 1000
RATE_LIMIT_MAX_REQUESTS=7 # inline comment
RATE_LIMIT_MAX_LOGIN_ATTEMPTS=
UNRELATED_VARIABLE=whatever
--- request
GET /api/info
--- response_body_like chomp
"env":"test",.*"auth":\{"accessTokenExpiresIn":"15m","refreshTokenExpiresIn":"2w","accessTokenExpiresInSeconds":900,"refreshTokenExpiresInSeconds":1209600,.*"rateLimit":\{"windowMs":1000,"maxRequests":7,"maxLoginAttempts":5\}
--- no_error_log
[error]



=== TEST 2: a directive wins over the env file
--- http_config
    linguamate_env_file $TEST_NGINX_HTML_DIR/app.env;
    linguamate_rate_limit_max_requests 99;
--- config
    location = /api/info { linguamate_endpoint info; }
--- user_files
>>> app.env
RATE_LIMIT_MAX_REQUESTS=7
--- request
GET /api/info
--- response_body_like chomp
"maxRequests":99,
--- no_error_log
[error]



=== TEST 3: the last of two lines for one name wins, as in dotenv
--- http_config
    linguamate_env_file $TEST_NGINX_HTML_DIR/app.env;
--- config
    location = /api/info { linguamate_endpoint info; }
--- user_files
>>> app.env
RATE_LIMIT_MAX_REQUESTS=7
RATE_LIMIT_MAX_REQUESTS=8
--- request
GET /api/info
--- response_body_like chomp
"maxRequests":8,
--- no_error_log
[error]



=== TEST 4: an invalid directive value names the setting
--- http_config
    linguamate_node_env prod;
--- config
--- must_die
--- error_log
linguamate: invalid value "prod" for NODE_ENV (directive, 
must be development, test, staging or production



=== TEST 5: an invalid env file value names the setting, file and line
--- http_config
    linguamate_env_file $TEST_NGINX_HTML_DIR/bad.env;
--- config
--- user_files
>>> bad.env
NODE_ENV=test

RATE_LIMIT_WINDOW_MS=soon
--- must_die
--- error_log eval
qr{linguamate: invalid value "soon" for RATE_LIMIT_WINDOW_MS \(env file, \S+/bad\.env:3\): must be an integer from 1000 to 86400000}



=== TEST 6: a dotenv syntax error names the file and line
--- http_config
    linguamate_env_file $TEST_NGINX_HTML_DIR/bad.env;
--- config
--- user_files
>>> bad.env
NODE_ENV=test
JWT_SECRET="unterminated
--- must_die
--- error_log eval
qr{linguamate: unterminated quoted value in env file "\S+/bad\.env" line 2}



=== TEST 7: a line that is not NAME=VALUE is an error
--- http_config
    linguamate_env_file $TEST_NGINX_HTML_DIR/bad.env;
--- config
--- user_files
>>> bad.env
NODE_ENV test
--- must_die
--- error_log eval
qr{linguamate: expected "=" after the variable name in env file "\S+/bad\.env" line 1}



=== TEST 8: a missing env file is an error
--- http_config
    linguamate_env_file $TEST_NGINX_HTML_DIR/none.env;
--- config
--- must_die
--- error_log eval
qr{linguamate: cannot open env file "\S+/none\.env"}



=== TEST 9: production without JWT_SECRET refuses to start
--- http_config
    linguamate_node_env production;
--- config
--- must_die
--- error_log
linguamate: JWT_SECRET is not set in production; set it to at least 32 bytes



=== TEST 10: production with a short JWT_SECRET refuses to start
--- http_config
    linguamate_node_env production;
    linguamate_jwt_secret short-secret;
--- config
--- must_die
--- error_log
linguamate: JWT_SECRET is too short in production; set it to at least 32 bytes



=== TEST 11: production with a 32-byte secret starts and is ready
--- http_config
    linguamate_node_env production;
    linguamate_jwt_secret 0123456789abcdef0123456789abcdef;
    linguamate_cors_allowed_origins https://app.example.com;
--- config
    location = /api/health/ready { linguamate_endpoint health_ready; }
--- request
GET /api/health/ready
--- error_code: 200
--- response_body
{"status":"ready"}
--- no_error_log
[warn]
[error]



=== TEST 12: a short JWT_SECRET in development is a warning only
--- http_config
    linguamate_jwt_secret short-secret;
    linguamate_log_file logs/events.log;
--- config
    location = /log { alias logs/events.log; }
--- request
GET /log
--- response_body_like chomp
"level":40,.*"evt":"config_warning","msg":"JWT_SECRET is shorter than 32 bytes; production refuses it"
--- no_error_log
[error]



=== TEST 13: an ADMIN_TOKEN shorter than 32 bytes is an error
--- http_config
    linguamate_admin_token abc;
--- config
--- must_die
--- error_log
linguamate: invalid value for ADMIN_TOKEN: must be at least 32 bytes



=== TEST 14: a bad CIDR in RATE_LIMIT_ALLOWLIST is an error
--- http_config
    linguamate_rate_limit_allowlist "10.0.0.0/8, 300.1.1.1";
--- config
--- must_die
--- error_log
invalid value "10.0.0.0/8, 300.1.1.1" for RATE_LIMIT_ALLOWLIST (directive,
must be a list of IPv4 or IPv6 addresses or CIDRs



=== TEST 15: IPv4 and IPv6 CIDRs are accepted
--- http_config
    linguamate_rate_limit_allowlist "10.0.0.0/8,192.168.1.7 ::1/128, 2001:db8::/32";
    linguamate_admin_allowlist "127.0.0.1";
--- config
    location = /api { linguamate_endpoint root; }
--- request
GET /api
--- error_code: 200
--- no_error_log
[error]



=== TEST 16: a toolkit URL that is not http(s) is an error
--- http_config
    linguamate_toolkit_url ftp://toolkit.example.com;
--- config
--- must_die
--- error_log
invalid value "ftp://toolkit.example.com" for EXPO_PUBLIC_TOOLKIT_URL (directive,
must be an http:// or https:// URL



=== TEST 17: a bad duration is an error
--- http_config
    linguamate_jwt_expires_in 7x;
--- config
--- must_die
--- error_log
invalid value "7x" for JWT_EXPIRES_IN (directive,
must be a duration such as 3600, 90s, 15m, 12h, 7d or 2w



=== TEST 18: a zero duration is an error
--- http_config
    linguamate_jwt_refresh_expires_in 0d;
--- config
--- must_die
--- error_log
invalid value "0d" for JWT_REFRESH_EXPIRES_IN



=== TEST 19: a boolean must be a boolean
--- http_config
    linguamate_maintenance_mode maybe;
--- config
--- must_die
--- error_log
invalid value "maybe" for MAINTENANCE_MODE (directive,
must be true or false



=== TEST 20: a port out of range is an error
--- http_config
    linguamate_port 70000;
--- config
--- must_die
--- error_log
invalid value "70000" for PORT (directive,
must be an integer from 1 to 65535



=== TEST 21: a log level must be a pino level
--- http_config
    linguamate_log_level loud;
--- config
--- must_die
--- error_log
invalid value "loud" for LOG_LEVEL (directive,
must be trace, debug, info, warn, error, fatal or silent



=== TEST 22: a setting given twice is an error
--- http_config
    linguamate_port 3000;
    linguamate_port 3001;
--- config
--- must_die
--- error_log
"linguamate_port" directive is duplicate



=== TEST 23: an empty value in the env file means the default
--- http_config
    linguamate_env_file $TEST_NGINX_HTML_DIR/app.env;
--- config
    location = /api/info { linguamate_endpoint info; }
--- user_files
>>> app.env
JWT_EXPIRES_IN=
RATE_LIMIT_WINDOW_MS=""
--- request
GET /api/info
--- response_body_like chomp
"accessTokenExpiresIn":"7d",.*"windowMs":60000,
--- no_error_log
[error]



=== TEST 24: a huge number does not wrap around
--- http_config
    linguamate_rate_limit_max_requests 99999999999999999999999;
--- config
--- must_die
--- error_log
invalid value "99999999999999999999999" for RATE_LIMIT_MAX_REQUESTS



=== TEST 25: WORKER_PROCESSES takes auto or a number
--- http_config
    linguamate_worker_processes lots;
--- config
--- must_die
--- error_log
invalid value "lots" for WORKER_PROCESSES
