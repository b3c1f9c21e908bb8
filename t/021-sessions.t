# vim:set ft= ts=4 sw=4 et fdm=marker:
#
# Sessions with a real master and two workers: revoking a session, a user
# and everything through the operations API, kept across a HUP reload and
# a stop/start through the STATE_DIR journal; refresh-token rotation with
# reuse detection; logout.

use strict;
use warnings;
use lib 't/lib';
use Test::More;
use JSON::PP;
use HTTP::Tiny;
use Linguamate::Server;
use Linguamate::Token;

my $json = JSON::PP->new;
my $admin = 'admin-token-admin-token-admin-token-0';
my $srv = Linguamate::Server->new(workers => 2);
my $state = $srv->dir . '/state';
mkdir $state;
chmod 0777, $state;

$srv->configure(<<"_HTTP_", <<'_SERVER_');
    linguamate_jwt_secret $SECRET;
    linguamate_jwt_expires_in 15m;
    linguamate_jwt_refresh_expires_in 7d;
    linguamate_state_dir $state;
    linguamate_session_zone sessions size=1m;
    linguamate_admin_token $admin;
    linguamate_log_file logs/events.log;
_HTTP_
        location = /api/auth/session {
            linguamate_auth on;
            linguamate_endpoint auth_session;
        }
        location = /api/auth/refresh { linguamate_endpoint auth_refresh; }
        location = /api/auth/logout {
            linguamate_auth on;
            linguamate_endpoint auth_logout;
        }
        location /api/admin/ { linguamate_endpoint admin; }
_SERVER_
$srv->start;

my $http = HTTP::Tiny->new(timeout => 10);

# every check goes to both workers: fresh connections, several times
sub status_of {
    my ($token) = @_;
    my %seen;
    for (1 .. 6) {
        my $r = $http->get($srv->url('/api/auth/session'),
                           { headers => { Authorization => "Bearer $token" } });
        my $reason = eval { $json->decode($r->{content})->{error}{reason} };
        $seen{ $r->{status} . ($reason ? " $reason" : '') }++;
    }
    return join ',', sort keys %seen;
}

sub admin_post {
    my ($path) = @_;
    return $http->post($srv->url($path),
                       { headers => { Authorization => "Bearer $admin" } });
}

sub refresh {
    my ($token) = @_;
    return $http->post($srv->url('/api/auth/refresh'), {
        headers => { 'Content-Type' => 'application/json' },
        content => $json->encode({ refreshToken => $token }),
    });
}

# tokens issued a few seconds ago: a revocation covers the tokens issued
# before the second it is made in
my $old = time - 5;
my $a = token(sub => 'u1', sid => 's1', iat => $old);
my $b = token(sub => 'u1', sid => 's2', iat => $old);
my $c = token(sub => 'u2', sid => 's3', iat => $old);

is status_of($a), '200', 'a session token works on every worker';

# --- revoke one session -------------------------------------------------

my $r = admin_post('/api/admin/sessions/s1/revoke');
is $r->{status}, 200, 'revoke session s1';
is status_of($a), '401 REVOKED', 'its token is refused everywhere at once';
is status_of($b), '200', 'another session of the same user is not';

# --- revoke a user ------------------------------------------------------

$r = admin_post('/api/admin/users/u1/revoke');
is $r->{status}, 200, 'revoke user u1';
is status_of($b), '401 REVOKED', 'all of its sessions are refused';
is status_of($c), '200', 'other users are not';
my $later = token(sub => 'u1', sid => 's4');
is status_of($later), '200', 'a token u1 gets after the revocation works';

# --- kept across a reload and a restart ------------------------------------

ok $srv->reload, 'HUP reload';
is status_of($a), '401 REVOKED', 'the session stays revoked after a reload';
is status_of($b), '401 REVOKED', 'the user too';

$srv->stop;
$srv->start;
is status_of($a), '401 REVOKED', 'the session stays revoked after stop/start';
is status_of($b), '401 REVOKED', 'the user too';
is status_of($c), '200', 'and the others still work';

my $journal = do { local $/; open my $f, '<', "$state/sessions-sessions.journal" or die $!; <$f> };
like $journal, qr/ sid:s1\n/, 'the journal has the session';
unlike $journal, qr/eyJ|\Q$SECRET\E/, 'and neither tokens nor secrets';

# --- revoke everything -----------------------------------------------------

