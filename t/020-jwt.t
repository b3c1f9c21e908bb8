# vim:set ft= ts=4 sw=4 et fdm=marker:
#
# JWT verification on API routes: HS256 pinned, exp/nbf/iat with leeway,
# the token type, every malformed shape, the 401 an app can act on, the
# claims passed to upstreams, and secret rotation.

use lib 't/lib';
use Test::Nginx::Socket 'no_plan';
use Linguamate::Defaults;
use Linguamate::Token;

my $now = time;

our %T = (
    valid     => token(sub => 'user-1', sid => 'sess-1', claim => ['email=u1@example.com', 'role=learner']),
    refresh   => token(sub => 'user-1', sid => 'sess-1', type => 'refresh'),
    expired   => token(sub => 'user-1', iat => $now - 1000, exp => $now - 100),
    # made as the file loads: TESTS 1-2 use it first, so that a slow run
    # (valgrind) has not spent the leeway's 20 s margin before them
    skewed    => token(sub => 'user-1', iat => $now - 1000, exp => $now - 10),
    nbf       => token(sub => 'user-1', nbf => $now + 600),
    future    => token(sub => 'user-1', iat => $now + 600, exp => $now + 1200),
    other     => token(sub => 'user-1', secret => $OTHER),
    none      => token(sub => 'user-1', alg => 'none'),
    hs512     => token(sub => 'user-1', alg => 'HS512'),
    noexp     => token(sub => 'user-1', 'without-exp' => undef),
    previous  => token(sub => 'user-2', secret => $OTHER),
    rs256     => raw_token('{"alg":"RS256","typ":"JWT"}', qq({"sub":"u","type":"access","exp":@{[$now+600]}})),
    notjson   => raw_token('{"alg":"HS256"}', 'this is not json'),
    strexp    => raw_token('{"alg":"HS256"}', '{"sub":"u","type":"access","exp":"soon"}'),
    nosub     => raw_token('{"alg":"HS256"}', qq({"type":"access","exp":@{[$now+600]}})),
    deep      => raw_token('{"alg":"HS256"}', ('[' x 5000) . (']' x 5000)),
    crit      => raw_token('{"alg":"HS256","typ":"JWT","crit":["b64"],"b64":false}', qq({"sub":"u","type":"access","exp":@{[$now+600]}})),
    crit_exp  => raw_token('{"alg":"HS256","crit":["exp"]}', qq({"sub":"u","type":"access","exp":@{[$now+600]}})),
    crit_none => raw_token('{"alg":"HS256","crit":[]}', qq({"sub":"u","type":"access","exp":@{[$now+600]}})),
    crit_str  => raw_token('{"alg":"HS256","crit":"b64"}', qq({"sub":"u","type":"access","exp":@{[$now+600]}})),
    crit_num  => raw_token('{"alg":"HS256","crit":[1]}', qq({"sub":"u","type":"access","exp":@{[$now+600]}})),
    crit_null => raw_token('{"alg":"HS256","crit":null}', qq({"sub":"u","type":"access","exp":@{[$now+600]}})),
    typ_other => raw_token('{"alg":"HS256","typ":"at+jwt"}', qq({"sub":"u","type":"access","exp":@{[$now+600]}})),
    typ_jws   => raw_token('{"alg":"HS256","typ":"JWS"}', qq({"sub":"u","type":"access","exp":@{[$now+600]}})),
    typ_lower => raw_token('{"alg":"HS256","typ":"jwt"}', qq({"sub":"u","type":"access","exp":@{[$now+600]}})),
    ms_ok     => raw_token('{"alg":"HS256"}', qq({"sub":"u","type":"access","exp":@{[$now+600]},"iat":$now,"iat_ms":@{[$now*1000+999]}})),
    ms_other  => raw_token('{"alg":"HS256"}', qq({"sub":"u","type":"access","exp":@{[$now+600]},"iat":$now,"iat_ms":@{[$now*1000+1000]}})),
    ms_noiat  => raw_token('{"alg":"HS256"}', qq({"sub":"u","type":"access","exp":@{[$now+600]},"iat_ms":@{[$now*1000]}})),
    ms_str    => raw_token('{"alg":"HS256"}', qq({"sub":"u","type":"access","exp":@{[$now+600]},"iat":$now,"iat_ms":"@{[$now*1000]}"})),
    dup       => raw_token('{"alg":"HS256"}', qq({"sub":"first","type":"access","exp":@{[$now+600]},"email":"a\@x","sub":"user-9","email":"b\@x"})),
    dup_exp   => raw_token('{"alg":"HS256"}', qq({"sub":"u","type":"access","exp":@{[$now+600]},"exp":"later"})),
    nul       => raw_token('{"alg":"HS256"}', qq({"sub":"u","type":"access","exp":@{[$now+600]}}\0 trailing)),
    surrogate => raw_token('{"alg":"HS256"}', qq({"sub":"u\\ud800","type":"access","exp":@{[$now+600]}})),
    overlong  => raw_token('{"alg":"HS256"}', qq({"sub":"u\xc0\xaf","type":"access","exp":@{[$now+600]}})),
    bigint    => raw_token('{"alg":"HS256"}', qq({"sub":"u","type":"access","exp":@{[$now+600]},"n":99999999999999999999})),
    bigexp    => raw_token('{"alg":"HS256"}', qq({"sub":"u","type":"access","exp":1e400})),
    trailing  => raw_token('{"alg":"HS256"}', qq({"sub":"u","type":"access","exp":@{[$now+600]}} "x)),
    bigheader => raw_token('{"alg":"HS256","x":"' . ('h' x 10000) . '"}', qq({"sub":"u","type":"access","exp":@{[$now+600]}})),
);

our $Http = <<"_EOC_";
    linguamate_jwt_secret $SECRET;
    linguamate_log_file logs/events.log;
_EOC_

our $Api = <<'_EOC_';
    location = /api/me {
        linguamate_route me;
        linguamate_auth on;
        proxy_set_header X-User-Id $linguamate_user_id;
        proxy_set_header X-Session-Id $linguamate_session_id;
        proxy_set_header X-Email $linguamate_jwt_claim_email;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/echo;
    }
    location = /echo {
        linguamate off;
        return 200 "user=$http_x_user_id session=$http_x_session_id email=$http_x_email\n";
    }
    location = /log { linguamate off; alias logs/events.log; }
_EOC_

no_shuffle();
run_tests();

__DATA__

=== TEST 1: leeway accepts a token that expired 10 s ago (default 30 s)
--- http_config eval: $::Http
--- config eval: $::Api
--- request
GET /api/me
--- more_headers eval
"Authorization: Bearer $::T{skewed}"
--- error_code: 200
--- no_error_log
[error]



=== TEST 2: with JWT_LEEWAY_SECONDS 0 the same token is expired
--- http_config eval: $::Http . "linguamate_jwt_leeway_seconds 0;"
--- config eval: $::Api
--- request
GET /api/me
--- more_headers eval
"Authorization: Bearer $::T{skewed}"
--- error_code: 401
--- response_body_like chomp
"reason":"TOKEN_EXPIRED"
--- no_error_log
[error]



=== TEST 3: a valid access token passes; user and session reach the upstream
--- http_config eval: $::Http
--- config eval: $::Api
--- request
GET /api/me
--- more_headers eval
"Authorization: Bearer $::T{valid}\nX-User-Id: spoofed\nX-Session-Id: spoofed"
--- error_code: 200
--- response_body
user=user-1 session=sess-1 email=u1@example.com
--- no_error_log
[error]



=== TEST 4: no token: 401 MISSING, "Authentication required"
--- http_config eval: $::Http
--- config eval: $::Api
--- request
GET /api/me
--- error_code: 401
--- response_headers
WWW-Authenticate: Bearer realm="linguamate"
Content-Type: application/json; charset=utf-8
--- response_body_like chomp
^\{"error":\{"code":"UNAUTHORIZED","message":"Authentication required","timestamp":"[^"]+","requestId":"[^"]+","reason":"MISSING"\}\}$
--- no_error_log
[error]



=== TEST 5: each failure says why, in the body and WWW-Authenticate
--- http_config eval: $::Http
--- config eval: $::Api
--- request eval
[map { "GET /api/me" } 1 .. 8]
--- more_headers eval
[map { "Authorization: Bearer $::T{$_}" } qw(expired nbf future other refresh none hs512 rs256)]
--- error_code eval
[map { 401 } 1 .. 8]
--- response_body_like eval
[map { qr/"message":"Invalid token",.*"reason":"$_"\}\}$/ } qw(TOKEN_EXPIRED NOT_YET_VALID NOT_YET_VALID BAD_SIGNATURE WRONG_TYPE BAD_SIGNATURE BAD_SIGNATURE BAD_SIGNATURE)]
--- response_headers eval
[map { "WWW-Authenticate: Bearer realm=\"linguamate\", error=\"invalid_token\", error_description=\"$_\"" } qw(TOKEN_EXPIRED NOT_YET_VALID NOT_YET_VALID BAD_SIGNATURE WRONG_TYPE BAD_SIGNATURE BAD_SIGNATURE BAD_SIGNATURE)]
--- no_error_log
[error]



