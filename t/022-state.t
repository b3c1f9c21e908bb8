# vim:set ft= ts=4 sw=4 et fdm=marker:
#
# The state layer (docs/reliability.md, "State files"), with a real master
# and two workers: a revocation, a lockout and a live flag kept across a
# stop/start in one line format (v2, typed, CRC-checked) beside the lines
# of the previous build; the files of the previous build load; a broken or
# cut line is skipped and logged once; a compaction keeps the state; a
# file at its size cap is compacted, and one that stays full takes no
# more, logged once a minute.

use strict;
use warnings;
use lib 't/lib';
use Test::More;
use JSON::PP;
use POSIX ();
use HTTP::Tiny;
use Compress::Zlib qw(crc32);
use Linguamate::Server;
use Linguamate::Token;

my $json = JSON::PP->new->canonical;
my $admin = 'admin-token-admin-token-admin-token-0';
my $srv = Linguamate::Server->new(workers => 2,
                                  main => 'error_log logs/debug.log debug;');
my $state = $srv->dir . '/state';
mkdir $state;
chmod 0777, $state;

sub conf {
    $srv->configure(<<"_HTTP_", <<'_SERVER_');
    linguamate_jwt_secret $SECRET;
    linguamate_jwt_expires_in 15m;
    linguamate_jwt_refresh_expires_in 7d;
    linguamate_state_dir $state;
    linguamate_session_zone sessions size=1m;
    linguamate_lockout_zone auth_lockout size=1m;
    linguamate_rate_limit_max_login_attempts 2;
    linguamate_admin_token $admin;
    linguamate_log_file logs/events.log;
_HTTP_
        location = /api/auth/session {
            linguamate_auth on;
            linguamate_endpoint auth_session;
        }
        location = /api/auth/refresh {
            linguamate_lockout auth_lockout;
            linguamate_endpoint auth_refresh;
        }
        location /api/admin/ { linguamate_endpoint admin; }
_SERVER_
}

conf();
$srv->start;

my $http = HTTP::Tiny->new(timeout => 10);
my $sessions = "$state/sessions-sessions.journal";
my $lockouts = "$state/lockouts-auth_lockout.journal";
my $flags = "$state/flags.state";

sub admin {
    my ($method, $path, $body) = @_;
    return $http->request($method, $srv->url("/api/admin$path"), {
        headers => { Authorization => "Bearer $admin",
                     'Content-Type' => 'application/json' },
        defined $body ? (content => $body) : () });
}

# every check goes to both workers: fresh connections, several times
sub status_of { session_status($srv, $_[0]) }

sub fail_refresh {
    my ($email) = @_;
    $http->post($srv->url('/api/auth/refresh'), {
        headers => { 'Content-Type' => 'application/json' },
        content => $json->encode({ email => $email, refreshToken => 'x' }) })
        for 1 .. 4;
}

sub locked {
    my ($email) = @_;
    my $r = admin('GET', "/lockouts/$email");
    return eval { $json->decode($r->{content})->{locked} } ? 1 : 0;
}