$r = admin_post('/api/admin/sessions/revoke-all');
is $r->{status}, 200, 'revoke-all';
like $r->{content}, qr/"revoked":"all","issuedBefore":"\d{4}-/, 'says what it did';
is status_of($c), '401 REVOKED', 'every token issued before is refused';
my $fresh = token(sub => 'u9', sid => 's99');
is status_of($fresh), '200', 'tokens issued afterwards work';
like $srv->slurp('logs/events.log'), qr/"evt":"admin_action".*"action":"sessions_revoke_all","status":200/,
     'admin_action logged';

# --- refresh rotation and reuse detection ----------------------------------

my $r0 = token(sub => 'u3', sid => 's9', type => 'refresh', ttl => '7d');
$r = refresh($r0);
is $r->{status}, 200, 'refresh with a valid refresh token';
my $t1 = eval { $json->decode($r->{content}) } || {};
ok $t1->{accessToken} && $t1->{refreshToken}, 'new access and refresh tokens';
is $t1->{expiresIn}, 900, 'expiresIn from JWT_EXPIRES_IN';
is status_of($t1->{accessToken}), '200', 'the new access token works';

my $decoded = `scripts/jwt decode $t1->{refreshToken} --secret $SECRET`;
like $decoded, qr/"jti":"[0-9a-f]{32}"/, 'the new refresh token has its own id';
like $decoded, qr/"sid":"s9".*"sub":"u3".*"type":"refresh"/, 'same session and user';

$r = refresh($t1->{refreshToken});
is $r->{status}, 200, 'the new refresh token refreshes again';
my $t2 = eval { $json->decode($r->{content}) } || {};

$r = refresh($t1->{refreshToken});
is $r->{status}, 401, 'presenting a used refresh token again is refused';
like $r->{content}, qr/"reason":"REVOKED"/, 'as REVOKED';
is status_of($t2->{accessToken}), '401 REVOKED', 'and the whole session is revoked';
is refresh($t2->{refreshToken})->{status}, 401, 'including its latest refresh token';

$r = refresh($fresh);
is $r->{status}, 401, 'an access token is not a refresh token';
like $r->{content}, qr/"reason":"WRONG_TYPE"/, 'WRONG_TYPE';

$r = $http->post($srv->url('/api/auth/refresh'), { content => 'not json' });
is $r->{status}, 400, 'a body that is not JSON is a 400';
like $r->{content}, qr/"code":"VALIDATION_ERROR".*"details":\[\{"field":"body"/, 'with details';

$r = $http->post($srv->url('/api/auth/refresh'), { content => '{"refreshToken":42}' });
is $r->{status}, 400, 'a refreshToken that is not a string is a 400';
like $r->{content}, qr/"field":"refreshToken"/, 'naming the field';

# --- logout ------------------------------------------------------------------

my $d = token(sub => 'u4', sid => 's10');
$r = $http->post($srv->url('/api/auth/logout'),
                 { headers => { Authorization => "Bearer $d" } });
is $r->{status}, 200, 'logout';
is status_of($d), '401 REVOKED', 'revokes the caller\'s session';
$r = $http->post($srv->url('/api/auth/logout'));
is $r->{status}, 401, 'logout needs a token';

$srv->stop;
unlike $srv->slurp('logs/error.log'), qr/\[(alert|crit)\]|exited on signal/,
       'no alert, no crash';
unlike $srv->slurp('logs/events.log'), qr/eyJ/, 'no token in the log';

# --- a full session zone refuses new revocations; it never forgets one -----

my $tiny = Linguamate::Server->new(workers => 1);
mkdir $tiny->dir . '/state';
chmod 0777, $tiny->dir . '/state';
$tiny->configure(<<"_HTTP_", <<'_SERVER_');
    linguamate_jwt_secret $SECRET;
    linguamate_state_dir @{[ $tiny->dir ]}/state;
    linguamate_session_zone sessions size=32k;
    linguamate_admin_token $admin;
_HTTP_
        location = /api/auth/session { linguamate_auth on; linguamate_endpoint auth_session; }
        location /api/admin/ { linguamate_endpoint admin; }
_SERVER_
$tiny->start;
$srv = $tiny;
my $victim = token(sub => 'victim', sid => 'S-victim', iat => $old);
is admin_post('/api/admin/sessions/S-victim/revoke')->{status}, 200, 'revoke the victim';
my %st;
$st{ admin_post("/api/admin/sessions/filler-$_/revoke")->{status} }++ for 1 .. 640;
ok $st{500}, 'once the zone is full, revocations are refused (500), not stored over others';
is status_of($victim), '401 REVOKED', 'the first revocation is still in force';
like $tiny->slurp('logs/error.log'), qr/could not allocate node in zone "sessions"/,
     'the full zone is logged';
$tiny->stop;

done_testing();