=== TEST 6: malformed tokens are MALFORMED, and never crash a worker
--- http_config eval: $::Http
--- config eval: $::Api
--- request eval
[map { "GET /api/me" } 1 .. 10]
--- more_headers eval
[map { "Authorization: $_" }
 "Bearer a.b!.c", "Bearer onlyone.two", "Bearer a.b.c.d", "Bearer $::T{notjson}",
 "Bearer $::T{strexp}", "Bearer $::T{noexp}", "Bearer $::T{nosub}",
 "Basic dXNlcjpwYXNz", "Bearer", "Bearer ..."]
--- error_code eval
[map { 401 } 1 .. 10]
--- response_body_like eval
[map { qr/"reason":"MALFORMED"\}\}$/ } 1 .. 10]
--- no_error_log
[error]
[alert]



=== TEST 7: a 10 KB header, a 16 KB token and claims nested 5000 deep are refused
--- http_config eval: $::Http
--- config eval: "large_client_header_buffers 4 32k;\n" . $::Api
--- request eval
["GET /api/me", "GET /api/me", "GET /api/me"]
--- more_headers eval
["Authorization: Bearer $::T{bigheader}", "Authorization: Bearer " . ("A" x 16384) . ".b.c",
 "Authorization: Bearer $::T{deep}"]
