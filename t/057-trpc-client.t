# vim:set ft= ts=4 sw=4 et fdm=marker:
#
# The app's own tRPC v11 client (@trpc/client, httpBatchLink, superjson)
# pointed at the edge, with a real tRPC v11 app (@trpc/server, superjson)
# behind it: it logs in through the edge, is locked out after repeated
# failures with a TRPCClientError whose data.code is TOO_MANY_REQUESTS,
# and reads every policy error of the edge as a tRPC error.  Needs node
# and npm (the packages come from the npm registry, pinned in
# t/trpc-client/package-lock.json); under CI a missing one is a failure.

use strict;
use warnings;
use lib 't/lib';
use Test::More;
use JSON::PP;
use HTTP::Tiny;
use IO::Socket::INET;
use Time::HiRes qw(sleep time);
use POSIX qw(WNOHANG);
use Linguamate::Server;
use Linguamate::Token;

my $dir = 't/trpc-client';
my $json = JSON::PP->new->canonical;

my $have = !system('node --version >/dev/null 2>&1 && npm --version >/dev/null 2>&1');
if (!$have) {
    if ($ENV{CI}) { fail('node and npm are installed'); done_testing; exit }
    plan skip_all => 'node and npm are needed';
}

if (!-d "$dir/node_modules/\@trpc/client" || !-d "$dir/node_modules/\@trpc/server") {
    my $out = `cd $dir && npm ci --no-audit --no-fund 2>&1`;
    if ($?) {
        if ($ENV{CI}) { fail('npm ci in t/trpc-client'); diag $out; done_testing; exit }
        plan skip_all => "npm ci failed: $out";
    }
}

# the app
my $app_port = Linguamate::Server::free_port();
my $app = fork // die;
if ($app == 0) {
    open STDOUT, '>', '/dev/null';
    exec 'node', "$dir/server.mjs", $app_port;
    die "exec: $!";
}
END { if ($app) { kill 'TERM', $app; waitpid $app, 0 } }
my $t0 = time;
sleep 0.05 until IO::Socket::INET->new("127.0.0.1:$app_port") || time - $t0 > 10;
ok(IO::Socket::INET->new("127.0.0.1:$app_port"), "the tRPC app listens");

my $admin = 'admin-token-admin-token-admin-token-0';
my $srv = Linguamate::Server->new(workers => 2);
$srv->configure(<<"_HTTP_", <<'_SERVER_');
    linguamate_jwt_secret $SECRET;
    linguamate_admin_token $admin;
    linguamate_log_file logs/events.log;
    linguamate_state_dir ${\ $srv->dir };
    linguamate_rate_limit_max_login_attempts 3;
    linguamate_app_upstream_url http://127.0.0.1:$app_port;
    linguamate_limit_zone global size=1m window=1h limit=1000;
    linguamate_limit_zone auth size=1m window=60s limit=login key=\$http_x_limit_key;
    linguamate_lockout_zone auth_lockout size=1m;
    linguamate_breaker app;
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
            client_max_body_size 1m;
            client_body_buffer_size 1m;
            proxy_max_temp_file_size 0;
            proxy_ignore_client_abort on;
            proxy_pass $linguamate_app_upstream;
            proxy_set_header X-User-Id $linguamate_user_id;
            proxy_set_header X-Session-Id $linguamate_session_id;
            proxy_set_header X-Correlation-Id $linguamate_correlation_id;
        }
        location /api/admin/ {
            linguamate_limit off;
            linguamate_endpoint admin;
        }
_SERVER_
$srv->start;
my $edge = $srv->url('');

sub step {
    my ($name, $token) = @_;
    my $out = `node $dir/client.mjs '$edge' $name @{[ $token // '' ]} 2>&1`;
    my $r = eval { $json->decode($out) };
    diag "client: $out" unless $r;
    return $r // {};
}

sub admin {
    my ($method, $path, $body) = @_;
    return HTTP::Tiny->new->request($method, $srv->url("/api/admin$path"), {
        headers => { Authorization => "Bearer $admin", 'Content-Type' => 'application/json' },
        (defined $body ? (content => $body) : ()) });
}

