# vim:set ft= ts=4 sw=4 et fdm=marker:
#
# The app's tRPC procedures through the edge, with a fake tRPC app behind
# it and two workers: lockout by the email of superjson inputs across
# single and batched calls (207 answers included), the login limit once
# per auth procedure, the breaker "app", identity headers (spoofed copies
# removed), and every error the edge makes in tRPC v11's superjson shape.

use strict;
use warnings;
use lib 't/lib';
use Test::More;
use JSON::PP;
use HTTP::Tiny;
use Time::HiRes qw(sleep);
use Linguamate::Server;
use Linguamate::Upstream;
use Linguamate::Token;

my $json = JSON::PP->new->canonical;

sub trpc_error {
    my ($path, $code, $status, $msg) = @_;
    my $rpc = { UNAUTHORIZED => -32001, BAD_REQUEST => -32600 }->{$code};
    return { error => { json => { message => $msg, code => $rpc,
             data => { code => $code, httpStatus => $status, path => $path } } } };
}

sub trpc_result { return { result => { data => { json => $_[0] } } } }

# the app: auth.login succeeds with password "good"; user.* echo the
# identity the edge passed on; fail.* is a 500; slow.* takes 3 s
my $app = Linguamate::Upstream->new(sub {
    my ($method, $uri, $h, $body) = @_;
    # as a server decodes it: %-escapes, merged slashes
    my ($rawpath, $query) = split /\?/, $uri, 2;
    (my $dpath = $rawpath) =~ s/%([0-9A-Fa-f]{2})/chr hex $1/ge;
    $dpath =~ s{/+}{/}g;
    my ($path) = $dpath =~ m{^/api/trpc/(.*)$};
    return (404, '{}') unless defined $path;
    my %q = map { my ($k, $v) = split /=/, $_, 2; $v //= '';
                  $v =~ s/%([0-9A-Fa-f]{2})/chr hex $1/ge; ($k => $v) }
            split /&/, $query // '';
    my $batch = ($q{batch} // '') eq '1';
    my @procs = $batch ? split(/,/, $path) : ($path);
    my $in = eval { $json->decode($body) } // {};
    my (@out, %st);
    for my $i (0 .. $#procs) {
        my $p = $procs[$i];
        my $input = $batch ? $in->{$i}{json} : $in->{json};
        if ($p =~ /^fail\./) { return (500, '{"error":"boom"}') }
        if ($p =~ /^slow\./) { sleep 3; return (200, '[]') }
        if ($p eq 'auth.login' && ($input->{email} // '') =~ /^slow/) { sleep 1 }
        if ($p eq 'auth.login') {
            if (($input->{password} // '') eq 'good') {
                push @out, trpc_result({ token => 'app-token' }); $st{200}++;
            } else {
                push @out, trpc_error($p, 'UNAUTHORIZED', 401, 'Invalid credentials'); $st{401}++;
            }
        } else {
            push @out, trpc_result({ user => $h->{'x-user-id'} // '',
                session => $h->{'x-session-id'} // '',
                corr => $h->{'x-correlation-id'} // '' });
            $st{200}++;
        }
    }
    my $status = keys %st == 1 ? (keys %st)[0] : 207;
    return ($status, $json->encode($batch ? \@out : $out[0]));
});

my $srv = Linguamate::Server->new(workers => 2);
my $state = $srv->dir . '/state';
mkdir $state;
chmod 0777, $state;
my $admin = 'admin-token-admin-token-admin-token-0';

sub conf {
    my ($extra) = @_;
    my $port = $app->port;
    $srv->configure(<<"_HTTP_", <<"_SERVER_");
    linguamate_jwt_secret $SECRET;
    linguamate_state_dir $state;
    linguamate_admin_token $admin;
    linguamate_log_file logs/events.log;
    linguamate_rate_limit_max_login_attempts 3;
    linguamate_app_upstream_url http://127.0.0.1:$port;
    linguamate_circuit_breaker_volume_threshold 3;
    linguamate_circuit_breaker_failure_threshold 3;
    linguamate_circuit_breaker_reset_timeout_ms 60000;
    linguamate_limit_zone global size=1m window=1h limit=1000;
    linguamate_limit_zone auth size=1m window=60s limit=login key=\$http_x_limit_key;
    linguamate_lockout_zone auth_lockout size=1m;
    linguamate_breaker app;
    ${\ ($extra // '')}
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
            linguamate_limit auth;
            linguamate_lockout auth_lockout;
            linguamate_circuit_breaker app;
            client_max_body_size 1k;
            client_body_buffer_size 1k;
            proxy_pass \$linguamate_app_upstream;
            proxy_set_header X-User-Id \$linguamate_user_id;
            proxy_set_header X-Session-Id \$linguamate_session_id;
            proxy_set_header X-Correlation-Id \$linguamate_correlation_id;
            proxy_read_timeout 2s;
            proxy_max_temp_file_size 0;
            proxy_ignore_client_abort on;
        }
        location /api/admin/ {
            linguamate_limit off;
            linguamate_endpoint admin;
        }
_SERVER_
}

conf();
$srv->start;

sub call {
    my ($method, $path, $body, %h) = @_;
    my $r = HTTP::Tiny->new(timeout => 10)->request($method, $srv->url($path), {
        headers => { 'Content-Type' => 'application/json', %h },
        (defined $body ? (content => $body) : ()) });
    $r->{json} = eval { $json->decode($r->{content}) };
    return $r;
}

sub login {
    my ($email, $password, %h) = @_;
    return call('POST', '/api/trpc/auth.login',
                $json->encode({ json => { email => $email, password => $password } }), %h);
}

sub batch_login {
    my ($email, $password) = @_;
    return call('POST', '/api/trpc/auth.login,user.get?batch=1',
                $json->encode({ 0 => { json => { email => $email, password => $password } },
                                1 => { json => undef } }));
}

sub admin {
    my ($method, $path) = @_;
    return call($method, $path, undef, Authorization => "Bearer $admin");
}

sub unlock_all {
    admin('DELETE', "/api/admin/lockouts/$_") for @_, '127.0.0.1';
}

# an edge error in the superjson shape, for one procedure
sub is_trpc_error {
    my ($e, $path, $code, $rpc, $status, $name) = @_;
    is $e->{error}{json}{code}, $rpc, "$name: JSON-RPC code $rpc";
    is $e->{error}{json}{data}{code}, $code, "$name: data.code $code";
    is $e->{error}{json}{data}{httpStatus}, $status, "$name: data.httpStatus $status";
    is $e->{error}{json}{data}{path}, $path, "$name: data.path $path";
    ok length($e->{error}{json}{message} // ''), "$name: a message";
    like $e->{error}{json}{data}{correlationId} // '', qr/^[\w.:-]+$/,
         "$name: the correlation id in data";
}

# --- through the edge: a login, identity, correlation -------------------------------

my $r = login('ana@example.com', 'good', 'X-Correlation-Id' => 'trpc-1');
is $r->{status}, 200, 'a good login passes through';
is $r->{json}{result}{data}{json}{token}, 'app-token', 'with the app\'s answer';
is $r->{headers}{'x-correlation-id'}, 'trpc-1', 'and the correlation id';

my $tok = token(sub => 'u-42', sid => 's-42');
$r = call('GET', '/api/trpc/user.me', undef, Authorization => "Bearer $tok",
          'X-User-Id' => 'spoofed', 'X-Session-Id' => 'spoofed', 'X-Correlation-Id' => 'c-7');
is $r->{status}, 200, 'a query with a token';
is_deeply $r->{json}{result}{data}{json}, { user => 'u-42', session => 's-42', corr => 'c-7' },
   'the app gets the verified X-User-Id / X-Session-Id and the correlation id';
$r = call('GET', '/api/trpc/user.me', undef, 'X-User-Id' => 'spoofed', 'X-Session-Id' => 'spoofed');
is $r->{status}, 200, 'a public query without a token passes';
is $r->{json}{result}{data}{json}{user}, '', 'spoofed identity headers are removed';
is $r->{json}{result}{data}{json}{session}, '', '... both of them';
$r = call('GET', '/api/trpc/user.me', undef, Authorization => 'Bearer not.a.token',
          'X-User-Id' => 'spoofed');
is $r->{status}, 200, 'an invalid token is passed through as absent';
is $r->{json}{result}{data}{json}{user}, '', '... with no identity';

# --- lockout by email, single calls ----------------------------------------------------

for my $i (1 .. 6) {
    $r = login('bob@example.com', 'bad');
    is $r->{status}, 401, "failure $i is the app's 401";
}
$r = login('bob@example.com', 'bad');
is $r->{status}, 429, 'after six failures (twice the limit of 3) the account is locked';
is ref $r->{json}, 'HASH', 'a single call: one error object';
is_trpc_error($r->{json}, 'auth.login', 'TOO_MANY_REQUESTS', -32029, 429, 'lockout');
is $r->{json}{error}{json}{data}{edgeCode}, 'ACCOUNT_LOCKED', 'edgeCode ACCOUNT_LOCKED';
ok $r->{json}{error}{json}{data}{retryAfter} > 0, 'retryAfter in data';
like $r->{json}{error}{json}{message}, qr/Account temporarily locked/, 'the lockout message';
ok !exists $r->{json}{error}{code}, 'not the REST envelope';
is login('bob@example.com', 'good')->{status}, 429, 'even a good password while locked';
unlock_all('bob@example.com');

# --- lockout by email across batched and single calls -------------------------------

$r = batch_login('cy@example.com', 'bad');
is $r->{status}, 207, 'a batch with a failed login is a 207';
is $r->{json}[0]{error}{json}{data}{code}, 'UNAUTHORIZED', '... the login failed';
ok exists $r->{json}[1]{result}, '... user.get succeeded';
my $st = admin('GET', '/api/admin/lockouts/cy@example.com');
is $st->{json}{failures}, 1, 'the failure inside the 207 counts for the email';
login('cy@example.com', 'bad');
$st = admin('GET', '/api/admin/lockouts/cy@example.com');
is $st->{json}{failures}, 2, 'a single call adds to the same account';
call('POST', '/api/trpc/auth.login,auth.login?batch=1',
     $json->encode({ 0 => { json => { email => 'cy@example.com', password => 'x' } },
                     1 => { json => { email => 'cy@example.com', password => 'y' } } }));
$st = admin('GET', '/api/admin/lockouts/cy@example.com');
is $st->{json}{failures}, 4, 'a batch of two failed logins counts twice';
batch_login('cy@example.com', 'bad');
batch_login('cy@example.com', 'bad');
$r = batch_login('cy@example.com', 'good');
is $r->{status}, 429, 'locked after six failures over batches and single calls';
is ref $r->{json}, 'ARRAY', 'a batch: an array of errors';
is scalar @{ $r->{json} }, 2, '... one per procedure';
is_trpc_error($r->{json}[0], 'auth.login', 'TOO_MANY_REQUESTS', -32029, 429, 'batch [0]');
is_trpc_error($r->{json}[1], 'user.get', 'TOO_MANY_REQUESTS', -32029, 429, 'batch [1]');
unlock_all('cy@example.com');

$r = batch_login('dee@example.com', 'good');
is $r->{status}, 200, 'a good batched login';
login('dee@example.com', 'bad');
batch_login('dee@example.com', 'good');
is admin('GET', '/api/admin/lockouts/dee@example.com')->{status}, 404,
   'a successful login inside a batch clears the account';
unlock_all();

# --- the edge reads a call as the app does ----------------------------------------------

my $many = join ',', ('auth.login') x 5;
my $body5 = $json->encode({ map { ($_ => { json => { email => 'fay@example.com', password => 'x' } }) } 0 .. 4 });
$r = call('POST', "/api/trpc/$many?batch=%31", $body5);
is $r->{status}, 401, '?batch=%31 is a batch, as for the app';
is admin('GET', '/api/admin/lockouts/fay@example.com')->{json}{failures}, 5,
   '... its five logins count five failures';
$r = call('POST', "/api/trpc/$many?batch=%31", $body5);
is $r->{status}, 401, 'five more failures lock';
$r = call('POST', '/api/trpc/auth.login', '{"json":{"email":"fay@example.com","password":"good"}}');
is $r->{status}, 429, 'the lock holds on the canonical path';
for my $path ('/api/trpc//auth.login', '/api/tr%70c/auth%2Elogin') {
    $r = call('POST', $path, '{"json":{"email":"fay@example.com","password":"good"}}');
    is $r->{status}, 404, "$path: refused (not canonical, t/059 has the rest)";
    is $r->{json}{error}{json}{data}{code}, 'NOT_FOUND', '... a tRPC NOT_FOUND';
}
unlock_all('fay@example.com');

$r = HTTP::Tiny->new->request('PATCH', $srv->url('/api/admin/flags'), {
    headers => { Authorization => "Bearer $admin", 'Content-Type' => 'application/json' },
    content => '{"features":{"chat":false}}' });
$r = call('GET', '/api/trpc/user.me,chat.send');
is $r->{status}, 404, 'a comma list without batch=1 is refused: tRPC runs no such procedure';
is $r->{json}{error}{json}{data}{path}, 'user.me,chat.send', '... one error for the whole path';
$r = call('GET', '/api/trpc/user.me,chat.send?batch=%31');
is $r->{status}, 503, 'a chat procedure in a batch (batch=%31, as URLSearchParams reads it)';
HTTP::Tiny->new->request('PATCH', $srv->url('/api/admin/flags'), {
    headers => { Authorization => "Bearer $admin", 'Content-Type' => 'application/json' },
    content => '{"features":{"chat":null}}' });

# --- a client that leaves before the answer has its login counted all the same -------

use IO::Socket::INET;
for my $path ('/api/trpc/auth.login', '/api/trpc/auth.login,user.get?batch=1') {
    my $b = $path =~ /batch/
        ? '{"0":{"json":{"email":"slow@example.com","password":"x"}},"1":{"json":null}}'
        : '{"json":{"email":"slow@example.com","password":"x"}}';
    my $s = IO::Socket::INET->new('127.0.0.1:' . $srv->port) or die;
    print $s "POST $path HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
           . "Content-Length: " . length($b) . "\r\n\r\n$b";
    select undef, undef, undef, 0.2;
    close $s;
}
ok $srv->poll(sub {
    (admin('GET', '/api/admin/lockouts/slow@example.com')->{json}{failures} // 0) == 2 }, 5),
   'two logins whose clients left (single and in a 207 batch) count as failures';
unlock_all('slow@example.com');

# --- a call without an auth procedure is not under the login limit or lockout ---------

my %seen;
for (1 .. 8) {
    $seen{ call('GET', '/api/trpc/user.me')->{status} }++;
}
is join(',', sort keys %seen), '200', 'queries are not under the login limit';

# --- the login limit once per auth procedure --------------------------------------------

# the login limit is keyed by X-Limit-Key here, so that the lockout tests
# above (without it) are not limited; 3 a minute
my $two = $json->encode({ 0 => { json => { email => 'eve@example.com', password => 'good' } },
                          1 => { json => { email => 'eve@example.com', password => 'good' } } });
$r = call('POST', '/api/trpc/auth.login,auth.login?batch=1', $two, 'X-Limit-Key' => 'k1');
is $r->{status}, 200, 'a batch of two logins passes';
is $r->{headers}{'x-ratelimit-limit'}, 3, 'under the login limit of 3';
$r = call('POST', '/api/trpc/auth.login,auth.login?batch=1', $two, 'X-Limit-Key' => 'k1');
is $r->{status}, 429, 'a second one would make 4 logins of 3 a minute: 429';
is_trpc_error($r->{json}[0], 'auth.login', 'TOO_MANY_REQUESTS', -32029, 429, 'auth limit');
is $r->{json}[0]{error}{json}{data}{edgeCode}, 'RATE_LIMIT_EXCEEDED', 'edgeCode RATE_LIMIT_EXCEEDED';
ok $r->{headers}{'retry-after'} > 0, 'Retry-After';
is $r->{json}[1]{error}{json}{data}{retryAfter}, $r->{headers}{'retry-after'},
   'retryAfter in data';
$r = login('eve@example.com', 'good', 'X-Limit-Key' => 'k1');
is $r->{status}, 200, 'one more single login fits (3 of 3): the refused batch was not counted';
is login('eve@example.com', 'good', 'X-Limit-Key' => 'k1')->{status}, 429, 'the fourth does not';
is call('GET', '/api/trpc/user.me', undef, 'X-Limit-Key' => 'k1')->{status}, 200,
   'calls without an auth procedure still pass';

# --- strict mode: an invalid token is refused, a missing one is not -----------------

$r = HTTP::Tiny->new->request('PATCH', $srv->url('/api/admin/flags'), {
    headers => { Authorization => "Bearer $admin", 'Content-Type' => 'application/json' },
    content => '{"strictMode":true}' });
is $r->{status}, 200, 'strict mode on';
$r = call('GET', '/api/trpc/user.me,user.get?batch=1', undef, Authorization => 'Bearer not.a.token');
is $r->{status}, 401, 'an invalid token is refused in strict mode';
is_trpc_error($r->{json}[0], 'user.me', 'UNAUTHORIZED', -32001, 401, 'strict');
is $r->{json}[1]{error}{json}{data}{reason}, 'MALFORMED', 'the reason in data';
is call('GET', '/api/trpc/user.me')->{status}, 200, 'a public call without a token passes';

# --- maintenance and features ---------------------------------------------------------

sub flags {
    return HTTP::Tiny->new->request('PATCH', $srv->url('/api/admin/flags'), {
        headers => { Authorization => "Bearer $admin", 'Content-Type' => 'application/json' },
        content => $_[0] });
}
flags('{"strictMode":null,"maintenance":true}');
$r = call('GET', '/api/trpc/user.me');
is $r->{status}, 503, 'maintenance';
is_trpc_error($r->{json}, 'user.me', 'SERVICE_UNAVAILABLE', -32603, 503, 'maintenance');
is $r->{json}{error}{json}{data}{edgeCode}, 'MAINTENANCE', 'edgeCode MAINTENANCE';
is $r->{json}{error}{json}{data}{retryAfter}, 300, 'retryAfter';
flags('{"maintenance":null,"features":{"chat":false}}');
$r = call('POST', '/api/trpc/user.me,chat.send?batch=1', '{}');
is $r->{status}, 503, 'a batch with a chat.* procedure while chat is off';
is_trpc_error($r->{json}[1], 'chat.send', 'SERVICE_UNAVAILABLE', -32603, 503, 'feature');
is $r->{json}[1]{error}{json}{data}{feature}, 'chat', 'the feature in data';
is $r->{json}[1]{error}{json}{data}{edgeCode}, 'FEATURE_DISABLED', 'edgeCode FEATURE_DISABLED';
is call('GET', '/api/trpc/user.me')->{status}, 200, 'other procedures pass';
flags('{"features":{"chat":null}}');

# --- body too large, upstream timing out ----------------------------------------------

$r = call('POST', '/api/trpc/user.update', 'x' x 2000);
is $r->{status}, 413, 'a body over client_max_body_size';
is_trpc_error($r->{json}, 'user.update', 'PAYLOAD_TOO_LARGE', -32013, 413, 'too large');

# --- breaker "app" ---------------------------------------------------------------------

admin('POST', '/api/admin/breakers/app/reset');
$r = call('GET', '/api/trpc/fail.now');
is $r->{status}, 500, 'the app\'s own 500 passes through untouched';
is_deeply $r->{json}, { error => 'boom' }, '... as the app sent it';
call('GET', '/api/trpc/fail.now') for 1 .. 2;
$r = call('GET', '/api/trpc/user.me');
is $r->{status}, 503, 'after 3 failures the breaker "app" is open';
is_trpc_error($r->{json}, 'user.me', 'SERVICE_UNAVAILABLE', -32603, 503, 'breaker');
is $r->{json}{error}{json}{data}{edgeCode}, 'CIRCUIT_OPEN', 'edgeCode CIRCUIT_OPEN';
like $r->{json}{error}{json}{message}, qr/Circuit breaker is OPEN for app/, 'names the breaker';
admin('POST', '/api/admin/breakers/app/reset');
is call('GET', '/api/trpc/user.me')->{status}, 200, 'reset: closed again';

# --- the app timing out (the fake app is busy for 3 s afterwards) ------------------

$r = call('GET', '/api/trpc/slow.thing');
is $r->{status}, 504, 'the app timing out';
is_trpc_error($r->{json}, 'slow.thing', 'GATEWAY_TIMEOUT', -32603, 504, 'timeout');

# --- the app down ----------------------------------------------------------------------

$app->stop;
$r = call('GET', '/api/trpc/user.me,user.get?batch=1');
ok $r->{status} == 502 || $r->{status} == 503, "the app down: $r->{status}";
is ref $r->{json}, 'ARRAY', '... a tRPC batch error';
is $r->{json}[1]{error}{json}{data}{path}, 'user.get', '... per procedure';
is $r->{json}[0]{error}{json}{data}{httpStatus}, $r->{status}, '... with the status';

# --- no APP_UPSTREAM_URL: tRPC NOT_FOUND -----------------------------------------------

$srv->stop;
my $conf = do { local $/; open my $f, '<', $srv->dir . '/conf/nginx.conf' or die; <$f> };
$conf =~ s/^\s*linguamate_app_upstream_url .*\n//m;
open my $f, '>', $srv->dir . '/conf/nginx.conf' or die;
print $f $conf;
close $f;
$srv->start;
$r = call('POST', '/api/trpc/auth.login', '{"json":{}}');
is $r->{status}, 404, 'no APP_UPSTREAM_URL: 404';
is_trpc_error($r->{json}, 'auth.login', 'NOT_FOUND', -32004, 404, 'no app');
like $r->{json}{error}{json}{message}, qr/No procedure found on path "auth\.login"/,
     'tRPC\'s message';

unlike $srv->slurp('logs/error.log'), qr/\[(alert|emerg|crit)\]|exited on signal/,
       'no worker crashed';

done_testing;
