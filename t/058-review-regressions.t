# vim:set ft= ts=4 sw=4 et fdm=marker:
#
# Regressions found by an independent review of the flags, tRPC, lockout
# journal and ingest code: each block failed (or crashed under ASan)
# before its fix.

use strict;
use warnings;
use lib 't/lib';
use Test::More;
use JSON::PP;
use HTTP::Tiny;
use POSIX qw(strftime);
use Linguamate::Server;
use Linguamate::Upstream;
use Linguamate::Token;

my $json = JSON::PP->new->canonical->utf8;
my $admin = 'admin-token-admin-token-admin-token-0';

# an app that logs in with password "good", and sets a cookie on /cookie
my $app = Linguamate::Upstream->new(sub {
    my ($method, $uri, $h, $body) = @_;
    return (200, '{}', { 'Set-Cookie' => 'sid=abc; Path=/' }) if $uri =~ m{^/cookie};
    return (($body =~ /"password"\s*:\s*"good"/) ? 200 : 401, '{}');
});
my $port = $app->port;

my $srv = Linguamate::Server->new(workers => 1);
my $state = $srv->dir . '/state';
mkdir $state;
chmod 0777, $state;

$srv->configure(<<"_HTTP_", <<"_SERVER_");
    linguamate_jwt_secret $SECRET;
    linguamate_log_file logs/events.log;
    linguamate_log_level trace;
    linguamate_rate_limit_max_login_attempts 2;
    linguamate_lockout_zone auth_lockout size=1m;
    linguamate_admin_token $admin;
    linguamate_state_dir $state;
    log_format ra '[\$sent_http_retry_after]';
_HTTP_
        client_body_buffer_size 16k;
        location = /api/ingest/logs {
            linguamate_auth optional;
            client_body_buffer_size 1m;
            linguamate_endpoint ingest_logs;
        }
        location = /api/auth/login {
            linguamate_lockout auth_lockout;
            proxy_pass http://127.0.0.1:$port/login;
        }
        location = /api/cookie {
            linguamate_cache on;
            proxy_pass http://127.0.0.1:$port/cookie;
        }
        location = /api/thing {
            access_log logs/ra.log ra;
            linguamate_endpoint root;
        }
        location /api/admin/ {
            linguamate_lockout off;
            linguamate_endpoint admin;
        }
_SERVER_
$srv->start;

my $http = HTTP::Tiny->new(timeout => 10);

# --- ingest: a SECURITY record, a long user id, no corr: the line fits ------

{
    my $sub = 'u' x 100;
    my $tok = token(sub => $sub, sid => 's-1');
    my $fixed = length(',"source":"client","cat":')
              + length('"security","security":true,"clientCat":')
              + length(',"lvl":"SECURITY","clientTs":')
              + length(',"userId":') + 2 + length($sub) + 4;
    my $need = 980 - $fixed;
    my $n = int(($need - 128) / 5);
    my $str = "\x01" x $n . 'c' x (128 - $n);
    my $now = strftime('%Y-%m-%dT%H:%M:%S.000Z', gmtime);
    my $body = $json->encode({ logs => [ { ts => substr($str, 64), lvl => 'SECURITY',
        cat => substr($str, 0, 64), evt => 'e', msg => 'm' } ],
        sig => { hmac => '', algo => 'HMAC-SHA256', ts => $now } });
    my $r = $http->post($srv->url('/api/ingest/logs'), { content => $body,
        headers => { 'Content-Type' => 'application/json', Authorization => "Bearer $tok" } });
    is $r->{status}, 200, 'a record that fills the line buffer is written (no overflow)';
    my ($line) = grep { /"security":true/ } split /\n/, $srv->slurp('logs/events.log');
    ok eval { JSON::PP->new->decode($line // ''); 1 }, '... as one valid JSON line';
}

# --- a long email's lock survives stop/start -----------------------------------

sub login {
    return $http->post($srv->url('/api/auth/login'), { content => $_[0],
        headers => { 'Content-Type' => 'application/json' } });
}

my $email = ('a+' x 90) . 'b@example.com';
login($json->encode({ email => $email, password => 'bad' })) for 1 .. 4;
$http->request('DELETE', $srv->url('/api/admin/lockouts/127.0.0.1'),
               { headers => { Authorization => "Bearer $admin" } });
is login($json->encode({ email => $email, password => 'good' }))->{status}, 429,
   'a 193-byte email is locked';
$srv->stop;
$srv->start;
is login($json->encode({ email => $email, password => 'good' }))->{status}, 429,
   '... and still after stop/start (its escaped key is read back whole)';

# --- an answer that sets a cookie is never "public" ------------------------------

my $r = $http->get($srv->url('/api/cookie'));
is $r->{headers}{'cache-control'}, 'private, max-age=60',
   'Set-Cookie in the answer: Cache-Control private';

# --- Retry-After of maintenance is the request's own memory --------------------

$http->request('PATCH', $srv->url('/api/admin/flags'), {
    headers => { Authorization => "Bearer $admin", 'Content-Type' => 'application/json' },
    content => '{"maintenance":true}' });
for (1 .. 3) {
    $r = $http->get($srv->url('/api/thing'), { headers => { 'X-Pad' => 'A' x 300 } });
    is $r->{headers}{'retry-after'}, '300', 'maintenance: Retry-After 300';
}
ok $srv->poll(sub { ($srv->slurp('logs/ra.log') =~ tr/\n//) >= 3 }, 5), 'logged';
unlike $srv->slurp('logs/ra.log'), qr/^\[(?!300\])/m,
       '$sent_http_retry_after read after the handler returned is still 300';
$http->request('PATCH', $srv->url('/api/admin/flags'), {
    headers => { Authorization => "Bearer $admin", 'Content-Type' => 'application/json' },
    content => '{"maintenance":null}' });

# --- values in flags.state that a PATCH could not set are ignored ------------------

$srv->stop;
open my $f, '>', "$state/flags.state" or die;
print $f "cacheTtlSeconds 999999999999 60 1\nlogLevel 7 30 1\nmaintenance 5 0 1\n"
       . "strictMode 1 0 99999999999999\n";
close $f;
$srv->start;
$r = $http->get($srv->url('/api/admin/state'), { headers => { Authorization => "Bearer $admin" } });
my $s = eval { JSON::PP->new->decode($r->{content}) } // {};
is $s->{flags}{cacheTtlSeconds}, 60, 'a TTL out of range is not restored';
is $s->{flags}{logLevel}, 'trace', 'nor a log level that is not one';
ok !$s->{flags}{maintenance}, 'nor a boolean of 5';
ok !$s->{flags}{strictMode}, 'nor a date far in the future';
like $srv->slurp('logs/error.log'), qr/a bad value in .*flags\.state/, 'each is logged';

$srv->stop;
$app->stop;
unlike $srv->slurp('logs/error.log'), qr/\[(alert|emerg|crit)\]|exited on signal/,
       'no worker crashed';

done_testing;
