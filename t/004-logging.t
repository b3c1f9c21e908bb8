# vim:set ft= ts=4 sw=4 et fdm=marker:
#
# One pino-shaped JSON line per request through nginx's access_log and
# $linguamate_log_line; module events in the same shape; LOG_LEVEL and
# LOG_PRETTY.  Lines are read back with a JSON parser.

use lib 't/lib';
use Test::Nginx::Socket 'no_plan';
use Linguamate::Defaults;
use Linguamate::Log;

our $LogConfig = <<'_EOC_';
    log_format lm escape=none '$linguamate_log_line';
_EOC_

no_shuffle();
run_tests();

__DATA__

=== TEST 1: a 200 is logged at level 30 with req and corr
--- http_config eval: $::LogConfig
--- config
    access_log logs/app.log lm if=$linguamate_log_enabled;
    location = /api/health { linguamate_endpoint health; }
    location = /log { access_log off; linguamate off; alias logs/app.log; }
--- request eval
["GET /api/health?token=secret-in-query", "GET /log"]
--- more_headers
X-Correlation-Id: c-1
X-Session-Id: s-9
--- response_body_filters eval
\&Linguamate::Log::log_summary
--- response_body eval
["", "30 http_request GET /api/health 200 Nms | GET /api/health 200 | c-1 s-9\n"]
--- no_error_log
[error]



=== TEST 2: 404 is level 40 and 500 is level 50
--- http_config eval: $::LogConfig
--- config
    access_log logs/app.log lm if=$linguamate_log_enabled;
    location / { linguamate_endpoint not_found; }
    location = /api/boom { return 500; }
    location = /log { access_log off; linguamate off; alias logs/app.log; }
--- request eval
["GET /api/missing", "GET /api/boom", "GET /log"]
--- error_code eval
[404, 500, 200]
--- more_headers
X-Correlation-Id: c-2
--- response_body_filters eval
\&Linguamate::Log::log_summary
--- response_body eval
["", "", "40 http_request GET /api/missing 404 Nms | GET /api/missing 404 | c-2 -\n50 http_request GET /api/boom 500 Nms | GET /api/boom 500 | c-2 -\n"]
--- no_error_log
[error]



=== TEST 3: at LOG_LEVEL warn a 200 is not logged, a 404 is
--- http_config eval: $::LogConfig . "linguamate_log_level warn;"
--- config
    access_log logs/app.log lm if=$linguamate_log_enabled;
    location = /api { linguamate_endpoint root; }
    location / { linguamate_endpoint not_found; }
    location = /log { access_log off; linguamate off; alias logs/app.log; }
--- request eval
["GET /api", "GET /api/x", "GET /log"]
--- error_code eval
[200, 404, 200]
--- more_headers
X-Correlation-Id: c-3
--- response_body_filters eval
\&Linguamate::Log::log_summary
--- response_body eval
["", "", "40 http_request GET /api/x 404 Nms | GET /api/x 404 | c-3 -\n"]
--- no_error_log
[error]



=== TEST 4: at LOG_LEVEL error a 404 is not logged, a 500 is
--- http_config eval: $::LogConfig . "linguamate_log_level error;"
--- config
    access_log logs/app.log lm if=$linguamate_log_enabled;
    location / { linguamate_endpoint not_found; }
    location = /api/boom { return 500; }
    location = /log { access_log off; linguamate off; alias logs/app.log; }
--- request eval
["GET /api/x", "GET /api/boom", "GET /log"]
--- error_code eval
[404, 500, 200]
--- more_headers
X-Correlation-Id: c-4
--- response_body_filters eval
\&Linguamate::Log::log_summary
--- response_body eval
["", "", "50 http_request GET /api/boom 500 Nms | GET /api/boom 500 | c-4 -\n"]
--- no_error_log
[error]



=== TEST 5: LOG_PRETTY prints one readable line per request
--- http_config eval: $::LogConfig . "linguamate_log_pretty true;"
--- config
    access_log logs/app.log lm if=$linguamate_log_enabled;
    location = /api { linguamate_endpoint root; }
    location = /log { access_log off; linguamate off; alias logs/app.log; }
--- request eval
["GET /api", "GET /log"]
--- more_headers
X-Correlation-Id: c-5
--- response_body_like eval
[qr/ok/, qr/^\[\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\] INFO \(\d+\): GET \/api 200 \d+ms corr=c-5\n$/]
--- no_error_log
[error]



=== TEST 6: hostile bytes in the path still make valid JSON
--- http_config eval: $::LogConfig
--- config
    access_log logs/app.log lm;
    location / { linguamate_endpoint not_found; }
    location = /log { access_log off; linguamate off; alias logs/app.log; }
--- raw_request eval
["GET /api/a\"b\\c\xff\xfe HTTP/1.0\r\nX-Correlation-Id: c-6\r\n\r\n", "GET /log HTTP/1.0\r\n\r\n"]
--- error_code eval
[404, 200]
--- response_body_filters eval
\&Linguamate::Log::log_summary
--- response_body eval
["", "40 http_request GET /api/a\"b\\c\x{fffd}\x{fffd} 404 Nms | GET /api/a\"b\\c\x{fffd}\x{fffd} 404 | c-6 -\n"]
--- no_error_log
[alert]



=== TEST 7: a configuration warning is a config_warning event line
--- http_config
    linguamate_log_file logs/events.log;
--- config
    location = /log { alias logs/events.log; }
--- request
GET /log
--- response_body_filters eval
\&Linguamate::Log::log_summary
--- response_body
40 config_warning JWT_SECRET is not set; using the development default secret (never in production)
--- no_error_log
[alert]



=== TEST 8: no warning event below its level
--- http_config
    linguamate_log_file logs/events.log;
    linguamate_log_level error;
--- config
    location = /log { alias logs/events.log; }
--- request
GET /log
--- response_body
--- no_error_log
[alert]



=== TEST 9: LOG_PRETTY names the level: WARN for a 404, ERROR for a 500
--- http_config eval: $::LogConfig . "linguamate_log_pretty true;"
--- config
    access_log logs/app.log lm if=$linguamate_log_enabled;
    location / { linguamate_endpoint not_found; }
    location = /api/boom { return 500; }
    location = /log { access_log off; linguamate off; alias logs/app.log; }
--- request eval
["GET /api/missing", "GET /api/boom", "GET /log"]
--- error_code eval
[404, 500, 200]
--- more_headers
X-Correlation-Id: c-9
--- response_body_like eval
[qr/NOT_FOUND/, qr/INTERNAL_SERVER_ERROR/, qr/^\[[^\]]+\] WARN \(\d+\): GET \/api\/missing 404 \d+ms corr=c-9\n\[[^\]]+\] ERROR \(\d+\): GET \/api\/boom 500 \d+ms corr=c-9\n$/]
--- no_error_log
[error]



=== TEST 10: LOG_LEVEL is read in any case; silent writes no event
--- http_config
    linguamate_log_file logs/events.log;
    linguamate_log_level Silent;
--- config
    location = /log { alias logs/events.log; }
--- request
GET /log
--- response_body
--- no_error_log
[alert]
