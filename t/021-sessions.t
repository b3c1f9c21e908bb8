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
use MIME::Base64 qw(decode_base64);
use Time::HiRes ();
use Time::Local qw(timegm);
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
sub status_of { session_status($srv, $_[0]) }

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

# the moment of a revocation, from its answer: epoch milliseconds
sub revoked_at {
    my ($r) = @_;
    my ($y, $mo, $d, $h, $mi, $s, $ms) = $r->{content}
        =~ /"issuedBefore":"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)\.(\d{3})Z"/
        or return undef;
    return timegm($s, $mi, $h, $d, $mo - 1, $y) * 1000 + $ms;
}

# a token of the app, issued now to the millisecond (iat_ms)
sub token_now {
    my (%o) = @_;
    my $ms = int(Time::HiRes::time() * 1000);
    return token(%o, iat => int($ms / 1000), claim => ["iat_ms=$ms"]);
}

# the claims of a token the edge issued
sub claims_of {
    my ($t) = @_;
    my $p = (split /\./, $t)[1];
    $p =~ tr{-_}{+/};
    return $json->decode(decode_base64($p . '=' x ((4 - length($p) % 4) % 4)));
}

# a token issued without milliseconds: the first whole second after the
# moment ms (polled: the clock passes it within a second)
sub token_after {
    my ($ms, %o) = @_;
    Time::HiRes::sleep(0.05) while Time::HiRes::time() * 1000 < ($ms - $ms % 1000) + 1000;
    return token(%o);
}

# tokens issued a few seconds ago: a revocation covers the tokens issued
# before it
my $old = time - 5;
my $a = token(sub => 'u1', sid => 's1', iat => $old);
my $b = token(sub => 'u1', sid => 's2', iat => $old);
my $c = token(sub => 'u2', sid => 's3', iat => $old);

is status_of($a), '200', 'a session token works on every worker';

# --- revoke one session -------------------------------------------------

my $r = admin_post('/api/admin/sessions/s1/revoke');
is $r->{status}, 200, 'revoke session s1';
like $r->{content}, qr/^\{"success":true,"revoked":"sid","issuedBefore":"\d{4}-/,
     '... a session: "sid"';
is status_of($a), '401 REVOKED', 'its token is refused everywhere at once';
is status_of($b), '200', 'another session of the same user is not';

# --- revoke a user ------------------------------------------------------

$r = admin_post('/api/admin/users/u1/revoke');
is $r->{status}, 200, 'revoke user u1';
like $r->{content}, qr/^\{"success":true,"revoked":"sub","issuedBefore":"\d{4}-/,
     '... a user: "sub"';
is status_of($b), '401 REVOKED', 'all of its sessions are refused';
is status_of($c), '200', 'other users are not';
my $at = revoked_at($r);
ok $at, 'the revocation names its moment to the millisecond';
my $later = token_after($at, sub => 'u1', sid => 's4');
is status_of($later), '200', 'a token u1 gets after the revocation works';

# --- kept across a reload and a restart ------------------------------------

ok $srv->reload, 'HUP reload';
is status_of($a), '401 REVOKED', 'the session stays revoked after a reload';
is status_of($b), '401 REVOKED', 'the user too';

# a journal line of the version before milliseconds: five fields, the
# revocation's second only
my $legacy = time - 100;
$srv->stop;
open my $jf, '>>', "$state/sessions-sessions.journal" or die $!;
print $jf time + 86400, " $legacy 0 - sub:legacy\n";
close $jf;
$srv->start;
is status_of($a), '401 REVOKED', 'the session stays revoked after stop/start';
is status_of($b), '401 REVOKED', 'the user too';
is status_of($c), '200', 'and the others still work';

is status_of(token(sub => 'legacy', iat => $legacy - 1)), '401 REVOKED',
   'an old journal line loads: a token of the second before is refused';
is status_of(token(sub => 'legacy', iat => $legacy)), '401 REVOKED',
   '  one of its own second too: its moment is taken to the end of it';
is status_of(token(sub => 'legacy', iat => $legacy + 1)), '200',
   '  one of the second after is not';

my $journal = do { local $/; open my $f, '<', "$state/sessions-sessions.journal" or die $!; <$f> };
like $journal, qr/ sid:s1 \d+\n/, 'the journal has the session';
unlike $journal, qr/eyJ|\Q$SECRET\E/, 'and neither tokens nor secrets';

# --- revoke everything -----------------------------------------------------

$r = admin_post('/api/admin/sessions/revoke-all');
is $r->{status}, 200, 'revoke-all';
like $r->{content}, qr/"revoked":"all","issuedBefore":"\d{4}-/, 'says what it did';
is status_of($c), '401 REVOKED', 'every token issued before is refused';
my $fresh = token_after(revoked_at($r), sub => 'u9', sid => 's99');
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
$r = $http->get($srv->url('/api/auth/logout'),
                { headers => { Authorization => 'Bearer '
                                   . token(sub => 'u4', sid => 's11') } });
is $r->{status}, 405, 'logout is POST only';
is $r->{headers}{allow}, 'POST', '... Allow: POST';
like $r->{content}, qr/"code":"METHOD_NOT_ALLOWED"/, '... in the envelope';

# --- revocation to the millisecond ----------------------------------------
# The edge's tokens carry iat_ms.  A revocation refuses the tokens issued
# up to its millisecond, and not one issued after the call returned, even
# in the same second.  Each round: a refresh, the revocation, a refresh;
# the rounds repeat until all three fall in one second (polled).

my $at_all;
for my $kind (qw(all user)) {
    my ($before, $after, $at);
    for my $try (1 .. 20) {
        my $n = "ms-$kind-$try";
        my $t1 = eval { $json->decode(refresh(token_now(sub => $n, sid => "$n-a",
                        type => 'refresh', ttl => '7d'))->{content}) };
        my $rv = admin_post($kind eq 'all' ? '/api/admin/sessions/revoke-all'
                                           : "/api/admin/users/$n/revoke");
        $at = revoked_at($rv);
        my $t2 = eval { $json->decode(refresh(token_now(sub => $n, sid => "$n-b",
                        type => 'refresh', ttl => '7d'))->{content}) };
        next unless $at && $t1 && $t1->{accessToken} && $t2 && $t2->{accessToken};
        my ($i1, $i2) = map { claims_of($_->{accessToken})->{iat_ms} // 0 } $t1, $t2;
        next unless int($i1 / 1000) == int($at / 1000)
                    && int($i2 / 1000) == int($at / 1000);
        ok $i1 <= $at && $at < $i2, "revoke $kind: iat_ms $i1 <= $at < $i2";
        ($before, $after) = ($t1, $t2);
        last;
    }
    ok $before, "revoke $kind: a refresh before it and one after it, in its second";
    $at_all = $at if $kind eq 'all';
    is status_of($before->{accessToken}), '401 REVOKED',
       "revoke $kind: a token refreshed earlier in the same second is refused";
    is refresh($before->{refreshToken})->{status}, 401, '  its refresh token too';
    is status_of($after->{accessToken}), '200',
       "revoke $kind: a token refreshed after the call returned is accepted";
    is refresh($after->{refreshToken})->{status}, 200, '  its refresh token refreshes';
}

# a token of the app without iat_ms: issued at some point of its iat
# second, which may be before the revocation: refused (fail closed)
is status_of(token(sub => 'whole', sid => 'whole-1', iat => int($at_all / 1000))),
   '401 REVOKED', 'a whole-second token of the revocation\'s second is refused';
is status_of(token(sub => 'whole', sid => 'whole-2', iat => int($at_all / 1000) + 1)),
   '200', 'one of the next second is not';

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