# --- a login through the edge ----------------------------------------------------

my $r = step('login-good');
ok $r->{ok}, 'the tRPC client logs in through the edge';
is $r->{data}{token}, 'app-token', '... with the app\'s answer';
ok $r->{issuedAtIsDate}, '... superjson intact (a Date comes back as a Date)';

my $tok = token(sub => 'u-7', sid => 's-7');
$r = step('me', $tok);
is_deeply $r->{data}, { userId => 'u-7', sessionId => 's-7',
                        correlationId => $r->{data}{correlationId} },
          'the app sees the verified user and session';
like $r->{data}{correlationId} // '', qr/^[0-9a-f-]{36}$/, '... and a correlation id';
is step('me')->{data}{userId}, undef, 'an anonymous call: no user';

# --- locked out after repeated failures --------------------------------------------

for my $i (1 .. 6) {
    $r = step('login-bad');
    is $r->{code}, 'UNAUTHORIZED', "failure $i: the app's own UNAUTHORIZED";
}
$r = step('login-bad');
ok $r->{isTRPCClientError}, 'then a TRPCClientError';
is $r->{code}, 'TOO_MANY_REQUESTS', 'whose data.code is TOO_MANY_REQUESTS';
is $r->{httpStatus}, 429, 'data.httpStatus 429';
is $r->{path}, 'auth.login', 'data.path auth.login';
is $r->{edgeCode}, 'ACCOUNT_LOCKED', 'data.edgeCode ACCOUNT_LOCKED';
ok $r->{retryAfter} > 0, "data.retryAfter ($r->{retryAfter} s)";
like $r->{message}, qr/Account temporarily locked/, 'the message';
like $r->{correlationId} // '', qr/^[0-9a-f-]{36}$/, 'the correlation id';

$r = step('batch');
is ref $r, 'ARRAY', 'a batched call while locked';
is $r->[0]{code}, 'TOO_MANY_REQUESTS', '... the login is refused';
is $r->[1]{code}, 'TOO_MANY_REQUESTS', '... so is its batch companion';
is $r->[1]{path}, 'chat.send', '... each with its own path';

is admin('DELETE', '/lockouts/bob@example.com')->{status}, 200, 'unlock bob';
admin('DELETE', '/lockouts/127.0.0.1');
$r = step('batch');
ok $r->[0]{ok} && $r->[1]{ok}, 'the batch passes once unlocked';

# --- every policy of the edge is a tRPC error ---------------------------------------

admin('PATCH', '/flags', '{"maintenance":true}');
$r = step('me');
is $r->{code}, 'SERVICE_UNAVAILABLE', 'maintenance: SERVICE_UNAVAILABLE';
is $r->{httpStatus}, 503, '... 503';
is $r->{edgeCode}, 'MAINTENANCE', '... edgeCode MAINTENANCE';
admin('PATCH', '/flags', '{"maintenance":null,"features":{"chat":false}}');
$r = step('chat');
is $r->{code}, 'SERVICE_UNAVAILABLE', 'chat off: SERVICE_UNAVAILABLE';
is $r->{edgeCode}, 'FEATURE_DISABLED', '... edgeCode FEATURE_DISABLED';
ok step('me')->{ok}, 'other procedures pass';
admin('PATCH', '/flags', '{"features":{"chat":null},"strictMode":true}');
$r = step('me', 'not.a.token');
is $r->{code}, 'UNAUTHORIZED', 'strict mode, a bad token: UNAUTHORIZED';
is $r->{httpStatus}, 401, '... 401';
ok step('me')->{ok}, 'strict mode, no token: a public call passes';
admin('PATCH', '/flags', '{"strictMode":null}');

admin('POST', '/breakers/app/reset');
kill 'TERM', $app;
waitpid $app, 0;
$app = 0;
$r = step('me');
is $r->{code}, 'BAD_GATEWAY', 'the app down: BAD_GATEWAY';
is $r->{httpStatus}, 502, '... 502';

$srv->stop;
unlike $srv->slurp('logs/error.log'), qr/\[(alert|emerg|crit)\]|exited on signal/,
       'no worker crashed';

done_testing;