--- error_code eval
[401, 401, 401]
--- response_body_like eval
[qr/"reason":"MALFORMED"/, qr/"reason":"MALFORMED"/, qr/"reason":"MALFORMED"/]
--- no_error_log
[alert]



=== TEST 8: JWT_SECRET_PREVIOUS still verifies during a rotation
--- http_config eval: $::Http . "linguamate_jwt_secret_previous $Linguamate::Token::OTHER;"
--- config eval: $::Api
--- request eval
["GET /api/me", "GET /api/me"]
--- more_headers eval
["Authorization: Bearer $::T{previous}", "Authorization: Bearer $::T{valid}"]
--- error_code eval
[200, 200]
--- response_body eval
["user=user-2 session= email=\n", "user=user-1 session=sess-1 email=u1\@example.com\n"]
--- no_error_log
[error]



=== TEST 9: without JWT_SECRET_PREVIOUS the old secret's tokens fail
--- http_config eval: $::Http
--- config eval: $::Api
--- request
GET /api/me
--- more_headers eval
"Authorization: Bearer $::T{previous}"
--- error_code: 401
--- response_body_like chomp
"reason":"BAD_SIGNATURE"
--- no_error_log
[error]



=== TEST 10: auth_failed is logged with the reason, never the token
--- http_config eval: $::Http
--- config eval: $::Api
--- request eval
["GET /api/me", "GET /log"]
--- more_headers eval
["Authorization: Bearer $::T{expired}", ""]
--- error_code eval
[401, 200]
--- response_body_like eval
[qr/TOKEN_EXPIRED/, qr/"level":40,.*"evt":"auth_failed","msg":"Authentication failed","cat":"auth","reason":"TOKEN_EXPIRED","route":"me","client":"127\.0\.0\.1"/]
--- response_body_unlike eval
["", qr/eyJ|test-secret/]
--- no_error_log
[error]



