# vim:set ft= ts=4 sw=4 et fdm=marker:
#
# Where the edge cannot read a tRPC call the way the app will, it refuses
# it (issue 13, items 1, 2 and 7), with a fake app behind it that records
# every request it gets, so that "never reaches the app" is checked:
# - procedure paths: one canonical spelling passes; every other one that
#   some tRPC adapter would run (trailing or doubled slashes, extra
#   segments, dot segments, %-escapes, a missing slash, a comma list
#   without batch=1) is a tRPC NOT_FOUND;
# - login inputs: the account is read as the app reads it (trimmed,
#   lower-cased, every duplicate counted, GET "input" too) or the call is
#   a tRPC BAD_REQUEST naming the reason (byte-order mark, invalid UTF-8,
#   too deep, superjson meta on the email, a non-string email...);
# - GET /api/trpc is the edge's own tRPC error, not nginx's 301.

use strict;
use warnings;
use lib 't/lib';
use Test::More;
use JSON::PP;
use IO::Socket::INET;
use Linguamate::Server;
use Linguamate::Upstream;
use Linguamate::Token;

my $json = JSON::PP->new->canonical;
my $admin = 'admin-token-admin-token-admin-token-0';

my $srv = Linguamate::Server->new(workers => 2);
my $seen = $srv->dir . '/app.log';
my $state = $srv->dir . '/state';
mkdir $state;
chmod 0777, $state;

# the app: records each request line; auth.* succeed with password "good"
my $app = Linguamate::Upstream->new(sub {
    my ($method, $uri, $h, $body) = @_;
    open my $fh, '>>', $seen or die;
    print $fh "$method $uri\n";
    close $fh;
    return (($body . $uri) =~ /good/ ? 200 : 401,
            '{"error":{"json":{"message":"no","code":-32001,"data":'
            . '{"code":"UNAUTHORIZED","httpStatus":401}}}}');
});
my $port = $app->port;

$srv->configure(<<"_HTTP_", <<"_SERVER_");
    linguamate_jwt_secret $SECRET;
    linguamate_state_dir $state;
    linguamate_admin_token $admin;
    linguamate_log_file logs/events.log;
    linguamate_rate_limit_max_login_attempts 2;
    linguamate_app_upstream_url http://127.0.0.1:$port;
    linguamate_limit_zone global size=1m window=1h limit=10000;
    linguamate_lockout_zone auth_lockout size=1m;
    linguamate_breaker app;
    # every request from an address of its own (X-Real-IP), so that the
    # address keys of the lockout stay out of the way of the accounts'
    set_real_ip_from 127.0.0.1;
    real_ip_header X-Real-IP;
_HTTP_
        error_page 400 401 403 404 405 408 413 414 429 494 500 502 503 504
                   /_linguamate/error;
        location = /_linguamate/error {
            internal;
            linguamate_limit off;
            linguamate_endpoint error;
        }
        location /api/trpc/ {
            linguamate_trpc on;
            linguamate_auth public;
            linguamate_limit global;
            linguamate_lockout auth_lockout;
            linguamate_circuit_breaker app;
            client_max_body_size 1m;
            client_body_buffer_size 1m;
            proxy_pass \$linguamate_app_upstream;
            proxy_max_temp_file_size 0;
            proxy_ignore_client_abort on;
        }
        location /api/admin/ {
            linguamate_limit off;
            linguamate_endpoint admin;
        }
        location / {
            linguamate_endpoint not_found;
        }
_SERVER_
$srv->start;

