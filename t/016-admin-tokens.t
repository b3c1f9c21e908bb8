# vim:set ft= ts=4 sw=4 et fdm=marker:
#
# Named admin tokens (ADMIN_TOKENS="name:token,..."): each opens the
# operations API, its admin_action lines name the operator and never show
# a token; ADMIN_TOKEN keeps working (as "admin"); bad lists stop nginx
# with a message that shows no token.

use lib 't/lib';
use Test::Nginx::Socket 'no_plan';
use Linguamate::Defaults;

our $Alice = 'alice-token-0123456789abcdef0123456789';
our $Bob = 'bob:with:colons-0123456789abcdef01234567';
our $Single = 'single-admin-token-0123456789abcdef0123';

our $Http = <<"_EOC_";
    linguamate_log_file logs/events.log;
    linguamate_admin_tokens "alice:$Alice, bob:$Bob";
_EOC_

our $Server = <<'_EOC_';
    location /api/admin/ { linguamate_endpoint admin; }
    location = /log { linguamate off; alias logs/events.log; }
_EOC_

our $Secrets = qr/\Q$Alice\E|\Q$Bob\E|\Q$Single\E|0123456789abcdef01234/;

# at debug, nginx itself prints request headers: the deployment logs at warn
log_level("info");
no_shuffle();
run_tests();

__DATA__

=== TEST 1: each named token opens the API; the log names its holder only
--- http_config eval: $::Http . "linguamate_admin_token $::Single;\n"
--- config eval: $::Server
--- request eval
["GET /api/admin/state", "GET /api/admin/state", "GET /api/admin/state",
 "GET /api/admin/state", "GET /api/admin/state", "GET /log"]
--- more_headers eval
["Authorization: Bearer $::Alice", "Authorization: Bearer $::Bob",
 "Authorization: Bearer $::Single", "Authorization: Bearer " . $::Alice . "x",
 "Authorization: Bearer alice:$::Alice", ""]
--- error_code eval
[200, 200, 200, 401, 401, 200]
--- response_body_like eval
["", "", "", qr/"code":"UNAUTHORIZED"/, qr/"code":"UNAUTHORIZED"/,
 qr/"action":"state","status":200,"client":"127\.0\.0\.1","operator":"alice","corr".*\n.*"status":200,"client":"127\.0\.0\.1","operator":"bob","corr".*\n.*"status":200,"client":"127\.0\.0\.1","operator":"admin","corr".*\n.*"status":401,"client":"127\.0\.0\.1","corr".*\n.*"status":401,"client":"127\.0\.0\.1","corr"/]
--- response_body_unlike eval
["", "", "", "", "", qr/$::Secrets|"status":401[^\n]*"operator"/]
--- no_error_log eval
[qr/\[error\]/, $::Secrets]



=== TEST 2: ADMIN_TOKENS alone enables the API
--- http_config eval: $::Http
--- config eval: $::Server
--- request eval
["GET /api/admin/state", "GET /api/admin/state"]
--- more_headers eval
["Authorization: Bearer $::Bob", "Authorization: Bearer $::Single"]
--- error_code eval
[200, 401]
--- no_error_log
[error]



=== TEST 3: a single ADMIN_TOKEN works unchanged, logged as "admin"
--- http_config eval
"linguamate_log_file logs/events.log;\nlinguamate_admin_token $::Single;\n"
--- config eval: $::Server
--- request eval
["GET /api/admin/state", "GET /log"]
--- more_headers eval
["Authorization: Bearer $::Single", ""]
--- error_code eval
[200, 200]
--- response_body_like eval
["", qr/"evt":"admin_action".*"status":200,"client":"127\.0\.0\.1","operator":"admin"/]
--- response_body_unlike eval
["", $::Secrets]
--- no_error_log
[error]



=== TEST 4: a short token stops nginx, naming its holder, not the token
--- http_config
    linguamate_admin_tokens "alice:alice-token-0123456789abcdef0123456789,bob:short-bob-token";
--- config
--- must_die
--- error_log
invalid value for ADMIN_TOKENS: the token of "bob" must be at least 32 bytes
--- no_error_log eval
[qr/short-bob-token|alice-token-0123/]



=== TEST 5: a name given twice stops nginx
--- http_config
    linguamate_admin_tokens "alice:alice-token-0123456789abcdef0123456789,alice:other-token-0123456789abcdef0123456789";
--- config
--- must_die
--- error_log
invalid value for ADMIN_TOKENS: "alice" is named twice
--- no_error_log eval
[qr/alice-token-0123|other-token-0123/]



=== TEST 6: two names with one token stop nginx
--- http_config
    linguamate_admin_token same-token-0123456789abcdef0123456789ab;
    linguamate_admin_tokens "carol:same-token-0123456789abcdef0123456789ab";
--- config
--- must_die
--- error_log
invalid value for ADMIN_TOKENS: "admin" and "carol" have the same token
--- no_error_log eval
[qr/same-token-0123/]



=== TEST 7: an entry without a name stops nginx
--- http_config
    linguamate_admin_tokens "nameless-token-0123456789abcdef0123456789";
--- config
--- must_die
--- error_log
invalid value for ADMIN_TOKENS: entry 1 is not "name:token"
--- no_error_log eval
[qr/nameless-token-0123/]



=== TEST 8: a bad character in a name stops nginx
--- http_config
    linguamate_admin_tokens "al ice:alice-token-0123456789abcdef0123456789";
--- config
--- must_die
--- error_log
invalid value for ADMIN_TOKENS: entry 1 is not "name:token"
--- no_error_log eval
[qr/alice-token-0123/]



=== TEST 9: a control character in ADMIN_TOKENS is refused without showing it
--- http_config eval
"linguamate_admin_tokens \"alice:alice-token-0123456789abcdef0123456789\x01\";\n"
--- config
--- must_die
--- error_log
invalid value "(not shown)" for ADMIN_TOKENS
--- no_error_log eval
[qr/alice-token-0123/]