sub flags { eval { $json->decode(admin('GET', '/state')->{content})->{flags} } // {} }

sub slurp { open my $f, '<', $_[0] or return ''; local $/; <$f> }

sub spew {
    my ($file, $text, $mode) = @_;
    open my $f, $mode // '>', $file or die "$file: $!";
    print $f $text;
    close $f;
}

# a v2 line whose CRC is right
sub v2 {
    my $line = join ' ', 'v2', @_;
    return sprintf "%s %08x\n", $line, crc32($line);
}

# the v2 lines of a file: [type, key, n0, n1, n2, aux] each; undef if any
# v2 line has a wrong CRC
sub v2_lines {
    my @out;
    for (split /\n/, slurp($_[0])) {
        next unless /^v2 /;
        my @f = split / /;
        return undef unless @f == 8;
        my $crc = pop @f;
        return undef unless $crc eq sprintf '%08x', crc32(join ' ', @f);
        shift @f;
        push @out, \@f;
    }
    return \@out;
}

sub errors_like {
    my ($re) = @_;
    return scalar(() = $srv->slurp('logs/error.log') =~ /$re/g);
}

my $old = time - 5;

# --- 1. a revocation, a lock and a live flag survive a stop/start --------------------

is status_of(token(sub => 'u1', sid => 's1', iat => $old)), '200', 'u1 works at first';
is admin('POST', '/users/u1/revoke')->{status}, 200, 'revoke user u1';
is admin('POST', '/sessions/s9/revoke')->{status}, 200, 'revoke session s9';
fail_refresh('gina@example.com');
ok locked('gina@example.com'), 'gina is locked';
is admin('PATCH', '/flags', '{"maintenance":false,"features":{"chat":false}}')->{status},
   200, 'a live flag change';

my $v2 = v2_lines($sessions);
ok $v2 && (grep { $_->[0] eq 'session' && $_->[1] eq 'sub:u1' && $_->[3] > 0 } @$v2),
   'the sessions journal has a v2 "session" record of u1 with its moment in ms';
ok $v2 && (grep { $_->[1] eq 'sid:s9' && $_->[4] eq '1' } @$v2), '... and of s9, revoked';
like slurp($sessions), qr/^\d+ \d+ 0 - sub:u1 \d{13}$/m,
     '... each followed by the line the previous build reads';
$v2 = v2_lines($lockouts);
ok $v2 && (grep { $_->[0] eq 'lock' && $_->[1] eq 'email:gina@example.com'
                  && $_->[2] =~ /^\d{13}$/ } @$v2),
   'the lockouts journal has a v2 "lock" record';
like slurp($lockouts), qr/^L \d{13} \d+ email%3Agina%40example\.com$/m, '... and its shadow';
$v2 = v2_lines($flags);
is_deeply [ map { "$_->[0] $_->[1] $_->[2] $_->[3]" } @{ $v2 // [] } ],
          [ 'flag maintenance 0 0', 'flag features.chat 0 1' ],
          'flags.state holds a v2 "flag" record per live change';
like slurp($flags), qr/^features\.chat 0 1 \d+$/m, '... and its shadow';

$srv->stop;
$srv->start;
is status_of(token(sub => 'u1', sid => 's2', iat => $old)), '401 REVOKED',
   'after stop/start: the revocation holds';
is status_of(token(sub => 'u3', sid => 's9', iat => $old)), '401 REVOKED',
   '... the session revocation too';
ok locked('gina@example.com'), '... the lock holds';
is flags()->{features}{chat}, JSON::PP::false, '... the live flag holds';
is errors_like(qr/locks restored from/), 1, 'the lock restore is logged (not at the first start)';
is errors_like(qr/bad value in/), 0, 'no line was found bad';

# --- 2. a compaction at start keeps the state, once ---------------------------------

my @recs = @{ v2_lines($sessions) // [] };
my %keys;
$keys{ $_->[1] }++ for @recs;
is_deeply \%keys, { 'sub:u1' => 1, 'sid:s9' => 1 },
          'the compacted journal has one record per entry in force';
is scalar(() = slurp($sessions) =~ /\n/g), 4, '... and its shadow each, nothing else';

# --- 3. the files of the previous build load ----------------------------------------

$srv->stop;
my $now = time;
my $until = $now + 86400;
my $ms = ($now - 100) * 1000 + 123;
spew($sessions, join '',
     "$until " . ($now - 100) . " 0 - sub:old5\n",                  # 5 fields
     "$until " . int($ms / 1000 + 1) . " 0 - sub:old6 $ms\n",       # 6 fields
     "$until 0 1 - sid:olds\n");
spew($lockouts, 'L ' . (($now + 600) * 1000) . " $now email%3Aold%40example.com\n"
              . "L " . (($now + 600) * 1000) . " $now email%3Agone%40example.com\n"
              . "U 0 0 email%3Agone%40example.com\n");
spew($flags, "strictMode 1 0 $now\n");
$srv->start;
is status_of(token(sub => 'old5', iat => $now - 101)), '401 REVOKED',
   'an old 5-field session line loads';
is status_of(token(sub => 'old5', iat => $now - 99)), '200', '... to the end of its second only';
is status_of(token(sub => 'old6', iat => $now - 101)), '401 REVOKED', 'a 6-field line loads';
is status_of(token(sub => 'x', sid => 'olds', iat => $now - 1)), '401 REVOKED',
   'a revoked session line loads';
ok locked('old@example.com'), 'an old lockout line loads';
ok !locked('gone@example.com'), '... and an unlock line after it';
is flags()->{strictMode}, JSON::PP::true, 'an old flags.state line loads';
is errors_like(qr/bad value in/), 0, 'none of them is bad';
like slurp($sessions), qr/^v2 session sub:old6 \d+ $ms 0 - [0-9a-f]{8}$/m,
     'the start rewrote them as v2 lines';

# --- 4. broken and cut lines are skipped, counted, logged once ----------------------

$srv->stop;
my $good = v2('session', 'sub:good', $now + 86400, $now * 1000, 0, '-');
(my $badcrc = v2('session', 'sub:crc', $now + 86400, $now * 1000, 0, '-'))
    =~ s/ ([0-9a-f]{8})$/ 00000000/;
spew($sessions, join('',
     "garbage\n",
     "\n",
     v2('session', 'sub:neg', $now + 86400, '-5', 0, '-'),
     v2('lock', 'email:wrongfile', ($now + 600) * 1000, $now, 0, '-'),
     v2('session', 'sub%zz', $now + 86400, 1, 0, '-'),
     v2('session', 'sub:big', $now + 86400, '99999999999999999999', 0, '-'),
     v2('session', 'sub:r2', $now + 86400, 1, 2, '-'),
     $badcrc,
     "$now 1 0 - \x01\n",
     $good,
     "v2 session sub:cut $until 1"), '>>');
$srv->start;
is status_of(token(sub => 'good', iat => $now - 1)), '401 REVOKED',
   'the good line among them loads';
is status_of(token(sub => 'crc', iat => $now - 1)), '200', 'a line with a wrong CRC does not';
is status_of(token(sub => 'cut', iat => $now - 1)), '200', 'nor a line cut short';
is status_of(token(sub => 'old6', iat => $now - 101)), '401 REVOKED',
   'what was kept before them still holds';
is errors_like(qr/a bad value in "[^"]*sessions-sessions\.journal" or a broken line: 10 lines skipped, the first at line 7\b/),
   1, 'one line in the error log counts the 10 bad lines and names the first';
is errors_like(qr/bad value in "[^"]*sessions/), 1, '... and no other line about them';
unlike $srv->slurp('logs/error.log'), qr/\[(alert|emerg|crit)\]|exited on signal/,
       'no process crashed';
unlike slurp($sessions), qr/garbage|sub:crc|sub:cut|wrongfile/, 'the compaction dropped them';

# --- 5. the size cap: a full journal is compacted, and the state kept -------------

truncate $sessions, 48 * 1024 * 1024 or die $!;    # sparse: the cap, reached
is admin('POST', '/users/u5/revoke')->{status}, 200, 'a revocation with the journal at its cap';
ok -s $sessions < 64 * 1024, 'the journal was compacted to the live state';
is status_of(token(sub => 'u5', iat => $old)), '401 REVOKED', 'the new revocation holds';
$v2 = v2_lines($sessions);
ok $v2 && (grep { $_->[1] eq 'sub:u5' } @$v2), '... and is in the compacted journal';
ok $v2 && (grep { $_->[1] eq 'sub:good' } @$v2), '... beside the older ones';

is_deeply [glob "$state/*.tmp*"], [], 'no compaction left a temporary file';

# one that stays full (its compaction cannot write its own PATH.tmp.PID):
# refused, logged once a minute
my @tmps = map { "$sessions.tmp.$_" } $srv->worker_pids;
ok @tmps == 2, 'two workers';
mkdir $_ for @tmps;
truncate $sessions, 48 * 1024 * 1024 or die $!;
for my $u (1 .. 6) {
    is admin('POST', "/users/full$u/revoke")->{status}, 200,
       "revocation $u with a full journal still applies";
}
is status_of(token(sub => 'full6', iat => $old)), '401 REVOKED', '... and holds until a restart';
my $full = errors_like(qr/\[error\][^\n]*sessions-sessions\.journal/);
ok $full >= 1 && $full <= 2,
   "the failure is logged at most once per worker and minute ($full lines for 6)";
is -s $sessions, 48 * 1024 * 1024, 'the journal took no more';
rmdir $_ for @tmps;
unlink $sessions;

# --- 6. a journal removed while running: the next change starts a new one ----------

is admin('POST', '/users/u6/revoke')->{status}, 200, 'after the journal is gone, a revocation';
ok v2_lines($sessions) && (grep { $_->[1] eq 'sub:u6' } @{ v2_lines($sessions) }),
   'starts a new journal';

unlike $srv->slurp('logs/error.log'), qr/\[(alert|emerg|crit)\]|exited on signal/,
       'no worker crashed';

# --- 7. the debug log traces the state writes, loads and compactions --------------

SKIP: {
    my $debug = $srv->slurp('logs/debug.log');
    skip 'nginx without --with-debug', 3 unless $debug =~ /\[debug\]/;
    like $debug, qr/\[debug\].*linguamate state: write session "sub:u6"/, 'a write';
    like $debug, qr/\[debug\].*linguamate state: loaded "[^"]*lockouts-auth_lockout\.journal": \d+ lines/,
         'a load, with its counts';
    like $debug, qr/\[debug\].*linguamate state: compacted "[^"]*flags\.state": 2 records/,
         'a compaction';
}

$srv->stop;

# --- 7b. compactions at once: the file holds the last change of each ----------------
#
# Four clients PATCH one flag each, on fresh connections (both workers),
# so that compactions of flags.state wait on each other's lock and rename
# over each other.  A compaction that took the lock on a file renamed away
# meanwhile, or two that wrote one PATH.tmp, would leave a file without
# some last change (or a broken line): the restart below would show it.

{
    $srv->start;
    my %want = (maintenance => [1, 0], strictMode => [1, 0],
                'features.chat' => [0, 1], 'features.analytics' => [0, 1]);
    my @kids;
    for my $name (sort keys %want) {
        my $pid = fork // die "fork: $!";
        if ($pid == 0) {
            my $h = HTTP::Tiny->new(timeout => 10, keep_alive => 0);
            my $bad = 0;
            for my $i (0 .. 59) {
                my $v = $want{$name}[$i % 2] ? 'true' : 'false';
                my $body = $name =~ /^features\.(\w+)$/
                         ? qq({"features":{"$1":$v}}) : qq({"$name":$v});
                my $r = $h->request('PATCH', $srv->url('/api/admin/flags'), {
                    headers => { Authorization => "Bearer $admin",
                                 'Content-Type' => 'application/json' },
                    content => $body });
                next if $r->{status} == 200;
                diag "$body: $r->{status} $r->{content}" unless $bad++;
            }
            POSIX::_exit($bad ? 1 : 0);
        }
        push @kids, $pid;
    }
    my $failed = 0;
    for (@kids) { waitpid $_, 0; $failed++ if $? }
    is $failed, 0, 'concurrent PATCHes: every one answered 200';

    # the last value each client set: i = 59, odd
    my $get = sub {
        my ($f, $name) = @_;
        my $v = $name =~ /^features\.(\w+)$/ ? $f->{features}{$1} : $f->{$name};
        return defined $v ? ($v ? 1 : 0) : 'missing';
    };
    my $live = flags();
    is_deeply { map { $_ => $get->($live, $_) } keys %want },
              { map { $_ => $want{$_}[1] } keys %want },
              '... the live flags are the last ones set';
    my $v2 = v2_lines($flags);
    ok $v2, '... flags.state has no broken line';
    is_deeply [glob "$flags.tmp*"], [], '... nor a temporary file left';
    unlike $srv->slurp('logs/error.log'), qr/linguamate: cannot (?:lock|write|rename) "[^"]*flags\.state/,
           '... nor a write error';

    $srv->stop;
    $srv->start;
    $live = flags();
    is_deeply { map { $_ => $get->($live, $_) } keys %want },
              { map { $_ => $want{$_}[1] } keys %want },
              '... and after a restart each holds its last value: none was lost';

    admin('PATCH', '/flags', '{"maintenance":null,"strictMode":null,'
                           . '"features":{"chat":null,"analytics":null}}');
    $srv->stop;
}

