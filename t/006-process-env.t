# vim:set ft= ts=4 sw=4 et fdm=marker:
#
# The process environment wins over the env file (dotenv convention);
# a directive wins over both; linguamate_env_from_process off ignores it.

use lib 't/lib';
use Test::Nginx::Socket 'no_plan';

# upstream Test::Nginx reads $TEST_NGINX_HTML_DIR from the environment
$ENV{TEST_NGINX_HTML_DIR} //= html_dir();
$ENV{RATE_LIMIT_MAX_REQUESTS} = 77;
$ENV{JWT_EXPIRES_IN} = '12h';

no_shuffle();
run_tests();

__DATA__

=== TEST 1: the process environment wins over the env file
--- http_config
    linguamate_env_file $TEST_NGINX_HTML_DIR/app.env;
--- config
    location = /api/info { linguamate_endpoint info; }
--- user_files
>>> app.env
RATE_LIMIT_MAX_REQUESTS=7
JWT_EXPIRES_IN=1h
RATE_LIMIT_WINDOW_MS=5000
--- request
GET /api/info
--- response_body_like chomp
"accessTokenExpiresIn":"12h",.*"windowMs":5000,"maxRequests":77,
--- no_error_log
[error]



=== TEST 2: a directive wins over the process environment
--- http_config
    linguamate_rate_limit_max_requests 5;
--- config
    location = /api/info { linguamate_endpoint info; }
--- request
GET /api/info
--- response_body_like chomp
"maxRequests":5,
--- no_error_log
[error]



=== TEST 3: linguamate_env_from_process off ignores the environment
--- http_config
    linguamate_env_from_process off;
    linguamate_env_file $TEST_NGINX_HTML_DIR/app.env;
--- config
    location = /api/info { linguamate_endpoint info; }
--- user_files
>>> app.env
RATE_LIMIT_MAX_REQUESTS=7
--- request
GET /api/info
--- response_body_like chomp
"accessTokenExpiresIn":"7d",.*"maxRequests":7,
--- no_error_log
[error]
