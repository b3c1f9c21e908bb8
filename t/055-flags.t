# vim:set ft= ts=4 sw=4 et fdm=marker:
#
# Live operations flags with a real master and two workers: PATCH
# /api/admin/flags and GET /api/admin/state; a change made through one
# worker seen by the other; maintenance mode, features, strict mode, the
# log level and the cache TTL taking effect on the next request; bad
# values refused whole; the live changes kept across a HUP reload and a
# stop/start, and dropped when the configuration changes the setting.

use strict;
use warnings;
use lib 't/lib';
use Test::More;
use JSON::PP;
use HTTP::Tiny;
use Linguamate::Server;
use Linguamate::Token;

my $json = JSON::PP->new->canonical;
my $admin = 'admin-token-admin-token-admin-token-0';
my $srv = Linguamate::Server->new(workers => 2);
my $dir = $srv->dir;
my $state = "$dir/state";
mkdir $state;
chmod 0777, $state;
my $port = $srv->port;

sub conf {
    my ($extra) = @_;
    $extra //= '';
    $srv->configure(<<"_HTTP_", <<"_SERVER_");
    linguamate_node_env staging;
    linguamate_jwt_secret $SECRET;
    linguamate_state_dir $state;
    linguamate_admin_token $admin;
    linguamate_log_file logs/events.log;
    linguamate_cors_allowed_origins "https://app.example.com,https://*.example.com,http://localhost:8081";
    linguamate_security_strict_max_token_age 1h;
    linguamate_limit_zone lim size=1m window=1h limit=1000;
    proxy_cache_path $dir/cache levels=1:2 keys_zone=cz:1m;
$extra
_HTTP_
        add_header X-Pid \$pid always;
        linguamate_cors on;
        location = /api/health { linguamate_endpoint health; }
        location = /api/health/ready { linguamate_endpoint health_ready; }
        location = /api/metrics { linguamate_endpoint metrics; }
        location = /api/info { linguamate_endpoint info; }
        location /api/admin/ { linguamate_endpoint admin; }
        location = /api/thing { linguamate_limit lim; linguamate_endpoint root; }
        location = /api/chat {
            linguamate_feature chat;
            linguamate_auth optional;
            proxy_pass http://127.0.0.1:$port/echo;
        }
        location = /api/analytics {
            linguamate_feature analytics;
            proxy_pass http://127.0.0.1:$port/echo;
        }
        location = /api/cached {
            linguamate_cache on;
            proxy_cache cz;
            proxy_cache_key \$uri\$is_args\$args;
            proxy_cache_valid 200 1h;
            proxy_pass http://127.0.0.1:$port/counter;
            add_header X-Cache \$upstream_cache_status always;
            add_header X-Pid \$pid always;
        }
        location = /echo { linguamate off; return 200 "ok\\n"; }
        location = /counter { linguamate off; return 200 "\$request_id\\n"; }
        location / { linguamate_endpoint not_found; }
_SERVER_
}

conf();
$srv->start;

my $http = HTTP::Tiny->new(timeout => 10);

