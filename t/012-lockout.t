# vim:set ft= ts=4 sw=4 et fdm=marker:
#
# Login lockout on an auth route in front of a fake app: failures per
# account and per address, the countdown header, the lock at twice the
# limit, clearance on success, bodies that are not JSON or are large, the
# body passed on intact, state kept across a HUP reload, and the operator
# hooks (status, unlock) through the operations API.

use strict;
use warnings;
use lib 't/lib';
use Test::More;
use JSON::PP;
use HTTP::Tiny;
use Linguamate::Server;
use Linguamate::Upstream;

my $json = JSON::PP->new->canonical;

# the app: "good" passwords log in, anything else is a 401; the body seen
# is echoed so that the test can check it arrived intact
my $app = Linguamate::Upstream->new(sub {
    my ($method, $uri, $h, $body) = @_;
    my $ok = $body =~ /"password"\s*:\s*"good"/;
    return ($ok ? 200 : 401,
            $json->encode({ seen => $body, len => length $body }));
});

my $srv = Linguamate::Server->new(workers => 2);
my $port = $app->port;
my $state = $srv->dir . '/state';
mkdir $state;
chmod 0777, $state;

sub conf {
    my ($attempts) = @_;
    $srv->configure(<<"_HTTP_", <<"_SERVER_");
    linguamate_rate_limit_max_login_attempts $attempts;
    linguamate_lockout_zone auth_lockout size=1m;
    linguamate_admin_token admin-token-admin-token-admin-token-0;
    linguamate_log_file logs/events.log;
    linguamate_state_dir $state;
_HTTP_
        client_body_buffer_size 16k;
        location = /api/auth/login {
            linguamate_lockout auth_lockout;
            proxy_pass http://127.0.0.1:$port/login;
        }
        location /api/admin/ {
            linguamate_lockout off;
            linguamate_endpoint admin;
        }
_SERVER_
}

conf(2);
$srv->start;

my $http = HTTP::Tiny->new(timeout => 10);

sub login {
    my ($body, %h) = @_;
    return $http->post($srv->url('/api/auth/login'), {
        content => $body,
        headers => { 'Content-Type' => 'application/json', %h },
    });
}

sub admin {
    my ($method, $path) = @_;
    return $http->request($method, $srv->url($path), { headers => {
        Authorization => 'Bearer admin-token-admin-token-admin-token-0' } });
}

# --- countdown, lock at twice the limit (2 x 2 = 4 failures) -----------------

my $bad = '{"email":"Alice@Example.com","password":"nope"}';
my @remaining;
for my $i (1 .. 4) {
    my $r = login($bad);
    is $r->{status}, 401, "failure $i passes through as the app's 401";
    push @remaining, $r->{headers}{'x-ratelimit-remaining-auth'};
}
is_deeply \@remaining, [1, 0, 0, 0], 'X-RateLimit-Remaining-Auth counts down to 0';

my $r = login('{"email":"alice@example.com","password":"good"}');
is $r->{status}, 429, 'the account is locked, whatever the case of its email';
my $e = eval { $json->decode($r->{content}) } || {};
is $e->{error}{code}, 'ACCOUNT_LOCKED', 'ACCOUNT_LOCKED';
is $e->{error}{message}, 'Account temporarily locked. Please try again in 15 minutes.',
   'the original message';
cmp_ok $e->{error}{retryAfter}, '>', 890, 'retryAfter about 15 minutes';
is $r->{headers}{'retry-after'}, $e->{error}{retryAfter}, 'Retry-After matches';
is $r->{headers}{'x-ratelimit-remaining-auth'}, 0, 'remaining 0 while locked';

my $events = $srv->slurp('logs/events.log');
like $events, qr/"evt":"auth_lockout_triggered".*"keyType":"email","email":"a\*\*\*\@example\.com","failures":4,"lockedForSeconds":900/,
     'auth_lockout_triggered with the email masked';
unlike $events, qr/alice\@|Alice\@|nope/, 'no email or password in the log';

# the address also collected 4 failures: it is locked too
$r = login('{"email":"bob@example.com","password":"good"}');
is $r->{status}, 429, 'the client address is locked as well (4 failures from it)';

# --- operations: status and unlock ------------------------------------------

$r = admin('GET', '/api/admin/lockouts/alice@example.com');
is $r->{status}, 200, 'lockout status';
my $st = eval { $json->decode($r->{content}) } || {};
is $st->{key}, 'email:alice@example.com', 'normalised key';
is $st->{locked}, JSON::PP::true, 'locked';
cmp_ok $st->{retryAfter}, '>', 890, 'for about 15 minutes';

$r = admin('DELETE', '/api/admin/lockouts/alice@example.com');
is $r->{status}, 200, 'unlock the account';
$r = admin('DELETE', '/api/admin/lockouts/127.0.0.1');
is $r->{status}, 200, 'unlock the address';
$r = admin('GET', '/api/admin/lockouts/alice@example.com');
is $r->{status}, 404, 'no lockout left for the account';
like $srv->slurp('logs/events.log'), qr/"evt":"admin_action".*"action":"lockout_unlock"/,
     'unlocking is an admin_action';

# --- a success clears the account ---------------------------------------------

login('{"email":"carol@example.com","password":"x"}');
$r = login('{"email":"carol@example.com","password":"good"}');
is $r->{status}, 200, 'carol logs in';
is $r->{headers}{'x-ratelimit-remaining-auth'}, 1,
   'her account is cleared; the address keeps its failure';
my $seen = eval { $json->decode($r->{content}) } || {};
is $seen->{seen}, '{"email":"carol@example.com","password":"good"}',
   'the app received the body intact';
admin('DELETE', '/api/admin/lockouts/127.0.0.1');