=== TEST 11: optional auth lets anonymous and bad tokens through, with the user when valid
--- http_config eval: $::Http
--- config
    location = /api/opt {
        linguamate_auth optional;
        proxy_set_header X-User-Id $linguamate_user_id;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/echo;
    }
    location = /echo { linguamate off; return 200 "user=$http_x_user_id\n"; }
--- request eval
["GET /api/opt", "GET /api/opt", "GET /api/opt"]
--- more_headers eval
["", "Authorization: Bearer $::T{expired}\nX-User-Id: spoofed", "Authorization: Bearer $::T{valid}"]
--- error_code eval
[200, 200, 200]
--- response_body eval
["user=\n", "user=\n", "user=user-1\n"]
--- no_error_log
[error]



=== TEST 12: strict mode turns optional into required
--- http_config eval: $::Http . "linguamate_security_strict_mode on;"
--- config
    location = /api/opt {
        linguamate_auth optional;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/echo;
    }
    location = /echo { linguamate off; return 200 "ok\n"; }
--- request eval
["GET /api/opt", "GET /api/opt", "GET /api/opt"]
--- more_headers eval
["", "Authorization: Bearer $::T{expired}", "Authorization: Bearer $::T{valid}"]
--- error_code eval
[401, 401, 200]
--- no_error_log
[error]



=== TEST 13: GET /api/auth/session returns the verified claims
--- http_config eval: $::Http
--- config
    location = /api/auth/session { linguamate_auth on; linguamate_endpoint auth_session; }
--- request
GET /api/auth/session
--- more_headers eval
"Authorization: Bearer $::T{valid}"
--- error_code: 200
--- response_body_like chomp
^\{"authenticated":true,"userId":"user-1","sessionId":"sess-1","expiresAt":"[0-9T:.Z-]{24}","claims":\{.*"email":"u1\@example\.com".*"sub":"user-1".*\}\}$
--- no_error_log
[error]



=== TEST 14: the session endpoint verifies even without linguamate_auth
--- http_config eval: $::Http
--- config
    location = /api/auth/session { linguamate_endpoint auth_session; }
--- request eval
["GET /api/auth/session", "GET /api/auth/session"]
--- more_headers eval
["", "Authorization: Bearer $::T{refresh}"]
--- error_code eval
[401, 401]
--- response_body_like eval
[qr/"reason":"MISSING"/, qr/"reason":"WRONG_TYPE"/]
--- no_error_log
[error]



=== TEST 15: a cached token is still checked for expiry and type
--- http_config eval: $::Http
--- config eval: $::Api
--- request eval
["GET /api/me", "GET /api/me", "GET /api/me", "GET /api/me"]
--- more_headers eval
["Authorization: Bearer $::T{valid}", "Authorization: Bearer $::T{valid}", "Authorization: Bearer $::T{expired}", "Authorization: Bearer $::T{expired}"]
--- error_code eval
[200, 200, 401, 401]
--- no_error_log
[error]



=== TEST 16: a header with "crit" is refused as MALFORMED: no extension is implemented (RFC 7515, 4.1.11), and a malformed crit too
--- http_config eval: $::Http
--- config eval: $::Api
--- request eval
[map { "GET /api/me" } 1 .. 6]
--- more_headers eval
[map { "Authorization: Bearer $::T{$_}" } qw(crit crit_exp crit_none crit_str crit_num crit_null)]
--- error_code eval
[map { 401 } 1 .. 6]
--- response_body_like eval
[map { qr/"reason":"MALFORMED"\}\}$/ } 1 .. 6]
--- no_error_log
[error]



=== TEST 17: typ, when a string, is JWT in any case (as libjwt read it)
--- http_config eval: $::Http
--- config eval: $::Api
--- request eval
["GET /api/me", "GET /api/me"]
--- more_headers eval
["Authorization: Bearer $::T{typ_other}", "Authorization: Bearer $::T{typ_lower}"]
--- error_code eval
[401, 200]
--- response_body_like eval
[qr/"reason":"MALFORMED"/, qr/^user=u /]
--- no_error_log
[error]