sub req {
    my ($method, $path, %o) = @_;
    my %h = %{ $o{headers} // {} };
    my $r = HTTP::Tiny->new(timeout => 10)->request($method, $srv->url($path),
        { headers => \%h, (defined $o{content} ? (content => $o{content}) : ()) });
    $r->{json} = eval { $json->decode($r->{content}) };
    return $r;
}

sub patch {
    my ($body, %o) = @_;
    return req('PATCH', '/api/admin/flags', content => $body,
               headers => { Authorization => "Bearer $admin",
                            'Content-Type' => 'application/json',
                            %{ $o{headers} // {} } });
}

sub state {
    return req('GET', '/api/admin/state',
               headers => { Authorization => "Bearer $admin" })->{json};
}

# the statuses a path gets from each worker: fresh connections until both
# answered (bounded)
sub per_worker {
    my ($path, %h) = @_;
    my %seen;
    for my $i (1 .. 200) {
        my $r = req('GET', $path, headers => \%h);
        my $pid = $r->{headers}{'x-pid'} // '?';
        $seen{$pid} //= $r;
        last if keys %seen >= 2;
        # a slow worker (valgrind) may leave the other to take them all
        select undef, undef, undef, 0.01 if $i > 50;
    }
    return \%seen;
}

sub statuses {
    my ($seen) = @_;
    return join ',', sort { $a <=> $b } map { $_->{status} } values %$seen;
}

# --- the state as configured -------------------------------------------------

my $s = state();
is_deeply $s->{flags}, { maintenance => JSON::PP::false,
    features => { chat => JSON::PP::true, analytics => JSON::PP::true },
    strictMode => JSON::PP::false, logLevel => 'info', cacheTtlSeconds => 60 },
    'GET /api/admin/state shows the configured flags';
is_deeply $s->{liveFlags}, {}, 'no live change yet';
my $r = req('GET', '/api/admin/state',
         headers => { Authorization => "Bearer $admin" });
my $flags_json = '"flags":{"maintenance":false,'
    . '"features":{"chat":true,"analytics":true},"strictMode":false,'
    . '"logLevel":"info","cacheTtlSeconds":60},"liveFlags":{}';
like $r->{content}, qr/\Q$flags_json\E/,
     '... in this order, the features nested';

# --- bad requests change nothing -----------------------------------------------

my $levels = 'must be one of trace, debug, info, warn, error, fatal (or null)';
my @bad = (
    ['{"maintenance":"yes"}', 'maintenance', 'must be true or false (or null)'],
    ['{"maintenance":1}', 'maintenance'],
    ['{"logLevel":"loud"}', 'logLevel', $levels],
    ['{"logLevel":"INFO"}', 'logLevel'],
    ['{"logLevel":"silent"}', 'logLevel', $levels],
    ['{"cacheTtlSeconds":-1}', 'cacheTtlSeconds',
     'must be an integer from 0 to 31536000 (or null)'],
    ['{"cacheTtlSeconds":1.5}', 'cacheTtlSeconds'],
    ['{"cacheTtlSeconds":1e400}', 'cacheTtlSeconds'],
    ['{"cacheTtlSeconds":99999999999}', 'cacheTtlSeconds'],
    ['{"cacheTtlSeconds":31536001}', 'cacheTtlSeconds'],
    ['{"features":{"video":true}}', 'features',
     'unknown feature: the features are chat and analytics'],
    ['{"features":true}', 'features',
     'must be an object of chat and analytics'],
    ['{"features":{"chat":"on"}}', 'features.chat',
     'must be true or false (or null)'],
    ['{"features":{"analytics":true,"analytics":false}}',
     'features.analytics', 'is duplicated'],
    ['{"features":{},"features":{"chat":true}}', 'features', 'is duplicated'],
    ['{"features.chat":true}', 'features.chat',
     'unknown flag: the flags are maintenance, features, strictMode, '
     . 'logLevel and cacheTtlSeconds'],
    ['{"bogus":true}', 'bogus',
     'unknown flag: the flags are maintenance, features, strictMode, '
     . 'logLevel and cacheTtlSeconds'],
    ['{"' . ('k' x 100) . '":1}', 'k' x 64],
    ['{}', 'body', 'names no flag to change'],
    ['{"features":{}}', 'body', 'names no flag to change'],
    ['[]', 'body', 'must be a JSON object'],
    ['not json', 'body'],
    ['{"maintenance":true,"logLevel":"loud"}', 'logLevel'],
    ['{"maintenance":tru', 'body'],
    ["{\"strictMode\":\"\xff\"}", 'body'],
    [('[' x 2000) . (']' x 2000), 'body'],
);

for my $b (@bad) {
    my $r = patch($b->[0]);
    my $show = length $b->[0] > 40 ? substr($b->[0], 0, 40) . '...' : $b->[0];
    is $r->{status}, 400, "PATCH $show is 400";
    is $r->{json}{error}{code}, 'VALIDATION_ERROR', '... VALIDATION_ERROR';
    is $r->{json}{error}{details}[0]{field}, $b->[1], "... naming $b->[1]";
    is $r->{json}{error}{details}[0]{message}, $b->[2], "... saying $b->[2]"
        if defined $b->[2];
}

ok !state()->{flags}{maintenance},
    'a request with one bad field changed nothing (all or nothing)';

$r = req('PATCH', '/api/admin/flags', content => '{"maintenance":true}');
is $r->{status}, 401, 'PATCH without the admin token is 401';
$r = req('GET', '/api/admin/flags', headers => { Authorization => "Bearer $admin" });
is $r->{status}, 405, 'GET /api/admin/flags is 405';
is $r->{headers}{allow}, 'PATCH', '... with Allow: PATCH';
$r = patch('{"maintenance":true}' . (' ' x 5000));
is $r->{status}, 413, 'a flags body over 4 KB is 413';
ok !state()->{flags}{maintenance}, '... and changed nothing';
is statuses(per_worker('/api/thing')), '200,200', 'both workers serve';

# --- maintenance, through one worker, seen by the other ------------------------

$r = patch('{"maintenance":true}');
is $r->{status}, 200, 'PATCH {"maintenance":true}';
is $r->{json}{flags}{maintenance}, JSON::PP::true, '... answers the new flags';
my $via = $r->{headers}{'x-pid'};
ok $via, "... through worker $via";

my $seen = per_worker('/api/thing');
is scalar(keys %$seen), 2, 'both workers answered';
ok exists $seen->{$via} && grep({ $_ ne $via } keys %$seen),
   'one of them is the other worker';
for my $pid (sort keys %$seen) {
    my $x = $seen->{$pid};
    is $x->{status}, 503, "worker $pid: a route is 503 at once";
    my $body = eval { $json->decode($x->{content}) } // {};
    is $body->{error}{code}, 'MAINTENANCE', "worker $pid: MAINTENANCE";
    is $body->{error}{retryAfter}, 300, "worker $pid: retryAfter 300";
    is $x->{headers}{'retry-after'}, '300', "worker $pid: Retry-After: 300";
    like $body->{error}{requestId} // '', qr/^[0-9a-f-]{36}$/,
         "worker $pid: the correlation id";
}

is statuses(per_worker('/api/nope')), '503,503', 'an unknown route is 503 too';
is statuses(per_worker('/api/health')), '200,200', 'health still answers';
is statuses(per_worker('/api/metrics')), '200,200', 'metrics still answers';
like req('GET', '/api/metrics')->{content}, qr/^linguamate_maintenance_mode 1$/m,
     'linguamate_maintenance_mode is 1';
$seen = per_worker('/api/health/ready');
is statuses($seen), '503,503', 'ready is 503 on both workers';
like((values %$seen)[0]{content}, qr/"status":"not ready","reason":"maintenance"/,
     '... "not ready", reason maintenance');
$r = req('OPTIONS', '/api/thing', headers => {
    Origin => 'https://app.example.com',
    'Access-Control-Request-Method' => 'GET' });
is $r->{status}, 204, 'a preflight is still answered';
$r = req('GET', '/api/thing', headers => { Origin => 'https://app.example.com' });
is $r->{headers}{'access-control-allow-origin'}, 'https://app.example.com',
   'the 503 carries CORS headers, so a browser app can read it';

$s = state();
is $s->{flags}{maintenance}, JSON::PP::true, 'the state says maintenance';
is $s->{liveFlags}{maintenance}{configured}, JSON::PP::false,
   '... a live change over the configured false';
is $s->{liveFlags}{maintenance}{env}, 'MAINTENANCE_MODE', '... of MAINTENANCE_MODE';
like $s->{liveFlags}{maintenance}{since}, qr/^\d{4}-\d\d-\d\dT/, '... since when';

my ($line) = grep { /"evt":"admin_action"/ && /"action":"flags"/ && /"status":200/ }
             split /\n/, $srv->slurp('logs/events.log');
ok $line, 'the change is logged as admin_action';
my $ev = eval { $json->decode($line // '') } // {};
is_deeply $ev->{changes}, { maintenance => JSON::PP::true }, '... with what changed';
is $ev->{level}, 30, '... at info';
unlike $srv->slurp('logs/events.log'), qr/\Q$admin\E/, 'the admin token is never logged';

my $file = $srv->slurp('state/flags.state');
like $file, qr/^maintenance 1 0 \d+$/m, 'STATE_DIR/flags.state has the change';

# --- kept across a reload and a restart -------------------------------------------

ok $srv->reload, 'HUP reload';
is statuses(per_worker('/api/thing')), '503,503', 'still in maintenance after a reload';
$srv->stop;
$srv->start;
is statuses(per_worker('/api/thing')), '503,503', 'still in maintenance after stop/start';
like $srv->slurp('logs/error.log'), qr/live flag changes restored/, 'the restore is logged';

# --- an operator clears it ----------------------------------------------------------

$r = patch('{"maintenance":null}');
is $r->{status}, 200, 'PATCH {"maintenance":null} clears the live change';
is statuses(per_worker('/api/thing')), '200,200', 'back in service on both workers';
like req('GET', '/api/metrics')->{content}, qr/^linguamate_maintenance_mode 0$/m,
     'linguamate_maintenance_mode is 0';
is_deeply state()->{liveFlags}, {}, 'no live change left';
unlike $srv->slurp('state/flags.state'), qr/maintenance/, 'and none in STATE_DIR';

# --- features -------------------------------------------------------------------------

$r = patch('{"features":{"chat":false}}');
is $r->{status}, 200, 'switch chat off';
$seen = per_worker('/api/chat');
is statuses($seen), '503,503', 'the chat route is 503 on both workers';
my $body = eval { $json->decode((values %$seen)[0]{content}) } // {};
is $body->{error}{code}, 'FEATURE_DISABLED', '... FEATURE_DISABLED';
is $body->{error}{feature}, 'chat', '... naming the feature';
is statuses(per_worker('/api/analytics')), '200,200', 'analytics is still on';
$r = patch('{"features":{"chat":true,"analytics":false}}');
is statuses(per_worker('/api/chat')), '200,200', 'chat back on';
$seen = per_worker('/api/analytics');
is statuses($seen), '503,503', 'analytics off';
like((values %$seen)[0]{content}, qr/"feature":"analytics"/, '... named');
patch('{"features":{"chat":null,"analytics":null}}');

# --- strict mode ------------------------------------------------------------------------

my $old = token(sub => 'u1', sid => 's1', iat => time - 7200, ttl => '7d');
my $new = token(sub => 'u1', sid => 's1');

$r = req('GET', '/api/thing');
is $r->{headers}{'x-ratelimit-limit'}, 1000, 'the limit is 1000';
is req('GET', '/api/chat')->{status}, 200, 'chat without a token passes';
is req('GET', '/api/chat', headers => { Authorization => "Bearer $old" })->{status},
   200, 'a 2-hour-old token passes';
is req('GET', '/api/thing', headers => { Origin => 'https://x.example.com' })
   ->{headers}{'access-control-allow-origin'}, 'https://x.example.com',
   'a wildcard origin is allowed';
is req('GET', '/api/thing', headers => { Origin => 'http://localhost:8081' })
   ->{headers}{'access-control-allow-origin'}, 'http://localhost:8081',
   'a development origin is allowed';

$r = patch('{"strictMode":true}');
is $r->{status}, 200, 'strict mode on';

$seen = per_worker('/api/thing');
is join(',', map { $_->{headers}{'x-ratelimit-limit'} } values %$seen), '500,500',
   'the limit is halved on both workers';
$seen = per_worker('/api/chat');
is statuses($seen), '401,401', 'chat without a token is 401';
$r = req('GET', '/api/chat', headers => { Authorization => "Bearer $old" });
is $r->{status}, 401, 'a token older than the strict maximum age is 401';
is $r->{json}{error}{reason}, 'TOKEN_EXPIRED', '... TOKEN_EXPIRED';
is req('GET', '/api/chat', headers => { Authorization => "Bearer $new" })->{status},
   200, 'a fresh token passes';
$r = req('GET', '/api/thing', headers => { Origin => 'https://x.example.com' });
ok !exists $r->{headers}{'access-control-allow-origin'}, 'wildcard origins are off';
$r = req('GET', '/api/thing', headers => { Origin => 'http://localhost:8081' });
ok !exists $r->{headers}{'access-control-allow-origin'}, 'development origins are off';
$r = req('GET', '/api/thing', headers => { Origin => 'https://app.example.com' });
is $r->{headers}{'access-control-allow-origin'}, 'https://app.example.com',
   'a named origin still works';
like $srv->slurp('logs/events.log'),
     qr/"level":40,[^\n]*"evt":"auth_failed"[^\n]*"reason":"MISSING"/,
     'a refused token is a security event at warn';

patch('{"strictMode":false}');
is req('GET', '/api/chat')->{status}, 200, 'strict off: optional again';

# --- the log level ------------------------------------------------------------------------

my $count = () = $srv->slurp('logs/events.log') =~ /"evt":"auth_verified"/g;
is $count, 0, 'at info no debug line';
$r = patch('{"logLevel":"debug"}');
is $r->{json}{flags}{logLevel}, 'debug', 'log level debug';
for (1 .. 4) {
    req('GET', '/api/chat', headers => { Authorization => "Bearer $new" });
}
$count = () = $srv->slurp('logs/events.log') =~ /"level":20,[^\n]*"evt":"auth_verified"/g;
is $count, 4, 'debug lines appear at once, from every worker';
unlike $srv->slurp('logs/events.log'), qr/\Q$new\E/, 'never with the token';
patch('{"logLevel":"error"}');
patch('{"features":{"chat":false}}');
patch('{"features":{"chat":null}}');
my @lines = grep { /"action":"flags"/ } split /\n/, $srv->slurp('logs/events.log');
like $lines[-1] // '', qr/"changes":\{"features.chat":\{"cleared":true/,
     'at error, admin actions are still logged (an audit trail)';
my $n = () = $srv->slurp('logs/events.log') =~ /"evt":"auth_verified"/g;
req('GET', '/api/chat', headers => { Authorization => "Bearer $new" });
is $n, scalar(() = $srv->slurp('logs/events.log') =~ /"evt":"auth_verified"/g),
   'but debug lines stop at once';
patch('{"logLevel":null}');

# --- the cache TTL -------------------------------------------------------------------------

$r = req('GET', '/api/info');
is $r->{headers}{'cache-control'}, 'public, max-age=60', '/api/info: max-age from CACHE_TTL_SECONDS';
$r = req('GET', '/api/thing');
ok !exists $r->{headers}{'cache-control'}, 'a route without linguamate_cache has none';
my $m1 = req('GET', '/api/cached?k=1');
is $m1->{headers}{'x-cache'}, 'MISS', 'a proxied GET: first a MISS';
# the entry is committed just after the client has the answer: poll
my ($m2, %bodies);
$bodies{ $m1->{content} } = 1;
for (1 .. 50) {
    $m2 = req('GET', '/api/cached?k=1');
    last if ($m2->{headers}{'x-cache'} // '') eq 'HIT';
    $bodies{ $m2->{content} } = 1;
    select undef, undef, undef, 0.02;
}
is $m2->{headers}{'x-cache'}, 'HIT', '... then a HIT (proxy_cache honours the TTL)';
ok $bodies{ $m2->{content} }, '... with a body the upstream sent before';
is $m2->{headers}{'cache-control'}, 'public, max-age=60', '... and the header';
$r = req('GET', '/api/cached?k=p', headers => { Authorization => "Bearer $new" });
is $r->{headers}{'cache-control'}, 'private, max-age=60', 'with credentials: private';
my %xc;
for (1 .. 5) {
    select undef, undef, undef, 0.05;
    $xc{ req('GET', '/api/cached?k=p', headers => { Authorization => "Bearer $new" })
         ->{headers}{'x-cache'} // '' }++;
}
is join(',', sort keys %xc), 'MISS', '... and never stored';

$r = patch('{"cacheTtlSeconds":0}');
is $r->{json}{flags}{cacheTtlSeconds}, 0, 'TTL 0';
$seen = per_worker('/api/info');
is join(',', map { $_->{headers}{'cache-control'} } values %$seen), 'no-store,no-store',
   'no-store on both workers at once';
%xc = ();
for (1 .. 5) {
    select undef, undef, undef, 0.05;
    $xc{ req('GET', '/api/cached?k=2')->{headers}{'x-cache'} // '' }++;
}
is join(',', sort keys %xc), 'MISS', 'with TTL 0 nothing is stored';

$r = patch('{"cacheTtlSeconds":120}');
is req('GET', '/api/info')->{headers}{'cache-control'}, 'public, max-age=120', 'TTL 120';

# --- the configuration changes a setting: it wins ------------------------------------------

patch('{"features":{"analytics":false}}');
conf('linguamate_cache_ttl_seconds 30;');
ok $srv->reload, 'reload with CACHE_TTL_SECONDS 30';
is req('GET', '/api/info')->{headers}{'cache-control'}, 'public, max-age=30',
   'the changed setting wins over the live value';
$s = state();
ok !exists $s->{liveFlags}{cacheTtlSeconds}, 'its live change is gone';
is $s->{flags}{features}{analytics}, JSON::PP::false,
   'a live change of an unchanged setting stays';
like $srv->slurp('logs/events.log'),
     qr/"evt":"flag_override_cleared"[^\n]*"flag":"cacheTtlSeconds","live":120,"configured":30/,
     'the drop is logged';
like $srv->slurp('logs/events.log'),
     qr/"evt":"config_reloaded"[^\n]*"changed":\["CACHE_TTL_SECONDS"\]/,
     'the reload names the setting that changed (an audit line)';

$srv->stop;
conf("linguamate_cache_ttl_seconds 30;\n    linguamate_feature_analytics_enabled off;");
$srv->start;
is state()->{flags}{features}{analytics}, JSON::PP::false, 'analytics is off by configuration';
ok !exists state()->{liveFlags}{'features.analytics'},
   'a setting changed while stopped wins at start too';
unlike $srv->slurp('state/flags.state'), qr/analytics/, 'and STATE_DIR forgets it';

# --- STATE_DIR unwritable: logged, serving goes on -------------------------------------

unlink "$state/flags.state";
mkdir "$state/flags.state";
$r = patch('{"maintenance":false}');
is $r->{status}, 200, 'a change that cannot be saved still applies';
like $srv->slurp('logs/error.log'), qr/cannot lock "[^"]*flags\.state" to compact it/,
     '... and the failure is logged: no compaction without the lock';
is_deeply [glob "$state/flags.state.tmp*"], [], '... which wrote no temporary file';
is req('GET', '/api/thing')->{status}, 200, 'serving goes on';
rmdir "$state/flags.state";

unlike $srv->slurp('logs/error.log'), qr/\[(alert|emerg|crit)\]|exited on signal/,
       'no worker crashed';

done_testing;
