# vim:set ft= ts=4 sw=4 et fdm=marker:
#
# The app's own tRPC v11 client (@trpc/client, httpBatchLink, superjson)
# pointed at the edge, with a real tRPC v11 app (@trpc/server, superjson)
# behind it: it logs in through the edge, is locked out after repeated
# failures with a TRPCClientError whose data.code is TOO_MANY_REQUESTS,
# and reads every policy error of the edge as a tRPC error.  Then, for
# each of tRPC's adapters (standalone, fetch, Express with and without
# express.json()), every spelling and login body the adapter runs as a
# victim's login is refused or counted (issue 13).  Needs node
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
use Compress::Zlib ();
use Encode ();
use Linguamate::Server;
use Linguamate::Token;

my $dir = 't/trpc-client';
my $json = JSON::PP->new->canonical;

my $have = !system('node --version >/dev/null 2>&1 && npm --version >/dev/null 2>&1');
if (!$have) {
    if ($ENV{CI}) { fail('node and npm are installed'); done_testing; exit }
    plan skip_all => 'node and npm are needed';
}

if (grep { !-d "$dir/node_modules/$_" } qw(@trpc/client @trpc/server express superjson)) {
    my $out = `cd $dir && npm ci --no-audit --no-fund 2>&1`;
    if ($?) {
        if ($ENV{CI}) { fail('npm ci in t/trpc-client'); diag $out; done_testing; exit }
        plan skip_all => "npm ci failed: $out";
    }
}

# the app, served by one of tRPC's adapters (server.mjs)
my %apps;
END { for (values %apps) { kill 'TERM', $_; waitpid $_, 0 } }

sub start_app {
    my ($adapter) = @_;
    my $port = Linguamate::Server::free_port();
    my $pid = fork // die;
    if ($pid == 0) {
        open STDOUT, '>', '/dev/null';
        exec 'node', "$dir/server.mjs", $port, $adapter;
        die "exec: $!";
    }
    $apps{$adapter} = $pid;
    my $t0 = time;
    sleep 0.05 until IO::Socket::INET->new("127.0.0.1:$port") || time - $t0 > 10;
    ok(IO::Socket::INET->new("127.0.0.1:$port"), "the tRPC app listens ($adapter adapter)");
    return $port;
}

sub stop_app {
    my $pid = delete $apps{$_[0]} or return;
    kill 'TERM', $pid;
    waitpid $pid, 0;
}

my $app_port = start_app('standalone');

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
stop_app('standalone');
$r = step('me');
is $r->{code}, 'BAD_GATEWAY', 'the app down: BAD_GATEWAY';
is $r->{httpStatus}, 502, '... 502';

$srv->stop;
unlike $srv->slurp('logs/error.log'), qr/\[(alert|emerg|crit)\]|exited on signal/,
       'no worker crashed';

# --- every adapter: no spelling of auth.login, no login body escapes the lockout ---------
#
# For each of tRPC's adapters behind the edge: each spelling that the
# adapter, hit directly, runs as auth.login (its error names the account
# it read) is, through the edge, refused or counted exactly once for the
# account; each login body that the adapter reads as the victim's
# account either locks it at its limit (2 x 3 failures) or is refused
# every time.  The first part of each check runs the adapter directly,
# so that a spelling or a body the adapter did not run proves nothing.