# --- bodies that are not JSON, or large -----------------------------------

$r = login('email=dave@example.com&password=x',
           'Content-Type' => 'application/x-www-form-urlencoded');
is $r->{status}, 401, 'a form body is passed on';
is $r->{headers}{'x-ratelimit-remaining-auth'}, 1, 'and counts for the address';

my $big = '{"email":"erin@example.com","password":"x","pad":"' . ('p' x 100000) . '"}';
$r = login($big);
is $r->{status}, 401, 'a 100 KB body (on disk) is passed on';
$seen = eval { $json->decode($r->{content}) } || {};
is $seen->{len}, length $big, 'intact';
is $r->{headers}{'x-ratelimit-remaining-auth'}, 0,
   'and counts for the address (the account is not read from disk)';

$r = login('{"email":' . ('[' x 5000) . '"x"' . (']' x 5000) . '}');
is $r->{status}, 401, 'a body nested 5000 deep is passed on';

$r = admin('GET', '/api/admin/lockouts/erin@example.com');
is $r->{status}, 404, 'erin was never counted';
admin('DELETE', '/api/admin/lockouts/127.0.0.1');

# --- chunked bodies --------------------------------------------------------

$r = $http->request('POST', $srv->url('/api/auth/login'), {
    headers => { 'Content-Type' => 'application/json' },
    content => do {
        my @parts = ('{"email":"frank@', 'example.com","password":"x"}');
        sub { shift @parts };
    },
});
is $r->{status}, 401, 'a chunked body is read and passed on';
$r = admin('GET', '/api/admin/lockouts/frank@example.com');
is eval { $json->decode($r->{content})->{failures} }, 1,
   'and its account counted';

# --- only the login's own account counts; a body naming two clears none ------

login('{"email":"victim@example.com","password":"x"}') for 1 .. 2;
admin('DELETE', '/api/admin/lockouts/127.0.0.1');
$r = login('{"x":{"email":"victim@example.com"},"email":"me@example.com","password":"good"}');
is $r->{status}, 200, 'a login with an email hidden deeper in the body';
$r = admin('GET', '/api/admin/lockouts/victim@example.com');
is eval { $json->decode($r->{content})->{failures} }, 2,
   'does not clear the hidden account';
$r = login('{"email":"victim@example.com","email":"me@example.com","password":"good"}');
is $r->{status}, 200, 'a login naming two accounts';
$r = admin('GET', '/api/admin/lockouts/victim@example.com');
is eval { $json->decode($r->{content})->{failures} }, 2, 'clears neither';
$r = login('{"json":{"email":"victim@example.com","password":"x"}}');
$r = admin('GET', '/api/admin/lockouts/victim@example.com');
is eval { $json->decode($r->{content})->{failures} }, 3,
   'tRPC\'s {"json":{"email":...}} names the account';
$r = login('{"0":{"json":{"email":"victim@example.com","password":"x"}}}');
$r = admin('GET', '/api/admin/lockouts/victim@example.com');
is eval { $json->decode($r->{content})->{locked} }, JSON::PP::true,
   'and its batches (the fourth failure locks the account)';
admin('DELETE', '/api/admin/lockouts/victim@example.com');
admin('DELETE', '/api/admin/lockouts/127.0.0.1');

# --- a hostile email is masked, escaped and bounded in the lockout log -----

my $hostile = '{"email":"@' . ('\u0001' x 253) . '","password":"x"}';
login($hostile) for 1 .. 4;
$r = login($hostile);
is $r->{status}, 429, 'an email of 254 control characters locks like any other';
my @lines = grep { /auth_lockout_triggered/ } split /\n/, $srv->slurp('logs/events.log');
ok((grep { eval { $json->decode($_); 1 } } @lines) == @lines, 'its log lines are valid JSON');
admin('DELETE', '/api/admin/lockouts/127.0.0.1');

# --- lockouts survive a reload ------------------------------------------------

for (1 .. 4) { login('{"email":"gina@example.com","password":"x"}') }
ok $srv->reload, 'HUP reload';
$r = login('{"email":"gina@example.com","password":"good"}');
is $r->{status}, 429, 'gina is still locked after the reload';

# --- and a stop/start, through STATE_DIR ------------------------------------------

$srv->stop;
$srv->start;
$r = login('{"email":"gina@example.com","password":"good"}');
is $r->{status}, 429, 'gina is still locked after stop/start';
my $left = eval { $json->decode($r->{content})->{error}{retryAfter} } // 0;
ok $left > 800 && $left <= 900, "for what was left of the 15 minutes ($left s)";
$r = admin('GET', '/api/admin/lockouts/gina@example.com');
is eval { $json->decode($r->{content})->{locked} }, JSON::PP::true,
   'the operations API sees the lock';
like $srv->slurp('logs/error.log'), qr/locks restored from/, 'the restore is logged';
my $journal = $srv->slurp('state/lockouts-auth_lockout.journal');
like $journal, qr/^L \d{13} \d+ email%3Agina%40example\.com$/m, 'the journal has the lock';
unlike $journal, qr/password|good/, 'and nothing of the request';
unlike $journal, qr/\x01/, 'a hostile key is escaped in it';

$r = admin('DELETE', '/api/admin/lockouts/gina@example.com');
is $r->{status}, 200, 'unlock gina';
admin('DELETE', '/api/admin/lockouts/127.0.0.1');
$srv->stop;
$srv->start;
$r = login('{"email":"gina@example.com","password":"good"}');
is $r->{status}, 200, 'the unlock survived stop/start too';

$srv->stop;
$app->stop;
unlike $srv->slurp('logs/error.log'), qr/\[(alert|crit)\]|exited on signal/,
       'no alert, no crash';

done_testing();
