# vim:set ft= ts=4 sw=4 et fdm=marker:
#
# The tRPC cache as the default deployment sets it: X-Cache-Status tells
# MISS, HIT, BYPASS or EXPIRED; the operations API (and scripts/linguamate
# cache-purge) purges every entry or those of a procedure; a TTL change
# applies to what is stored; an upstream's longer lifetime is cut to the
# TTL; an expired answer is never served for a failing app.

use strict;
use warnings;
use lib 't/lib';
use Test::More;
use JSON::PP;
use HTTP::Tiny;
use Linguamate::Server;
use Linguamate::Upstream;

my $json = JSON::PP->new->canonical;
my $srv = Linguamate::Server->new(workers => 2);
my $dir = $srv->dir;
my $admin = 'admin-token-admin-token-admin-token-0';
mkdir "$dir/cache";

sub set_mode { open my $f, '>', "$dir/mode" or die; print $f shift; close $f }
set_mode('ok');

# every answer carries how many times the app was asked for that path
my $app = Linguamate::Upstream->new(sub {
    my ($method, $uri) = @_;
    my $mode = do { open my $f, '<', "$dir/mode"; local $/; <$f> } // 'ok';
    return (500, '{"error":"down"}') if $mode eq 'fail';
    (my $k = $uri) =~ s/\W/_/g;
    open my $h, '>>', "$dir/n_$k"; print $h '.'; close $h;
    my $n = -s "$dir/n_$k";
    my %h = $mode eq 'long' ? ('Cache-Control' => 'public, max-age=3600') : ();
    return (200, $json->encode({ result => { data => { json => { n => $n } } } }), \%h);
});
my $port = $app->port;

$srv->configure(<<"_HTTP_", <<"_SERVER_");
    linguamate_admin_token $admin;
    linguamate_log_file logs/events.log;
    linguamate_app_upstream_url http://127.0.0.1:$port;
    linguamate_cache_ttl_seconds 60;
    proxy_cache_path $dir/cache levels=1:2 keys_zone=linguamate_api:1m
                     max_size=16m inactive=10m use_temp_path=off;
_HTTP_
        error_page 400 404 405 500 502 503 504 /_linguamate/error;
        location = /_linguamate/error { internal; linguamate_endpoint error; }
        location /api/trpc/ {
            linguamate_trpc on;
            linguamate_auth public;
            linguamate_cache on;
            proxy_cache linguamate_api;
            proxy_cache_key \$linguamate_cache_key\$scheme\$host\$request_uri;
            proxy_no_cache \$http_authorization \$http_cookie;
            proxy_cache_bypass \$http_authorization \$http_cookie;
            proxy_cache_use_stale off;
            proxy_pass \$linguamate_app_upstream;
        }
        location /api/admin/ { linguamate_endpoint admin; }
_SERVER_
$srv->start;

