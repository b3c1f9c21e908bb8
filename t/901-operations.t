# vim:set ft= ts=4 sw=4 et fdm=marker:
#
# The operator's day on the default deployment (scripts/linguamate), end
# to end: a reload applies the environment and env file it is given
# (never the start's), secrets at rest are 0600 in 0700 folders, the
# secret rotation, log rotation, several hosts at once, and the tuning
# settings (listen address, TLS with HTTP/2, keepalive, the override
# folder).  Plain Test::More, like t/900-deployment.t.

use strict;
use warnings;
use Test::More;
use JSON::PP;
use HTTP::Tiny;
use POSIX qw(strftime);
use Digest::SHA qw(hmac_sha256_hex);
use File::Temp qw(tempdir);
use lib 't/lib';
use Linguamate::Deployment qw(free_port poll);
use Linguamate::Upstream;

my $tmp = tempdir('linguamate-ops-XXXXXX', TMPDIR => 1, CLEANUP => 1);
chmod 0755, $tmp;
my $json = JSON::PP->new;
my $repo = Linguamate::Deployment->repo;

sub sign {
    my ($secret, $sub) = @_;
    open my $fh, '-|', "$repo/scripts/jwt", 'sign', '--sub', $sub,
        '--secret', $secret or die $!;
    my $t = <$fh>;
    close $fh;
    chomp $t;
    return $t;
}