# --- 8. an upgrade from the previous build, and a rollback to it -------------------
#
# LINGUAMATE_PREVIOUS_MODULE: the module file of the build before the state
# layer (for example main's, built with scripts/build.sh in a copy of it)

SKIP: {
    my $prev = $ENV{LINGUAMATE_PREVIOUS_MODULE} // '';
    skip 'LINGUAMATE_PREVIOUS_MODULE is not set', 15 unless -f $prev;
    my $this = $ENV{TEST_NGINX_LOAD_MODULES} // '';
    my $with = sub { $ENV{TEST_NGINX_LOAD_MODULES} = $_[0]; conf(); $srv->start };

    unlink $sessions, $lockouts, $flags, $srv->dir . '/logs/error.log';
    $with->($prev);
    admin('POST', '/users/before/revoke');
    admin('POST', '/sessions/sbefore/revoke');
    fail_refresh('before@example.com');
    admin('PATCH', '/flags', '{"features":{"chat":false}}');
    $srv->stop;

    $with->($this);
    is status_of(token(sub => 'before', iat => $old)), '401 REVOKED',
       'upgrade: a revocation of the previous build holds';
    is status_of(token(sub => 'x', sid => 'sbefore', iat => $old)), '401 REVOKED',
       '... a session revocation too';
    ok locked('before@example.com'), '... its lock holds';
    is flags()->{features}{chat}, JSON::PP::false, '... its live flag holds';
    is errors_like(qr/bad value in/), 0, '... and none of its lines is bad';
    like slurp($sessions), qr/^v2 session sub:before /m, 'the files are now v2';
    admin('POST', '/users/after/revoke');
    admin('DELETE', '/lockouts/127.0.0.1');     # the address was locked too
    fail_refresh('after@example.com');
    ok locked('after@example.com'), 'a lock made after the upgrade';
    admin('PATCH', '/flags', '{"features":{"analytics":false}}');
    my $revoked_ms = (grep { $_->[1] eq 'sub:after' } @{ v2_lines($sessions) })[0][3];
    $srv->stop;

    $with->($prev);
    is status_of(token(sub => 'before', iat => $old)), '401 REVOKED',
       'rollback: the revocations hold';
    is status_of(token(sub => 'after', iat => $old)), '401 REVOKED',
       '... the one made after the upgrade too';
    is status_of(token(sub => 'after', iat => int($revoked_ms / 1000))), '401 REVOKED',
       '... to the end of its second (fail closed)';
    ok locked('before@example.com') && locked('after@example.com'), '... the locks hold';
    my $f = flags();
    ok $f->{features}{chat} eq JSON::PP::false && $f->{features}{analytics} eq JSON::PP::false,
       '... the live flags hold';
    unlike $srv->slurp('logs/error.log'), qr/\[(alert|emerg|crit)\]|exited on signal/,
           '... and the previous build read the files without a crash';
    $srv->stop;

    # and forward again: what the previous build compacted loads
    $with->($this);
    is status_of(token(sub => 'after', iat => $old)), '401 REVOKED',
       'upgrade again: the revocation holds';
    ok locked('after@example.com'), '... and the lock';
    $srv->stop;
    $ENV{TEST_NGINX_LOAD_MODULES} = $this;
}

done_testing;