# one request as raw bytes (the path exactly as written)
sub raw {
    my ($port, $method, $target, $body, %h) = @_;
    my $s = IO::Socket::INET->new("127.0.0.1:$port") or die "connect: $!";
    $h{'X-Real-IP'} //= join '.', 10, map { int rand 250 } 1 .. 3;
    $h{'Content-Type'} //= 'application/json';
    my $req = "$method $target HTTP/1.1\r\nHost: 127.0.0.1:$port\r\nConnection: close\r\n";
    $req .= "$_: $h{$_}\r\n" for sort keys %h;
    $req .= 'Content-Length: ' . length($body) . "\r\n" if defined $body;
    print $s "$req\r\n" . ($body // '');
    local $/;
    my $resp = <$s> // '';
    my ($head, $content) = split /\r\n\r\n/, $resp, 2;
    my ($status) = ($head // '') =~ m{^HTTP/1\.\d (\d+)};
    if (($head // '') =~ /^transfer-encoding:\s*chunked/mi) {
        my $body = '';
        while ($content =~ s/^([0-9a-f]+)\r\n//i && hex $1) {
            $body .= substr $content, 0, hex $1, '';
            $content =~ s/^\r\n//;
        }
        $content = $body;
    }
    my $j = eval { $json->decode($content // '') };
    my @all = ref $j eq 'ARRAY' ? @$j : ($j);
    my @e = map { ref $_ eq 'HASH' && ref $_->{error} eq 'HASH' ? $_->{error}{json} : {} } @all;
    # the first error, and the messages of all (one a line)
    return { status => $status // 0, error => $e[0], raw => $resp,
             messages => join "\n", map { $_->{message} // '' } @e };
}

my $victim = 'vic@example.com';
my $vbody = qq'{"json":{"email":"$victim","password":"x"}}';

my @spellings = (
    '/api/trpc/auth.login',             # canonical: counted
    '/api/trpc/auth.login/',            # fetch: slashes trimmed
    '/api/trpc/auth.login//',
    '/api/trpc//auth.login',            # express: the last segment
    '/api/trpc/x/auth.login',
    '/api/trpc/x/y/auth.login',
    '/api/trpc/x/../auth.login',        # every adapter: URL normalisation
    '/api/trpc/./auth.login',
    '/api/trpc/auth%2Elogin',           # every adapter: decodeURIComponent
    '/api/trpc/%61uth.login',
    '/api/trpcauth.login',              # fetch: a missing slash
    '/api/trpc%2Fauth.login',
    '/api/tr%70c/auth.login',
);

# bodies that every adapter reads as the victim's account (or, for the
# values annotation, as another account than the JSON says)
my $deep = ('[' x 40) . (']' x 40);
my @bodies = (
    [ 'a byte-order mark', "\xEF\xBB\xBF$vbody" ],
    [ 'invalid UTF-8 in another field',
      qq'{"json":{"email":"$victim","password":"x","n":"\xFF"}}' ],
    [ 'nesting deeper than the edge reads, in another field',
      qq'{"json":{"email":"$victim","password":"x","n":$deep}}' ],
    [ 'superjson referentialEqualities set the email from another field',
      qq'{"json":{"email":"decoy\@example.com","o":"$victim","password":"x"},'
      . '"meta":{"referentialEqualities":{"o":["email"]}}}' ],
    [ 'a superjson values annotation on the email',
      qq'{"json":{"email":"$victim","password":"x"},"meta":{"values":{"email":["undefined"]}}}',
      qr/for \(undefined\)/ ],
    [ 'duplicate email keys (JSON.parse keeps the last)',
      qq'{"json":{"email":"d1\@example.com","email":"d2\@example.com","email":"$victim","password":"x"}}' ],
    [ 'spaces and capitals', qq'{"json":{"email":"  VIC\@Example.com ","password":"x"}}' ],
    [ 'a batch, the victim third',
      qq'{"0":{"json":{"email":"d1\@example.com"}},"1":{"json":{"email":"d2\@example.com"}},'
      . qq'"2":{"json":{"email":"$victim","password":"x"}}}',
      undef, '/api/trpc/auth.login,auth.login,auth.login?batch=1' ],
    # what only an app with body-parser reads
    [ 'a gzip body', Compress::Zlib::memGzip($vbody), undef, undef,
      { 'Content-Encoding' => 'gzip' }, 'express-json' ],
    [ 'a UTF-16 body', Encode::encode('UTF-16LE', $vbody), undef, undef,
      { 'Content-Type' => 'application/json; charset=utf-16le' }, 'express-json' ],
);

# which spellings must run on which adapter, so that the check can fail
my %must_run = (
    standalone     => [ '/api/trpc/auth%2Elogin', '/api/trpc/x/../auth.login' ],
    fetch          => [ '/api/trpc/auth.login/', '/api/trpcauth.login' ],
    express        => [ '/api/trpc/x/auth.login', '/api/trpc//auth.login' ],
    'express-json' => [ '/api/trpc/x/auth.login', '/api/trpc//auth.login' ],
);

for my $adapter (qw(standalone fetch express express-json)) {
    my $port = start_app($adapter);
    my $e = Linguamate::Server->new(workers => 2);
    my $st = $e->dir . '/state';
    mkdir $st;
    chmod 0777, $st;
    $e->configure(<<"_HTTP_", <<'_SERVER_');
    linguamate_jwt_secret $SECRET;
    linguamate_admin_token $admin;
    linguamate_log_file logs/events.log;
    linguamate_state_dir $st;
    linguamate_rate_limit_max_login_attempts 3;
    linguamate_app_upstream_url http://127.0.0.1:$port;
    linguamate_limit_zone global size=1m window=1h limit=10000;
    linguamate_lockout_zone auth_lockout size=1m;
    linguamate_breaker app;
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
            proxy_max_temp_file_size 0;
            proxy_ignore_client_abort on;
            proxy_pass $linguamate_app_upstream;
        }
        location /api/admin/ {
            linguamate_limit off;
            linguamate_endpoint admin;
        }
        location / {
            linguamate_endpoint not_found;
        }
_SERVER_
    $e->start;

    my $adm = sub {
        my ($method, $path) = @_;
        my $r = HTTP::Tiny->new->request($method, $e->url("/api/admin/lockouts/$path"), {
            headers => { Authorization => "Bearer $admin", 'X-Real-IP' => '127.0.0.1' } });
        return eval { $json->decode($r->{content}) } // {};
    };
    my $reset = sub { $adm->('DELETE', $_) for $victim, 'd1@example.com', 'd2@example.com' };

    my %ran;
    for my $sp (@spellings) {
        $reset->();
        my $d = raw($port, 'POST', $sp, $vbody);
        $ran{$sp} = ($d->{error}{message} // '') eq "Invalid credentials for $victim";
        my $r = raw($e->port, 'POST', $sp, $vbody);
        my $refused = $r->{error}{data}{edgeCode} && $r->{status} >= 400;
        my $failures = $adm->('GET', $victim)->{failures} // 0;
        if ($ran{$sp}) {
            ok $refused || $failures == 1,
               "$adapter runs $sp as auth.login: through the edge "
               . ($refused ? "refused ($r->{status} $r->{error}{data}{code})" : "counted $failures time(s)");
        } else {
            ok $refused || $failures <= 1, "$adapter does not run $sp; the edge: "
               . ($refused ? "refused" : "counted $failures");
        }
    }
    ok $ran{$_}, "$adapter, hit directly, runs $_ as auth.login" for @{ $must_run{$adapter} };
    $reset->();
    raw($e->port, 'POST', $spellings[0], $vbody);
    is $adm->('GET', $victim)->{failures}, 1, "$adapter: the canonical spelling is counted once";

    for my $b (@bodies) {
        my ($name, $body, $reads, $path, $hdrs, $only) = @$b;
        next if $only && $only ne $adapter;
        $path //= '/api/trpc/auth.login';
        $reset->();
        my $d = raw($port, 'POST', $path, $body, %{ $hdrs // {} });
        like $d->{messages}, $reads // qr/for \Q$victim\E$/m,
             "$adapter reads $name as the victim's login";
        my ($refused, $passed) = (0, 0);
        for (1 .. 6) {
            my $r = raw($e->port, 'POST', $path, $body, %{ $hdrs // {} });
            if ($r->{status} == 400 && ($r->{error}{data}{edgeCode} // '') eq 'VALIDATION_ERROR') {
                $refused++;
            } else {
                $passed++;
            }
        }
        my $locked = $adm->('GET', $victim)->{locked};
        ok $refused == 6 || $locked,
           "$adapter, $name: " . ($refused == 6 ? 'refused every time'
                                  : "the account is locked ($passed passed, $refused refused)");
    }

    $e->stop;
    unlike $e->slurp('logs/error.log'), qr/\[(alert|emerg|crit)\]|exited on signal/,
           "$adapter: no worker crashed";
    stop_app($adapter);
}

done_testing;