=== TEST 18: iat_ms, the millisecond of issue, is an integer of iat's second
--- http_config eval: $::Http
--- config eval: $::Api
--- request eval
[map { "GET /api/me" } 1 .. 4]
--- more_headers eval
[map { "Authorization: Bearer $::T{$_}" } qw(ms_ok ms_other ms_noiat ms_str)]
--- error_code eval
[200, 401, 401, 401]
--- response_body_like eval
[qr/^user=u /, qr/"reason":"MALFORMED"/, qr/"reason":"MALFORMED"/, qr/"reason":"MALFORMED"/]
--- no_error_log
[error]



=== TEST 19: a claim given twice counts once, the last one, as JSON.parse reads it
--- http_config eval: $::Http
--- config eval: $::Api
--- request eval
["GET /api/me", "GET /api/me"]
--- more_headers eval
["Authorization: Bearer $::T{dup}", "Authorization: Bearer $::T{dup_exp}"]
--- error_code eval
[200, 401]
--- response_body_like eval
[qr/^user=user-9 session= email=b\@x$/, qr/"reason":"MALFORMED"/]
--- no_error_log
[error]



=== TEST 20: claims that jansson or JSON.parse refuse are MALFORMED, though signed: a NUL byte, a lone surrogate, overlong UTF-8, an integer past 64 bits, 1e400, a string left open
--- http_config eval: $::Http
--- config eval: $::Api
--- request eval
[map { "GET /api/me" } 1 .. 6]
--- more_headers eval
[map { "Authorization: Bearer $::T{$_}" } qw(nul surrogate overlong bigint bigexp trailing)]
--- error_code eval
[map { 401 } 1 .. 6]
--- response_body_like eval
[map { qr/"reason":"MALFORMED"\}\}$/ } 1 .. 6]
--- no_error_log
[error]
[alert]



=== TEST 21: a token whose header differs from the last verified one is checked in full (even of the same length): crit or "typ":"JWS" after a valid token is MALFORMED, a bad signature under the same header is BAD_SIGNATURE
--- http_config eval: $::Http
--- config eval: $::Api
--- request eval
[map { "GET /api/me" } 1 .. 6]
--- more_headers eval
[map { "Authorization: Bearer $::T{$_}" } qw(valid typ_jws crit other typ_other valid)]
--- error_code eval
[200, 401, 401, 401, 401, 200]
--- response_body_like eval
[qr/^user=user-1 /, qr/"reason":"MALFORMED"\}\}$/, qr/"reason":"MALFORMED"\}\}$/,
 qr/"reason":"BAD_SIGNATURE"\}\}$/, qr/"reason":"MALFORMED"\}\}$/,
 qr/^user=user-1 /]
--- no_error_log
[error]
[alert]



=== TEST 22: secrets of one SHA-256 block (64 bytes) and longer (hashed first, RFC 2104) verify; a secret one byte shorter does not
--- http_config eval
"    linguamate_jwt_secret " . ('k' x 64) . ";\n"
. "    linguamate_jwt_secret_previous " . ('p' x 100) . ";\n"
. "    linguamate_log_file logs/events.log;\n"
--- config eval: $::Api
--- request eval
[map { "GET /api/me" } 1 .. 3]
--- more_headers eval
["Authorization: Bearer " . Linguamate::Token::token(sub => 'user-64', secret => 'k' x 64),
 "Authorization: Bearer " . Linguamate::Token::token(sub => 'user-100', secret => 'p' x 100),
 "Authorization: Bearer " . Linguamate::Token::token(sub => 'user-63', secret => 'k' x 63)]
--- error_code eval
[200, 200, 401]
--- response_body_like eval
[qr/^user=user-64 /, qr/^user=user-100 /, qr/"reason":"BAD_SIGNATURE"\}\}$/]
--- no_error_log
[error]
[alert]