my $http = HTTP::Tiny->new(timeout => 10);
sub get {
    my ($path, %h) = @_;
    my $r = $http->get($srv->url($path), { headers => \%h });
    my $j = eval { $json->decode($r->{content}) };
    return ($r->{status}, $r->{headers}{'x-cache-status'} // '',
            $j ? $j->{result}{data}{json}{n} // -1 : -1);
}
sub admin {
    my ($method, $path, $body) = @_;
    my $r = $http->request($method, $srv->url("/api/admin$path"),
        { headers => { Authorization => "Bearer $admin",
                       'Content-Type' => 'application/json' },
          (defined $body ? (content => $body) : ()) });
    $r->{json} = eval { $json->decode($r->{content}) };
    return $r;
}

# --- MISS, HIT, BYPASS ---------------------------------------------------------

is_deeply [get('/api/trpc/user.list')], [200, 'MISS', 1], 'first call: MISS, from the app';
is_deeply [get('/api/trpc/user.list')], [200, 'HIT', 1], 'second: HIT, the stored answer';
is_deeply [get('/api/trpc/user.list', Cookie => 'a=b')], [200, 'BYPASS', 2],
          'with credentials: BYPASS, from the app';
is_deeply [get('/api/trpc/user.list')], [200, 'HIT', 1], 'and that answer was not stored';
is_deeply [get('/api/trpc/user.other')], [200, 'MISS', 1], 'another procedure: its own entry';
is_deeply [get('/api/trpc/user.list,user.other?batch=1')], [200, 'MISS', 1], 'a batch: MISS';
is_deeply [get('/api/trpc/user.list,user.other?batch=1')], [200, 'HIT', 1], 'then HIT';

# --- purge one procedure, then all ------------------------------------------------

my $r = admin('POST', '/cache/purge/user.other');
is $r->{status}, 200, 'purge a procedure';
is $r->{json}{purged}, 'procedure', '... says what';
is $r->{json}{procedure}, 'user.other', '... which';
is_deeply [get('/api/trpc/user.other')], [200, 'MISS', 2], 'its entry is gone';
is_deeply [get('/api/trpc/user.list,user.other?batch=1')], [200, 'MISS', 2],
          'so is a batch that has it';
is_deeply [get('/api/trpc/user.list')], [200, 'HIT', 1], 'another procedure keeps its entry';

$r = admin('POST', '/cache/purge');
is $r->{status}, 200, 'purge everything';
is $r->{json}{purged}, 'all', '... says so';
is_deeply [get('/api/trpc/user.list')], [200, 'MISS', 3], 'every entry is gone';
is_deeply [get('/api/trpc/user.list')], [200, 'HIT', 3], 'and the cache fills again';

is admin('GET', '/cache/purge')->{status}, 405, 'GET: 405';
is admin('POST', '/cache/purge/a%20b')->{status}, 400, 'a bad procedure name: 400';
is admin('POST', '/cache/purgex')->{status}, 404, 'a path of its own: 404';
like $srv->slurp('logs/events.log'),
     qr/"evt":"admin_action".*"action":"cache_purge","status":200.*"target":"user\.other"/,
     'purges are admin_action lines';

# --- scripts/linguamate cache-purge --------------------------------------------

mkdir "$dir/run";
open my $pf, '>', "$dir/run/port" or die; print $pf $srv->port, "\n"; close $pf;
# where scripts/linguamate reaches its deployment
open my $uf, '>', "$dir/run/url" or die;
print $uf "http://127.0.0.1:", $srv->port, "\n"; close $uf;
open my $ef, '>', "$dir/run/env" or die; close $ef;
my $out = `LINGUAMATE_RUN_DIR=$dir/run LINGUAMATE_ENV_FILE=$dir/run/env ADMIN_TOKEN=$admin scripts/linguamate cache-purge user.list 2>&1`;
is $?, 0, 'scripts/linguamate cache-purge PROCEDURE';
like $out, qr/"procedure":"user\.list"/, '... purged it';
is_deeply [get('/api/trpc/user.list')], [200, 'MISS', 4], '... its entry is gone';
$out = `LINGUAMATE_RUN_DIR=$dir/run LINGUAMATE_ENV_FILE=$dir/run/env ADMIN_TOKEN=$admin scripts/linguamate cache-purge 2>&1`;
like $out, qr/"purged":"all"/, 'scripts/linguamate cache-purge: everything';
is_deeply [get('/api/trpc/user.list')], [200, 'MISS', 5], '... gone too';

# --- a reload keeps the generations: stored answers stay, purged ones gone ---------

ok $srv->reload, 'HUP reload';
is_deeply [get('/api/trpc/user.list')], [200, 'HIT', 5], 'still a HIT after the reload';
is_deeply [get('/api/trpc/user.other')], [200, 'MISS', 3], 'a purged entry is still gone';

# --- a TTL change applies to what is stored --------------------------------------

is_deeply [get('/api/trpc/user.list')], [200, 'HIT', 5], 'stored with TTL 60';
is admin('PATCH', '/flags', '{"cacheTtlSeconds":0}')->{status}, 200, 'TTL 0, live';
is_deeply [get('/api/trpc/user.list')], [200, 'MISS', 6], 'TTL 0: the stored answer is not served';
is_deeply [get('/api/trpc/user.list')], [200, 'MISS', 7], '... and nothing is stored';
admin('PATCH', '/flags', '{"cacheTtlSeconds":1}');

# --- the TTL bounds an upstream's own lifetime; no stale answer for a failing app ---

set_mode('long');
is_deeply [get('/api/trpc/user.long')], [200, 'MISS', 1], 'the app says max-age=3600';
is_deeply [get('/api/trpc/user.long')], [200, 'HIT', 1], 'stored';
set_mode('fail');
my @last;
ok $srv->poll(sub { @last = get('/api/trpc/user.long'); $last[0] != 200 }, 5),
   'once the TTL (1 s) has passed, the failing app is asked again';
is $last[0], 500, 'its error, not the expired answer';
is $last[1], 'EXPIRED', 'X-Cache-Status: EXPIRED';

$srv->stop;
unlike $srv->slurp('logs/error.log'), qr/\[(alert|crit|emerg)\]|exited on signal/,
       'no alert, no crash';

done_testing();