# one request as raw bytes; the answer's status, headers and JSON body
sub raw {
    my ($method, $target, $body, %h) = @_;
    my $s = IO::Socket::INET->new('127.0.0.1:' . $srv->port) or die "connect: $!";
    my $req = "$method $target HTTP/1.1\r\nHost: " . ($h{Host} // 'localhost')
              . "\r\nConnection: close\r\n";
    delete $h{Host};
    $h{'X-Real-IP'} //= join '.', 10, map { int rand 250 } 1 .. 3;
    $h{'Content-Type'} //= 'application/json' if defined $body;
    $req .= "$_: $h{$_}\r\n" for grep { defined $h{$_} } sort keys %h;
    $req .= 'Content-Length: ' . length($body) . "\r\n" if defined $body;
    print $s "$req\r\n" . ($body // '');
    local $/;
    my $resp = <$s> // '';
    my ($head, $content) = split /\r\n\r\n/, $resp, 2;
    my ($status) = ($head // '') =~ m{^HTTP/1\.\d (\d+)};
    my %hdr = map { /^([^:]+):\s*(.*)$/ ? (lc $1 => $2) : () } split /\r\n/, $head // '';
    return { status => $status // 0, headers => \%hdr, raw => $resp,
             json => eval { $json->decode($content // '') } };
}

sub app_lines { my $t = $srv->slurp('app.log') // ''; return () = $t =~ /\n/g }

sub admin {
    my ($method, $path) = @_;
    return raw($method, "/api/admin$path", undef, Authorization => "Bearer $admin",
               'X-Real-IP' => '127.0.0.1');
}

sub failures {
    my $r = admin('GET', "/lockouts/$_[0]");
    return $r->{status} == 404 ? 0 : $r->{json}{failures};
}

sub unlock { admin('DELETE', "/lockouts/$_") for @_, '127.0.0.1' }

sub login_body {
    my ($email, $pw) = @_;
    return $json->encode({ json => { email => $email, password => $pw // 'x' } });
}

# --- 1. procedure paths: canonical passes ----------------------------------------------

my $before = app_lines();
my $r = raw('POST', '/api/trpc/auth.login', login_body('ana@example.com'));
is $r->{status}, 401, 'the canonical spelling reaches the app';
is app_lines(), $before + 1, '... once';
$r = raw('POST', '/api/trpc/auth.login,user.me?batch=1',
         '{"0":{"json":{"email":"ana@example.com","password":"x"}}}');
is $r->{status}, 401, 'a canonical batch reaches the app';
for my $q ('batch=%31', '%62atch=1', 'x=1&batch=1', 'batch=1&batch=0') {
    $r = raw('POST', "/api/trpc/auth.login,user.me?$q",
             qq'{"0":{"json":{"email":"$q\@example.com","password":"x"}}}');
    is $r->{status}, 401, "?$q is a batch, as URLSearchParams.get(\"batch\") reads it";
}
$r = raw('GET', 'http://localhost/api/trpc/user.me');
is $r->{status}, 401, 'an absolute-form request line is the same call';
unlock('ana@example.com');

# --- 1. every other spelling is a tRPC NOT_FOUND that never reaches the app -------------

my @bad = (
    '/api/trpc/auth.login/',            # fetch adapter: trims slashes
    '/api/trpc//auth.login',            # ... and merged slashes
    '/api/trpc/auth.login//',
    '/api/trpc/x/auth.login',           # Express: the last segment
    '/api/trpc/x/y/auth.login',
    '/api/trpc/./auth.login',           # dot segments
    '/api/trpc/x/../auth.login',
    '/api/trpc/auth.login/.',
    '/api/trpc/auth%2Elogin',           # %-escapes: separators and letters
    '/api/trpc/auth.login%2Cauth.login?batch=1',
    '/api/trpc/auth.login%2fx',
    '/api/trpc/%61uth.login',
    '/api/trpc%2Fauth.login',
    '/api/tr%70c/auth.login',
    '/api//trpc/auth.login',
    '/api/./trpc/auth.login',
    '/x/../api/trpc/auth.login',
    '/api/trpcauth.login',              # a missing slash (fetch adapter)
    '/api/trpc',
    '/api/trpc/',
    '/api/trpc/?batch=1',
    '/api/trpc/auth..login',            # the grammar
    '/api/trpc/.auth.login',
    '/api/trpc/auth.login.',
    '/api/trpc/auth.login,',
    '/api/trpc/,auth.login?batch=1',
    '/api/trpc/auth.login,,user.me?batch=1',
    '/api/trpc/auth.login;x',
    '/api/trpc/auth.login+',
    '/api/trpc/auth.l%C3%B6gin',
    '/api/trpc/auth.login,auth.login',  # a comma list is a batch only
    '/api/trpc/auth.login,auth.login?BATCH=1',
    '/api/trpc/auth.login,auth.login?batch=0&batch=1',
    '/api/trpc/auth.login,auth.login?batch=%2531',
    '/api/trpc/auth.login,auth.login?batch=1#x',
);
$before = app_lines();
for my $path (@bad) {
    $r = raw('POST', $path, login_body('bad@example.com'));
    is $r->{status}, 404, "$path: 404" or diag $r->{raw};
    my $e = ref $r->{json} eq 'HASH' ? $r->{json}{error}{json} : undef;
    is $e && $e->{data}{code}, 'NOT_FOUND', "$path: tRPC NOT_FOUND";
    is $e && $e->{code}, -32004, "$path: JSON-RPC -32004";
    is $e && $e->{data}{httpStatus}, 404, "$path: data.httpStatus";
}
is app_lines(), $before, 'none of them reached the app';
is failures('bad@example.com'), 0, 'and none counted for the account (refused first)';

# --- 7. GET /api/trpc is the edge's own, never nginx's 301 -------------------------------

$r = raw('GET', '/api/trpc', undef, Host => 'evil.example');
is $r->{status}, 404, 'GET /api/trpc: 404, not a 301';
ok !exists $r->{headers}{location}, '... no Location';
unlike $r->{raw}, qr/evil\.example|<html/i, '... nothing of the Host, no HTML';
is $r->{json}{error}{json}{data}{code}, 'NOT_FOUND', '... tRPC NOT_FOUND';
like $r->{headers}{'content-type'} // '', qr{^application/json}, '... JSON';
$r = raw('GET', '/api/trpc?batch=1', undef, Host => 'evil.example');
is $r->{status}, 404, 'GET /api/trpc?batch=1: 404';
ok !exists $r->{headers}{location}, '... no Location';

# --- 2. the account, as the app reads it ---------------------------------------------------

for (1 .. 3) {
    raw('POST', '/api/trpc/auth.login', login_body(' Cy@Example.COM '));
}
is failures('cy@example.com'), 3, '" Cy@Example.COM " is cy@example.com (trimmed, lower-cased)';
raw('POST', '/api/trpc/auth.login', login_body('CY@example.com'));
$r = raw('POST', '/api/trpc/auth.login', login_body('cy@example.com', 'good'));
is $r->{status}, 429, 'locked at twice the limit (4), even with the good password';
unlock('cy@example.com');

# duplicate keys: JSON.parse reads the last; every one is counted
raw('POST', '/api/trpc/auth.login',
    '{"json":{"email":"d1@example.com","email":"d2@example.com","email":"dee@example.com","password":"x"}}');
is failures('dee@example.com'), 1, 'the third of three duplicate email keys is counted';
is failures('d1@example.com'), 1, '... and so are the others';
raw('POST', '/api/trpc/auth.login,auth.login,auth.login?batch=1',
    '{"0":{"json":{"email":"d1@example.com"}},"1":{"json":{"email":"d2@example.com"}},'
    . '"2":{"json":{"email":"dee@example.com"}}}');
is admin('GET', '/lockouts/dee@example.com')->{json}{locked}, JSON::PP::true,
   'the third account of a batch is counted (once per failed login: 1 + 3, locked)';
unlock('dee@example.com', 'd1@example.com', 'd2@example.com');

# a GET call reads its input from "input", as tRPC does
$r = raw('GET', '/api/trpc/auth.verifyEmail?input=' . '%7B%22json%22%3A%7B%22email%22%3A%22eve%40example.com%22%7D%7D');
is $r->{status}, 401, 'a GET auth call passes';
is failures('eve@example.com'), 1, '... its "input" names the account';
$r = raw('GET', '/api/trpc/auth.verifyEmail?inp%75t=%7B%22json%22%3A%7B%22email%22%3A+%22eve%40example.com%22%7D%7D');
is failures('eve@example.com'), 2, '... found by its decoded name, "+" a space';
unlock('eve@example.com');

# a charset of UTF-8, spelled as clients do, and an identity encoding
for my $type ('application/json; charset=utf-8', 'application/json;charset="UTF-8"',
              'application/json; charset=utf8') {
    $r = raw('POST', '/api/trpc/auth.login', login_body('hal@example.com'),
             'Content-Type' => $type, 'Content-Encoding' => 'identity');
    is $r->{status}, 401, "$type passes";
}
is failures('hal@example.com'), 3, '... and each is counted';
unlock('hal@example.com');

# superjson meta that does not touch the email
$r = raw('POST', '/api/trpc/auth.signup',
         '{"json":{"email":"fay@example.com","born":"2000-01-01T00:00:00.000Z"},'
         . '"meta":{"values":{"born":["Date"]},"referentialEqualities":{"a":["b"]},"v":1}}');
is $r->{status}, 401, 'meta on other fields passes';
is failures('fay@example.com'), 1, '... and the account is counted';
unlock('fay@example.com');

# --- 2. what the edge cannot read as the app will: 400, never the app --------------------

my $deep = ('[' x 40) . (']' x 40);
my @unread = (
    [ 'a byte-order mark', "\xEF\xBB\xBF" . login_body('gil@example.com'), 'BYTE_ORDER_MARK' ],
    [ 'invalid UTF-8 in another field',
      '{"json":{"email":"gil@example.com","password":"x","n":"' . "\xC3\x28" . '"}}', 'INVALID_UTF8' ],
    [ 'an overlong UTF-8 sequence', '{"json":{"email":"gil@example.com","n":"' . "\xC0\xAF" . '"}}',
      'INVALID_UTF8' ],
    [ 'a UTF-8 encoded surrogate', '{"json":{"email":"gil@example.com","n":"' . "\xED\xA0\x80" . '"}}',
      'INVALID_UTF8' ],
    [ 'a lone surrogate escape', '{"json":{"email":"gil@example.com","n":"\ud800"}}',
      'LONE_SURROGATE' ],
    [ 'a lone low surrogate escape', '{"json":{"email":"gil\udc00@example.com"}}',
      'LONE_SURROGATE' ],
    [ 'nesting deeper than the edge reads, in another field',
      '{"json":{"email":"gil@example.com","n":' . $deep . '}}', 'TOO_DEEP' ],
    [ 'meta.values sets the email',
      '{"json":{"email":"gil@example.com"},"meta":{"values":{"email":[["custom","x"]]}}}',
      'META_EMAIL' ],
    [ 'meta.values under an escaped-dot path to the email',
      '{"json":{"email":"gil@example.com"},"meta":{"values":{"email.x":["Date"]}}}',
      'META_EMAIL' ],
    [ 'meta.values on the input itself', '{"json":{"email":"gil@example.com"},"meta":{"values":["map"]}}',
      'META_EMAIL' ],
    [ 'meta.referentialEqualities sets the email from another field',
      '{"json":{"email":"gil@example.com","o":"victim@example.com"},'
      . '"meta":{"referentialEqualities":{"o":["email"]}}}', 'META_EMAIL' ],
    [ 'referentialEqualities in root form',
      '{"json":{"email":"gil@example.com"},"meta":{"referentialEqualities":[["email"]]}}',
      'META_EMAIL' ],
    [ 'meta in a batch element',
      '{"0":{"json":{"email":"gil@example.com"},"meta":{"values":{"email":["undefined"]}}}}',
      'META_EMAIL', '/api/trpc/auth.login?batch=1' ],
    [ 'a number as the email', '{"json":{"email":5}}', 'EMAIL_NOT_STRING' ],
    [ 'an object as the email', '{"json":{"email":{"a":"gil@example.com"}}}', 'EMAIL_NOT_STRING' ],
    [ 'null as the email', '{"json":{"email":null}}', 'EMAIL_NOT_STRING' ],
    [ 'a control character in the email', '{"json":{"email":"gil@example.com\u0000"}}',
      'EMAIL_CONTROL' ],
    [ 'a tab in the email', '{"json":{"email":"\tgil@example.com"}}', 'EMAIL_CONTROL' ],
    [ 'a non-ASCII email', '{"json":{"email":"g\u00efl@example.com"}}', 'EMAIL_NOT_ASCII' ],
    [ 'a non-breaking space around the email', '{"json":{"email":"gil@example.com\u00a0"}}',
      'EMAIL_NOT_ASCII' ],
    [ 'an empty email', '{"json":{"email":"  "}}', 'EMAIL_EMPTY' ],
    [ 'an email over 254 bytes', '{"json":{"email":"' . ('a' x 250) . '@x.io"}}', 'EMAIL_TOO_LONG' ],
    [ '65 accounts in one call',
      '{"json":{' . join(',', map { "\"email\":\"u$_\@example.com\"" } 1 .. 65) . '}}',
      'TOO_MANY_ACCOUNTS' ],
    [ 'not JSON', '{"json":{"email":"gil@example.com"', 'NOT_JSON' ],
    [ 'a text/plain body', login_body('gil@example.com'), 'CONTENT_TYPE', undef, 'text/plain' ],
    [ 'a multipart body', "--b\r\nContent-Disposition: form-data; name=\"email\"\r\n\r\n"
      . "gil\@example.com\r\n--b--\r\n", 'CONTENT_TYPE', undef, 'multipart/form-data; boundary=b' ],
    [ 'Application/JSON (tRPC matches it case-sensitively)', login_body('gil@example.com'),
      'CONTENT_TYPE', undef, 'Application/JSON' ],
    [ 'a charset other than UTF-8 (body-parser would honour it)', login_body('gil@example.com'),
      'CONTENT_TYPE', undef, 'application/json; charset="utf-16le"' ],
    [ 'a gzip body (body-parser would inflate it)', login_body('gil@example.com'),
      'CONTENT_ENCODING', undef, undef, 'gzip' ],
    [ 'a GET input with invalid UTF-8', undef, 'INVALID_UTF8',
      '/api/trpc/auth.verifyEmail?input=%7B%22json%22%3A%7B%22email%22%3A%22%FF%22%7D%7D' ],
);

$before = app_lines();
for my $c (@unread) {
    my ($name, $body, $reason, $path, $type, $encoding) = @$c;
    $path //= '/api/trpc/auth.login';
    $r = raw(defined $body ? 'POST' : 'GET', $path, $body,
             defined $type ? ('Content-Type' => $type) : (),
             defined $encoding ? ('Content-Encoding' => $encoding) : ());
    is $r->{status}, 400, "$name: 400" or diag $r->{raw};
    my $e = ref $r->{json} eq 'ARRAY' ? $r->{json}[0] : $r->{json};
    $e = ref $e eq 'HASH' ? $e->{error}{json} : {};
    is $e->{data}{code}, 'BAD_REQUEST', "$name: tRPC BAD_REQUEST";
    is $e->{data}{edgeCode}, 'VALIDATION_ERROR', "$name: edgeCode VALIDATION_ERROR";
    is $e->{data}{reason}, $reason, "$name: reason $reason";
    ok length($e->{message} // ''), "$name: a message ($e->{message})";
}
is app_lines(), $before, 'none of them reached the app';

# a call without an auth procedure is not read at all
$r = raw('POST', '/api/trpc/user.update', "\xEF\xBB\xBF{}");
is $r->{status}, 401, 'a call without an auth procedure passes as it is';

$srv->stop;
unlike $srv->slurp('logs/error.log'), qr/\[(alert|emerg|crit)\]|exited on signal/,
       'no worker crashed';

done_testing;