sub session_ok {
    my ($d, $token) = @_;
    return ($d->get('/api/auth/session',
                    Authorization => "Bearer $token")->{status} // 0) == 200;
}

# POST /api/ingest/logs, one record signed with $key: the status
sub ingest_status {
    my ($d, $key) = @_;
    my $now = strftime('%Y-%m-%dT%H:%M:%S.000Z', gmtime);
    my $logs = qq([{"ts":"$now","lvl":"INFO","cat":"t","evt":"t901","msg":"m"}]);
    my $sig = hmac_sha256_hex(qq({"items":$logs,"ts":"$now"}), $key);
    my $r = $d->{http}->post($d->url . '/api/ingest/logs', {
        content => qq({"logs":$logs,"sig":{"hmac":"$sig",)
                   . qq("algo":"HMAC-SHA256","ts":"$now"}}),
        headers => { 'Content-Type' => 'application/json' } });
    return $r->{status};
}

sub mode { sprintf '%04o', (stat $_[0])[2] & 07777 }

sub env_value {
    my ($d, $name) = @_;
    my $v = `'$repo/scripts/dotenv-get' '@{[$d->env_file]}' $name`;
    chomp $v;
    return $v;
}

sub reloaded_changed {
    my ($d, $n) = @_;
    my @l = grep { /"evt":"config_reloaded"/ } $d->log_lines;
    return @l >= $n ? $json->decode($l[$n - 1])->{changed} : undef;
}

my $admin_env = 'env-admin-token-env-admin-token-000001';
my $admin_file = 'file-admin-token-file-admin-token-00001';
my $secret_a = 'secret-A/secret+A=secret-A/secret-A0001';
my $secret_b = 'secret-B/secret+B=secret-B/secret-B0001';
my $secret_c = 'secret-C/secret+C=secret-C/secret-C0001';
my $secret_x = 'secret-X/secret+X=secret-X/secret-X0001';

# a stand-in for the AI toolkit: answers with the key it was sent
my $toolkit = Linguamate::Upstream->new(sub {
    my ($method, $uri, $h) = @_;
    return (200, $json->encode({ auth => $h->{authorization} // '' }));
});
sub toolkit_key {
    my ($d) = @_;
    my $r = $d->{http}->post($d->url . '/api/toolkit/v1/text/llm',
        { content => '{}', headers => { 'Content-Type' => 'application/json' } });
    return eval { $json->decode($r->{content})->{auth} } // "HTTP $r->{status}";
}

# --- secrets at rest (issue 13.5) -------------------------------------------

my $p = Linguamate::Deployment->new(dir => "$tmp/p");
my ($rc, $out) = $p->ctl({ PORT => $p->port, STATE_DIR => "$tmp/p/state",
                           WORKER_PROCESSES => 1 }, 'start');
is $rc, 0, 'start without an env file' or diag $out;
like $out, qr/created \S+app\.env from \.env\.example/, '... creates one';
is mode($p->env_file), '0600', 'the env file it creates is 0600';
is mode($p->run_dir . '/conf/environment.conf'), '0600',
   'the settings of the environment are in a 0600 file';
is mode($p->run_dir . '/conf'), '0700', '... in a 0700 folder';
ok !-e $p->run_dir . '/process.env', 'no process.env any more';
is mode("$tmp/p/state"), '0700', 'STATE_DIR is 0700';
my @state = glob "$tmp/p/state/*";
ok @state > 0, 'STATE_DIR holds the journals';
is join(',', map { mode($_) } @state), join(',', map { '0600' } @state),
   '... each 0600';
($rc, $out) = $p->ctl({}, 'stop');
chmod 0644, $p->env_file;
($rc, $out) = $p->ctl({ STATE_DIR => "$tmp/p/state" }, 'start');
is $rc, 0, 'start with an env file readable by others' or diag $out;
like $out, qr/warning: \S+app\.env \(mode 644\) is readable by other users/,
     '... warns';
$p->ctl({}, 'stop');

# "set" on a stopped deployment: only .env, whatever its quoting
{
    open my $e, '>>', $p->env_file or die;
    print $e qq(LOG_SIGNING_KEY="two\nlines"\nGIT_COMMIT_SHA=kept\n);
    close $e;
}
($rc, $out) = $p->ctl({}, 'set', 'LOG_SIGNING_KEY=one/line', 'GIT_COMMIT_SHA=');
is $rc, 0, 'set on a stopped deployment' or diag $out;
is env_value($p, 'LOG_SIGNING_KEY'), 'one/line',
   '... replaces a quoted value of two lines whole';
is env_value($p, 'GIT_COMMIT_SHA'), '', '... empties one';
is mode($p->env_file), '0644', '... and keeps the file\'s mode';

# --- a reload applies what it is given (issue 13.4) --------------------------

my $tk = $toolkit->port;
# the env file of deployment "a", with this JWT_SECRET
sub a_env {
    my ($secret) = @_;
    return qq(JWT_SECRET="$secret"\nADMIN_TOKEN=$admin_file\n)
         . "TOOLKIT_API_KEY=file-toolkit-key\n"
         . "EXPO_PUBLIC_TOOLKIT_URL=http://127.0.0.1:$tk\n"
         . "LOG_SIGNING_KEY=file-log-signing-key\n"
         . "RATE_LIMIT_MAX_REQUESTS=10000\n";
}
my $a = Linguamate::Deployment->new(dir => "$tmp/a", env => a_env($secret_x));
($rc, $out) = $a->ctl({ JWT_SECRET => $secret_a, ADMIN_TOKEN => $admin_env,
                        TOOLKIT_API_KEY => 'env-toolkit-key' }, 'start');
is $rc, 0, 'JWT_SECRET=A ADMIN_TOKEN=... scripts/linguamate start' or diag $out;
ok session_ok($a, sign($secret_a, 'u')), 'a token signed with A is accepted';
ok !session_ok($a, sign($secret_x, 'u')), 'the env file\'s secret is not';
is toolkit_key($a), 'Bearer env-toolkit-key', 'the environment\'s toolkit key';
is ingest_status($a, 'file-log-signing-key'), 200,
   'log batches signed with the env file\'s LOG_SIGNING_KEY are taken';
is $a->get('/api/admin/state', Authorization => "Bearer $admin_env")->{status},
   200, 'the environment\'s admin token';

# B in the env file and C in the environment of the reload: C wins
$a->write_env(a_env($secret_b));
($rc, $out) = $a->ctl({ JWT_SECRET => $secret_c,
                        LOG_SIGNING_KEY => 'env-log-signing-key' }, 'reload');
is $rc, 0, 'JWT_SECRET=C reload, with B in the env file' or diag $out;
ok poll(sub { session_ok($a, sign($secret_c, 'u')) }, 10),
   'the environment of the reload wins: C is accepted';
ok !session_ok($a, sign($secret_a, 'u')), 'A (the start\'s) is refused';
ok !session_ok($a, sign($secret_b, 'u')), 'B (the env file\'s) is refused';
is toolkit_key($a), 'Bearer file-toolkit-key',
   'the start\'s toolkit key is not held back: the env file\'s applies';
is ingest_status($a, 'env-log-signing-key'), 200,
   'the reload\'s LOG_SIGNING_KEY applies';
is ingest_status($a, 'file-log-signing-key'), 401,
   '... and the env file\'s no longer verifies';
is $a->get('/api/admin/state', Authorization => "Bearer $admin_env")->{status},
   401, 'the start\'s admin token is refused';
is $a->get('/api/admin/state', Authorization => "Bearer $admin_file")->{status},
   200, 'the env file\'s admin token is accepted';
my $changed = poll(sub { reloaded_changed($a, 1) }, 5) || [];
is join(',', sort @$changed),
   'ADMIN_TOKEN,JWT_SECRET,LOG_SIGNING_KEY,TOOLKIT_API_KEY',
   'config_reloaded names what changed';

($rc, $out) = $a->ctl({}, 'reload');
is $rc, 0, 'a reload with nothing in the environment' or diag $out;
ok poll(sub { session_ok($a, sign($secret_b, 'u')) }, 10),
   'the env file\'s B applies';
ok !session_ok($a, sign($secret_c, 'u')), 'C (the last reload\'s) is refused';
$changed = poll(sub { reloaded_changed($a, 2) }, 5) || [];
is join(',', sort @$changed), 'JWT_SECRET,LOG_SIGNING_KEY',
   '... and config_reloaded says so';

($rc, $out) = $a->ctl({ STATE_DIR => "$tmp/elsewhere" }, 'reload');
isnt $rc, 0, 'a reload that moves STATE_DIR fails';
like $out, qr/STATE_DIR cannot change on reload/, '... and names it';
ok session_ok($a, sign($secret_b, 'u')), 'the old configuration serves';
($rc, $out) = $a->ctl({}, 'reload');
is $rc, 0, 'and the next reload works' or diag $out;

# --- secret rotation (issue 16.1) --------------------------------------------

my $tok_b = sign($secret_b, 'before-rotation');
for my $round (1 .. 3) {
    my $old = env_value($a, 'JWT_SECRET');
    my $tok_old = sign($old, "round-$round");
    ($rc, $out) = $a->ctl({}, 'rotate-secret');
    is $rc, 0, "round $round: scripts/linguamate rotate-secret" or diag $out;
    like $out, qr/previous one verifies until \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ/,
         '... says until when the old secret verifies';
    my $new = env_value($a, 'JWT_SECRET');
    like $new, qr{^[A-Za-z0-9+/]{64}$}, '... a new 48-byte base64 secret';
    is env_value($a, 'JWT_SECRET_PREVIOUS'), $old, '... the old one is kept';
    ok poll(sub { session_ok($a, sign($new, 'u')) }, 10), '... the new one signs';
    ok session_ok($a, $tok_old), '... a token of the old one still verifies';
    is mode($a->env_file), '0600', '... the env file stays 0600';

    ($rc, $out) = $a->ctl({}, 'rotate-secret', '--finish');
    isnt $rc, 0, '... --finish before the tokens expire is refused';
    like $out, qr/valid until \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ/, '... says when';
    ok session_ok($a, $tok_old), '... and changes nothing';
    ($rc, $out) = $a->ctl({}, 'rotate-secret', '--finish', '--force');
    is $rc, 0, '... --finish --force drops it' or diag $out;
    is env_value($a, 'JWT_SECRET_PREVIOUS'), '', '... from the env file';
    ok poll(sub { !session_ok($a, $tok_old) }, 10),
       '... and the old token is refused';
}
ok !session_ok($a, $tok_b), 'the first secret is long gone';

my $leaked = env_value($a, 'JWT_SECRET');
my $tok_leaked = sign($leaked, 'leaked');
ok session_ok($a, $tok_leaked), 'a token of the current secret';
($rc, $out) = $a->ctl({}, 'rotate-secret', '--now');
is $rc, 0, 'rotate-secret --now (the secret leaked)' or diag $out;
isnt env_value($a, 'JWT_SECRET'), $leaked, '... a new secret';
is env_value($a, 'JWT_SECRET_PREVIOUS'), '', '... and no previous one';
ok poll(sub { !session_ok($a, $tok_leaked) }, 10),
   '... the leaked secret\'s tokens are refused at once';

($rc, $out) = $a->ctl({ JWT_SECRET => $secret_c }, 'rotate-secret');
isnt $rc, 0, 'rotate-secret with JWT_SECRET in the environment is refused';
like $out, qr/JWT_SECRET is set in the environment/, '... says why';

# --finish waits for the access-token lifetime, here 1 s without leeway
$a->write_env(<<"EOF");
JWT_SECRET="$secret_b"
ADMIN_TOKEN=$admin_file
RATE_LIMIT_MAX_REQUESTS=10000
JWT_EXPIRES_IN=1s
JWT_LEEWAY_SECONDS=0
EOF
($rc, $out) = $a->ctl({}, 'reload');
($rc, $out) = $a->ctl({}, 'rotate-secret');
is $rc, 0, 'rotate-secret with JWT_EXPIRES_IN=1s' or diag $out;
ok poll(sub { ($a->ctl({}, 'rotate-secret', '--finish'))[0] == 0 }, 10),
   '--finish succeeds once the lifetime has passed';
is env_value($a, 'JWT_SECRET_PREVIOUS'), '', '... the previous secret is gone';

# any value into .env, with no sed to trip on '/', '&' or '|'
($rc, $out) = $a->ctl({}, 'set', 'GIT_COMMIT_SHA=a/b+c=d&e|f');
is $rc, 0, 'scripts/linguamate set NAME=VALUE' or diag $out;
is env_value($a, 'GIT_COMMIT_SHA'), 'a/b+c=d&e|f', '... writes .env';
ok poll(sub { ($a->get('/api/health')->{content} // '')
              =~ m{"version":"a/b\+c=d&e\|f"} }, 10),
   '... and reloads';
($rc, $out) = $a->ctl({}, 'set', 'NO_SUCH_SETTING=1');
isnt $rc, 0, 'set refuses a name that is not a setting';

# --- log rotation (issue 16.2) -----------------------------------------------

my $logs = $a->run_dir . '/logs';
ok -s "$logs/linguamate.log", 'under start, the log stream is in a file';
ok !(grep { /"evt":"http_request"/ } $a->log_lines('stdout.log')),
   '... not on standard output';
for my $how ('reopen', 'USR1') {
    rename "$logs/linguamate.log", "$logs/linguamate.log.$how" or die $!;
    if ($how eq 'reopen') {
        ($rc, $out) = $a->ctl({}, 'reopen');
        is $rc, 0, 'mv + scripts/linguamate reopen' or diag $out;
    } else {
        ok kill('USR1', $a->master), 'mv + kill -USR1 <master>';
    }
    ok poll(sub { -e "$logs/linguamate.log" }, 5), '... a new file';
    # each worker reopens when the master tells it, and its lines are
    # buffered (flush=1s): send a batch on new connections (any worker),
    # wait until its lines are written somewhere, then see where
    my $fresh = HTTP::Tiny->new(timeout => 5, keep_alive => 0);
    my $n = 0;
    my $batch = sub {
        my ($mark) = @_;
        my $re = qr/"correlationId":"\Q$mark\E-\d"/;
        $fresh->get($a->url . '/api/health',
                    { headers => { 'X-Correlation-Id' => "$mark-$_" } })
            for 1 .. 8;
        my ($new, $old) = (0, 0);
        poll(sub {
            $new = grep { /$re/ } $a->log_lines;
            $old = grep { /$re/ } $a->log_lines("linguamate.log.$how");
            $new + $old == 8;
        }, 5);
        return ($new, $old);
    };
    ok poll(sub { ($batch->("rotating-$how-" . $n++))[0] == 8 }, 20),
       '... every worker takes the new lines';
    is_deeply [$batch->("rotated-$how")], [8, 0],
       '... and the moved file gets none of them';
}

# --- several hosts (issue 16.10) ---------------------------------------------

my $b = Linguamate::Deployment->new(dir => "$tmp/b",
                                    env => "ADMIN_TOKEN=$admin_file\n");
($rc, $out) = $b->ctl({}, 'start');
is $rc, 0, 'a second deployment on another port' or diag $out;
my $hosts = '127.0.0.1:' . $a->port . ',127.0.0.1:' . $b->port;
($rc, $out) = $a->ctl({}, '--hosts', $hosts, 'flags', '{"maintenance":true}');
is $rc, 0, 'scripts/linguamate --hosts A,B flags \'{"maintenance":true}\''
    or diag $out;
is scalar(() = $out =~ /^== 127\.0\.0\.1:\d+: ok$/mg), 2, '... ok for each host';
is $_->get('/api/info')->{status}, 503, '... in maintenance on port ' . $_->port
    for $a, $b;
($rc, $out) = $a->ctl({}, '--hosts', $hosts, 'flags', '{"maintenance":null}');
is $rc, 0, '... and back' or diag $out;
$b->ctl({}, 'stop');
($rc, $out) = $a->ctl({}, '--hosts', $hosts, 'state');
isnt $rc, 0, 'a host that does not answer fails the command';
like $out, qr/^== 127\.0\.0\.1:@{[$a->port]}: ok$/m, '... the other says ok';
like $out, qr/^== 127\.0\.0\.1:@{[$b->port]}: FAILED$/m, '... that one FAILED';
($rc, $out) = $a->ctl({ ADMIN_TOKEN => 'wrong-token-wrong-token-wrong-token-00' },
                      '--hosts', '127.0.0.1:' . $a->port, 'state');
isnt $rc, 0, 'a refused call fails too';
like $out, qr/HTTP 401/, '... with its status';

# PORT can change on reload: nginx opens the new listener
my $other = free_port();
($rc, $out) = $a->ctl({ PORT => $other }, 'reload');
is $rc, 0, 'PORT=<another> reload' or diag $out;
ok poll(sub { (HTTP::Tiny->new(timeout => 2)
               ->get("http://127.0.0.1:$other/api/health/live")->{status}
               // 0) == 200 }, 10), '... serves on the new port';
($rc, $out) = $a->ctl({}, 'state');
is $rc, 0, '... where scripts/linguamate finds it' or diag $out;
($rc, $out) = $a->ctl({}, 'reload');
is $rc, 0, 'a reload without PORT in the environment' or diag $out;
ok poll(sub { ($a->get('/api/health/live')->{status} // 0) == 200 }, 10),
   '... serves on the env file\'s port again';
$a->ctl({}, 'stop');

# --- tuning: TLS, HTTP/2, listen address, keepalive, overrides (16.4) ---------

my $c_dir = "$tmp/c";
mkdir $c_dir;
system("openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost"
       . " -addext subjectAltName=DNS:localhost,IP:127.0.0.1"
       . " -keyout '$c_dir/key.pem' -out '$c_dir/cert.pem' 2>/dev/null") == 0
    or die 'openssl failed';
mkdir "$c_dir/local";
open my $fh, '>', "$c_dir/local/probe.http.conf" or die;
print $fh "map \$host \$local_probe { default \"from-the-http-level\"; }\n";
close $fh;
open $fh, '>', "$c_dir/local/probe.server.conf" or die;
print $fh "location = /local-probe { return 200 \"\$local_probe\\n\"; }\n";
close $fh;
# an app service that takes 3 s to answer
my $slow = Linguamate::Upstream->new(sub {
    select(undef, undef, undef, 3);
    return (200, '{"result":{"data":{"json":"late"}}}');
});
my $sp = $slow->port;
my $c = Linguamate::Deployment->new(dir => $c_dir, env => <<"EOF");
LISTEN_ADDRESS=127.0.0.1
TLS_CERTIFICATE=$c_dir/cert.pem
TLS_CERTIFICATE_KEY=$c_dir/key.pem
WORKER_CONNECTIONS=256
KEEPALIVE_TIMEOUT=10s
KEEPALIVE_REQUESTS=3
UPSTREAM_CONNECT_TIMEOUT=2s
UPSTREAM_READ_TIMEOUT=1s
APP_UPSTREAM_URL=http://127.0.0.1:$sp
NGINX_OVERRIDE_DIR=$c_dir/local
ADMIN_TOKEN=$admin_file
EOF
($rc, $out) = $c->ctl({}, 'start');
is $rc, 0, 'a TLS deployment starts' or diag $out;
my $https = 'https://127.0.0.1:' . $c->port;
my $v = `curl -ks --http2 -o /dev/null -w '%{http_code} %{http_version}' $https/api/health`;
is $v, '200 2', 'it answers over https, with HTTP/2';
$v = `curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:@{[$c->port]}/api/health`;
is $v, '400', 'plain http on the TLS port is refused';
$v = `curl -ks $https/local-probe`;
is $v, "from-the-http-level\n", 'the override folder\'s http and server lines apply';
my @u = map { "-o /dev/null $https/api/health/live" } 1 .. 7;
$v = `curl -ks --http1.1 -w '%{num_connects}\\n' @u`;
my $conns = 0;
$conns += $_ for split /\n/, $v;
is $conns, 3, 'KEEPALIVE_REQUESTS=3: 7 requests take 3 connections';
like `cat '@{[$c->run_dir]}/conf/nginx.conf'`, qr/worker_connections 256;/,
     'WORKER_CONNECTIONS is the events block\'s';
($rc, $out) = $c->ctl({}, 'state');
is $rc, 0, 'scripts/linguamate reaches it over TLS' or diag $out;
my $tls_host = 'https://localhost:' . $c->port;
($rc, $out) = $c->ctl({}, '--hosts', $tls_host, 'state');
isnt $rc, 0, '--hosts verifies a host\'s certificate: unknown CA, FAILED';
($rc, $out) = $c->ctl({ LINGUAMATE_CACERT => "$c_dir/cert.pem" },
                      '--hosts', $tls_host, 'state');
is $rc, 0, '... with LINGUAMATE_CACERT naming its CA, ok' or diag $out;
$v = `curl -ks -w ' %{http_code}' $https/api/trpc/slow.call`;
like $v, qr/"edgeCode":"UPSTREAM_TIMEOUT".*\s504$/s,
     'UPSTREAM_READ_TIMEOUT=1s: a 3 s app call is a 504';

($rc, $out) = $c->ctl({ KEEPALIVE_REQUESTS => 5 }, 'reload');
is $rc, 0, 'KEEPALIVE_REQUESTS=5 reload' or diag $out;
($rc, $out) = $c->ctl({}, 'rotate-secret');
is $rc, 0, 'rotate-secret' or diag $out;
like `cat '@{[$c->run_dir]}/conf/deployment-http.conf'`,
     qr/^keepalive_requests 5;$/m,
     '... keeps the running deployment settings, given in the environment';
($rc, $out) = $c->ctl({ KEEPALIVE_TIMEOUT => 'forever' }, 'reload');
isnt $rc, 0, 'a bad KEEPALIVE_TIMEOUT fails the reload';
like $out, qr/invalid value "forever" for KEEPALIVE_TIMEOUT/, '... naming it';
$v = `curl -ks -o /dev/null -w '%{http_code}' $https/api/health`;
is $v, '200', '... and the old configuration serves';
my $env_conf = do { local (@ARGV, $/) = ($c->run_dir . '/conf/environment.conf'); <> };
($rc, $out) = $c->ctl({ PORT => free_port(), ADMIN_TOKEN => 'x' x 40,
                        WORKER_CONNECTIONS => 'lots' }, 'reload');
isnt $rc, 0, 'a refused reload with another PORT and ADMIN_TOKEN';
($rc, $out) = $c->ctl({}, 'state');
is $rc, 0, '... leaves the files of the running configuration in place'
    or diag $out;
is do { local (@ARGV, $/) = ($c->run_dir . '/conf/environment.conf'); <> },
   $env_conf, '... its environment.conf too';
($rc, $out) = $c->ctl({ LISTEN_ADDRESS => '0.0.0.0; include /etc/passwd' },
                      'reload');
like $out, qr/invalid value .* for LISTEN_ADDRESS/,
     'a LISTEN_ADDRESS that is not an address is refused';
($rc, $out) = $c->ctl({ TLS_CERTIFICATE_KEY => "$c_dir/nope.pem" }, 'reload');
isnt $rc, 0, 'a missing key file fails nginx -t';
like $out, qr/nope\.pem/, '... naming the file';
$c->ctl({}, 'stop');
for my $bad (['WORKER_CONNECTIONS', 'lots'], ['KEEPALIVE_REQUESTS', '0'],
             ['UPSTREAM_READ_TIMEOUT', '30 s'], ['UPSTREAM_CONNECT_TIMEOUT', '0'],
             ['LISTEN_ADDRESS', 'a b'])
{
    ($rc, $out) = $c->ctl({ $bad->[0] => $bad->[1] }, 'start');
    isnt $rc, 0, "$bad->[0]=$bad->[1]: start fails";
    like $out, qr/invalid value "\Q$bad->[1]\E" for $bad->[0]/, '... naming it';
}
$c->write_env("TLS_CERTIFICATE=$c_dir/cert.pem\n");
($rc, $out) = $c->ctl({}, 'start');
like $out, qr/TLS_CERTIFICATE is set without TLS_CERTIFICATE_KEY/,
     'a certificate without its key is refused';

$toolkit->stop;
$slow->stop;
done_testing();
