# vim:set ft= ts=4 sw=4 et fdm=marker:
#
# End to end: the default deployment (conf/) exactly as "make start"
# serves it, with 2 workers, its env file, its log stream, "make reload"
# and "make stop"; and "make run" in the foreground.  Plain Test::More:
# this file does not use Test::Nginx.

use strict;
use warnings;
use Test::More;
use HTTP::Tiny;
use JSON::PP;
use IO::Socket::INET;
use File::Temp qw(tempdir);
use Time::HiRes qw(sleep time);
use POSIX qw(WNOHANG strftime);
use Digest::SHA qw(hmac_sha256_hex);
use lib 't/lib';
use Linguamate::Upstream;
use Linguamate::Deployment qw(free_port poll);

my $repo = $ENV{LINGUAMATE_REPO} // do { require Cwd; Cwd::getcwd() };
my $tmp = tempdir('linguamate-e2e-XXXXXX', TMPDIR => 1, CLEANUP => 1);
chmod 0755, $tmp;
my $json = JSON::PP->new;
my $http = HTTP::Tiny->new(timeout => 5);

my $port = free_port();

# a stand-in for the AI toolkit: echoes what it was sent
my $toolkit = Linguamate::Upstream->new(sub {
    my ($method, $uri, $h, $body) = @_;
    return (200, JSON::PP->new->canonical->encode({ uri => $uri,
        auth => $h->{authorization}, rid => $h->{'x-request-id'}, body => $body }));
});
# a stand-in for the app service behind /api/trpc: echoes what it got
my $appsvc = Linguamate::Upstream->new(sub {
    my ($method, $uri, $h, $body) = @_;
    return (200, JSON::PP->new->canonical->encode({ result => { data => { json => {
        uri => $uri, user => $h->{'x-user-id'} // '', corr => $h->{'x-correlation-id'} // '' } } } }));
});
my $env_file = "$tmp/app.env";
my $log_key = 'e2e-log-signing-key-e2e-log-signing-0001';
my $run_dir = "$tmp/run";

# the environment "make start" sees: only what a user would set
my %env = (
    LINGUAMATE_RUN_DIR  => $run_dir,
    LINGUAMATE_ENV_FILE => $env_file,
    PORT                => $port,
);
$env{LINGUAMATE_MODULE} = $ENV{LINGUAMATE_MODULE} if $ENV{LINGUAMATE_MODULE};
$env{NGINX} = $ENV{TEST_NGINX_BINARY} if $ENV{TEST_NGINX_BINARY};

sub write_env {
    my ($extra) = @_;
    open my $in, '<', "$repo/.env.example" or die $!;
    my $text = do { local $/; <$in> };
    $text =~ s/^JWT_SECRET=.*$/JWT_SECRET="e2e-secret-e2e-secret-e2e-secret-0123"/m;
    $text =~ s/^WORKER_PROCESSES=.*$/WORKER_PROCESSES=2/m;
    # the log test sends a few hundred requests to one route
    $text =~ s/^RATE_LIMIT_MAX_REQUESTS=.*$/RATE_LIMIT_MAX_REQUESTS=5000/m;
    $text =~ s/^ADMIN_TOKEN=.*$/ADMIN_TOKEN=e2e-admin-token-e2e-admin-token-0001/m;
    $text =~ s/^STATE_DIR=.*$/STATE_DIR=$tmp\/state/m;
    my $tk = $toolkit->port;
    $text =~ s/^EXPO_PUBLIC_TOOLKIT_URL=.*$/EXPO_PUBLIC_TOOLKIT_URL=http:\/\/127.0.0.1:$tk/m;
    $text =~ s/^TOOLKIT_API_KEY=.*$/TOOLKIT_API_KEY=e2e-toolkit-key/m;
    my $ap = $appsvc->port;
    $text =~ s/^APP_UPSTREAM_URL=.*$/APP_UPSTREAM_URL=http:\/\/127.0.0.1:$ap/m;
    $text =~ s/^LOG_SIGNING_KEY=.*$/LOG_SIGNING_KEY=$log_key/m;
    $text .= $extra // '';
    open my $out, '>', "$env_file.tmp" or die $!;
    print $out $text;
    close $out;
    rename "$env_file.tmp", $env_file or die $!;
}

sub make {
    my (@args) = @_;
    local %ENV = (%ENV, %env);
    delete $ENV{$_} for grep { /^(NODE_ENV|LOG_|RATE_LIMIT_|JWT_)/ } keys %ENV;
    my $out = `make -s -C '$repo' @args 2>&1`;
    return ($? >> 8, $out);
}

sub get {
    my ($path, %h) = @_;
    return $http->get("http://127.0.0.1:$port$path", { headers => \%h });
}

sub log_lines {
    open my $fh, "<", "$run_dir/logs/linguamate.log" or return ();
    return <$fh>;
}

write_env();

# --- make start ---------------------------------------------------------

my ($rc, $out) = make('start');
is $rc, 0, 'make start succeeds' or diag $out;
like $out, qr/started \(pid \d+\) on port $port/, 'make start says where';

my $master = do { open my $f, '<', "$run_dir/nginx.pid" or die; <$f> };
chomp $master;
ok -d "/proc/$master", "the master runs (pid $master)";

# the cache manager and loader (proxy_cache_path) are children too
my @workers = grep { (`cat /proc/$_/stat 2>/dev/null` =~ /^\d+ \(nginx\) \S+ $master /)
                     && `cat /proc/$_/cmdline 2>/dev/null` =~ /worker process/ }
              map { m{/proc/(\d+)} ? $1 : () } glob '/proc/[0-9]*';
is scalar @workers, 2, 'WORKER_PROCESSES=2 from the env file gives 2 workers';

# --- endpoints -----------------------------------------------------------

my $r = get('/api/health');
is $r->{status}, 200, '/api/health is 200';
is $r->{headers}{'content-type'}, 'application/json; charset=utf-8',
   'JSON content type';
my $h = eval { $json->decode($r->{content}) } || {};
is $h->{status}, 'ok', 'status ok';
is $h->{env}, 'development', 'env from the env file';
like $h->{timestamp}, qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/, 'ISO timestamp';
like $h->{uptime}, qr/^\d+$/, 'uptime in seconds';
is $r->{headers}{'x-frame-options'}, 'DENY', 'security headers';
like $r->{headers}{'x-correlation-id'}, qr/^[0-9a-f-]{36}$/, 'a new correlation id';

for my $p ('/api', '/api/health/live', '/api/health/ready', '/api/info',
           '/api/health/detailed', '/api/metrics')
{
    my $x = get($p);
    is $x->{status}, 200, "$p is 200";
    next if $p eq '/api/metrics';
    ok eval { $json->decode($x->{content}); 1 }, "$p is JSON";
}

$r = get('/api/nope', 'X-Correlation-Id' => 'e2e-404');
is $r->{status}, 404, 'unknown route 404';
my $e = eval { $json->decode($r->{content}) } || {};
is $e->{error}{code}, 'NOT_FOUND', 'NOT_FOUND envelope';
is $e->{error}{requestId}, 'e2e-404', 'requestId is the correlation id';

$r = $http->post("http://127.0.0.1:$port/api/health");
is $r->{status}, 405, 'POST /api/health is 405';
is $r->{headers}{allow}, 'GET, HEAD', 'with Allow';

$r = get('/api/metrics');
like $r->{content}, qr/^linguamate_http_requests_total\{route="health",method="GET",status="200"\} [1-9]/m,
     'the metrics count the deployment\'s named routes';
{
    open my $fh, '>', "$tmp/metrics.txt" or die;
    print $fh $r->{content};
    close $fh;
    my $out = `promtool check metrics < '$tmp/metrics.txt' 2>&1`;
    is $?, 0, 'promtool accepts the deployment\'s metrics' or diag $out;
}

$r = get('/api');
is $r->{headers}{'x-ratelimit-limit'}, 5000, '/api is under the global limit';
is $r->{headers}{'ratelimit-policy'}, '"global";q=5000;w=60', 'its policy';
$r = get('/api/health/live');
ok !exists $r->{headers}{'x-ratelimit-limit'},
   'a probe is not (RATE_LIMIT_PROBES defaults to false)';

$r = get('/api/health/live', Origin => 'http://localhost:8081');
is $r->{headers}{'access-control-allow-origin'}, 'http://localhost:8081',
   'development echoes the app\'s origin (CORS on)';
$r = $http->request('OPTIONS', "http://127.0.0.1:$port/api/auth/session",
                    { headers => { Origin => 'http://localhost:8081',
                                   'Access-Control-Request-Method' => 'GET' } });
is $r->{status}, 204, 'a preflight is answered in-process';
like $r->{headers}{'access-control-allow-headers'} // '', qr/Authorization/,
     'and allows the Authorization header';

$r = get('/api/admin/state');
is $r->{status}, 401, 'the operations API needs the admin token';
$r = get('/api/admin/state',
         Authorization => 'Bearer e2e-admin-token-e2e-admin-token-0001');
is $r->{status}, 200, 'and answers with it';

# --- the toolkit proxy --------------------------------------------------

$r = $http->post("http://127.0.0.1:$port/api/toolkit/v1/text/llm",
                 { content => '{"prompt":"hola"}', headers => {
                   'Content-Type' => 'application/json', 'X-Correlation-Id' => 'e2e-tk' } });
is $r->{status}, 200, 'the LLM route reaches the toolkit';
my $tkr = eval { $json->decode($r->{content}) } || {};
is $tkr->{uri}, '/text/llm/', 'at /text/llm/';
is $tkr->{auth}, 'Bearer e2e-toolkit-key', 'with TOOLKIT_API_KEY';
is $tkr->{rid}, 'e2e-tk', 'and the correlation id';
is $tkr->{body}, '{"prompt":"hola"}', 'and the body';
like get('/api/toolkit/health')->{content}, qr/"breaker":"CLOSED"/, 'toolkit health';

# --- the app's telemetry: signed log batches, analytics events -------------

sub post_json {
    my ($path, $body, %h) = @_;
    return $http->post("http://127.0.0.1:$port$path", { content => $body,
        headers => { 'Content-Type' => 'application/json', %h } });
}

my $now = strftime('%Y-%m-%dT%H:%M:%S.000Z', gmtime);
my $logs = qq([{"ts":"$now","lvl":"WARN","cat":"e2e","evt":"e2e_client",)
           . qq("msg":"from the app","data":{"password":"e2e-pw-secret"}}]);
my $sig = hmac_sha256_hex(qq({"items":$logs,"ts":"$now"}), $log_key);
my $batch = qq({"logs":$logs,"sig":{"hmac":"$sig","algo":"HMAC-SHA256",)
            . qq("ts":"$now"}});
$r = post_json('/api/ingest/logs', $batch, 'X-Correlation-Id' => 'e2e-ingest');
is $r->{status}, 200, 'a signed log batch is taken';
is $r->{content}, qq({"success":true,"count":1}\n), 'and counted';
my ($cl) = map { $json->decode($_) }
           grep { /"correlationId":"e2e-ingest"/ && /"source":"client"/ }
           log_lines();
is $cl->{level}, 40, 'the record is a WARN line of the log stream';
is $cl->{evt}, 'e2e_client', 'with its evt';
is $cl->{data}{password}, '[REDACTED]', 'and its secrets redacted';
ok !(grep { /e2e-pw-secret/ } log_lines()), 'the secret is nowhere in the log';
$r = post_json('/api/ingest/logs', $batch =~ s/"hmac":"\w+"/"hmac":"@{['0' x 64]}"/r);
is $r->{status}, 401, 'a batch with a wrong signature is 401';
like $r->{content}, qr/"reason":"BAD_SIGNATURE"/, 'BAD_SIGNATURE';
$r = post_json('/api/ingest/logs', 'x' x (1024 * 1024 + 1));
is $r->{status}, 413, 'a body over 1 MB is 413';
like $r->{content}, qr/"code":"PAYLOAD_TOO_LARGE"/, 'in the envelope';
$r = $http->get("http://127.0.0.1:$port/api/ingest/logs");
is $r->{status}, 405, 'GET on the ingest route is 405';

$r = post_json('/api/analytics/events',
               qq({"events":[{"name":"e2e_event","time":"$now"}]}),
               'X-Correlation-Id' => 'e2e-analytics');
is $r->{status}, 200, 'an analytics batch is taken';
is $r->{content}, qq({"success":true,"count":1}\n), 'and counted';
ok((grep { /"evt":"analytics_event"/ && /"correlationId":"e2e-analytics"/ }
    log_lines()), 'the event is in the log stream (no event log configured)');
$r = post_json('/api/analytics/events', '{"events":[{"name":"bad name"}]}');
is $r->{status}, 400, 'an invalid event is 400';
like $r->{content}, qr/"field":"events\[0\]\.name"/, 'with details';
like get('/api/metrics')->{content},
     qr/^linguamate_client_logs_total\{level="warn"\} 1$/m,
     'the record is counted in the metrics';

# --- the app's tRPC procedures ------------------------------------------------

my $e2e_tok = `'$repo/scripts/jwt' sign --sub trpc-user --sid trpc-sess --env '$env_file'`;
chomp $e2e_tok;
$r = get('/api/trpc/user.me?input=%7B%7D', Authorization => "Bearer $e2e_tok",
         'X-User-Id' => 'spoofed', 'X-Correlation-Id' => 'e2e-trpc');
is $r->{status}, 200, 'a tRPC call reaches the app service';
my $tr = eval { $json->decode($r->{content})->{result}{data}{json} } || {};
is $tr->{uri}, '/api/trpc/user.me?input=%7B%7D', 'with its path and input as sent';
is $tr->{user}, 'trpc-user', 'with the verified user, not the spoofed one';
is $tr->{corr}, 'e2e-trpc', 'and the correlation id';
$r = $http->post("http://127.0.0.1:$port/api/trpc/auth.login", {
    content => 'x' x (1024 * 1024 + 1), headers => { 'Content-Type' => 'application/json' } });
is $r->{status}, 413, 'a tRPC body over 1 MB';
like $r->{content}, qr/^\{"error":\{"json":\{"message":.*"data":\{"code":"PAYLOAD_TOO_LARGE","httpStatus":413,"path":"auth\.login"/,
     '... is a tRPC error';

# --- every answer under /api is the edge's own (issue 13, item 7) --------------

# raw, so that the Host header is the client's and no redirect is followed
sub raw_get {
    my ($target, $host) = @_;
    my $s = IO::Socket::INET->new("127.0.0.1:$port") or die "connect: $!";
    print $s "GET $target HTTP/1.1\r\nHost: $host\r\nConnection: close\r\n\r\n";
    local $/;
    my $resp = <$s> // '';
    my ($head, $body) = split /\r\n\r\n/, $resp, 2;
    my ($status) = ($head // '') =~ m{^HTTP/1\.\d (\d+)};
    return { status => $status // 0, head => $head // '', body => $body // '',
             json => eval { $json->decode($body // '') } };
}

for my $path ('/api/trpc', '/api/trpc?batch=1', '/api/trpcx', '/api/trpc/',
              '/api/trpc/user.me/', '/api/trpc//user.me', '/api/admin', '/api/auth',
              '/api/toolkit', '/api/health/', '/api/nope/', '/api/') {
    my $r = raw_get($path, 'evil.example');
    ok $r->{status} >= 400 && $r->{status} < 500, "$path: the edge's own $r->{status}";
    unlike $r->{head}, qr/^Location:/mi, "$path: no redirect";
    unlike $r->{head} . $r->{body}, qr/evil\.example/, "$path: nothing of the Host header";
    if ($path =~ m{^/api/trpc}) {
        ok ref $r->{json} eq 'HASH' && $r->{json}{error}{json}{data}{code},
           "$path: a tRPC error" or diag $r->{body};
    } else {
        ok ref $r->{json} eq 'HASH' && $r->{json}{error}{code}, "$path: the envelope"
            or diag $r->{body};
    }
}

# --- a session, revoked through the operations API -----------------------

my $token = `'$repo/scripts/jwt' sign --sub e2e-user --sid e2e-sess --iat @{[int(time) - 5]} --env '$env_file'`;
chomp $token;
$r = get('/api/auth/session', Authorization => "Bearer $token");
is $r->{status}, 200, 'a token signed with the env file\'s JWT_SECRET is accepted';
like $r->{content}, qr/"userId":"e2e-user","sessionId":"e2e-sess"/, 'its claims';
$r = $http->post("http://127.0.0.1:$port/api/admin/sessions/e2e-sess/revoke",
                 { headers => { Authorization => 'Bearer e2e-admin-token-e2e-admin-token-0001' } });
is $r->{status}, 200, 'revoke the session';
$r = get('/api/auth/session', Authorization => "Bearer $token");
like $r->{content}, qr/"reason":"REVOKED"/, 'the token is refused';

# --- one whole JSON line per request, over 2 workers -------------------

my $n = 200;
for my $i (1 .. $n) {
    get('/api/health', 'X-Correlation-Id' => "e2e-line-$i");
}
my %seen;
my $all = poll(sub {
    %seen = ();
    for (log_lines()) {
        my $d = eval { $json->decode($_) } or next;
        $seen{$d->{corr}{correlationId}}++
            if ($d->{corr}{correlationId} // '') =~ /^e2e-line-/;
    }
    scalar(keys %seen) == $n;
}, 10);
ok $all, "all $n request lines reached the log";
is scalar(grep { $seen{$_} != 1 } keys %seen), 0, 'each exactly once';
my @bad = grep { !eval { $json->decode($_); 1 } } log_lines();
is scalar @bad, 0, 'every line of the log stream is one JSON object'
    or diag "@bad[0..2]";

my ($sample) = grep { /"correlationId":"e2e-line-1"/ } log_lines();
my $d = $json->decode($sample);
is $d->{level}, 30, 'level 30';
is $d->{evt}, 'http_request', 'evt';
like $d->{msg}, qr{^GET /api/health 200 \d+ms$}, 'msg';
is $d->{req}{path}, '/api/health', 'req.path';
is $d->{pid} =~ /^\d+$/ && $d->{hostname} ne '' && $d->{time} =~ /^\d{13}$/, 1,
   'pid, hostname, time';

# --- uptime counts from the master, across a reload ------------------------

ok poll(sub { ($json->decode(get('/api/health')->{content})->{uptime}) >= 1 }, 5),
   'uptime reaches 1 s';

# a request in flight when the reload comes: its headers are half sent
my $inflight = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port") or die;
print $inflight "GET /api/health/ready HTTP/1.1\r\nHost: x\r\n";
sleep 0.1;
# which worker holds it: the one whose connection count... any old worker
my @old_workers = @workers;

write_env("RATE_LIMIT_MAX_REQUESTS=4242\n");
($rc, $out) = make('reload');
is $rc, 0, 'make reload succeeds' or diag $out;

ok poll(sub { get('/api/info')->{content} =~ /"maxRequests":4242/ }, 10),
   'the reload re-read the env file';
ok poll(sub { grep { /"evt":"config_reloaded".*"changed":\["RATE_LIMIT_MAX_REQUESTS"\]/ }
              log_lines() }, 5),
   'a config_reloaded line names the setting that changed';

print $inflight "Connection: close\r\n\r\n";
my $resp = do { local $/; <$inflight> } // '';
like $resp, qr{^HTTP/1\.1 503 }, 'the in-flight request was answered, not dropped';
like $resp, qr/"status":"not ready","reason":"shutting down"/,
   'by an old worker that reports not ready while shutting down';

my $u = $json->decode(get('/api/health')->{content})->{uptime};
cmp_ok $u, '>=', 1, 'uptime did not restart with the new workers';

# --- a bad value keeps the old configuration serving ------------------------

write_env("RATE_LIMIT_MAX_REQUESTS=4242\nLOG_LEVEL=loud\n");
($rc, $out) = make('reload');
isnt $rc, 0, 'make reload with a bad value fails';
like $out, qr/invalid value "loud" for LOG_LEVEL \(env file, \S+app\.env:\d+\)/,
     'and names the setting, the file and the line';
like get('/api/info')->{content}, qr/"maxRequests":4242/,
     'the old configuration keeps serving';
write_env("RATE_LIMIT_MAX_REQUESTS=4242\n");

# --- the guide's emergency procedures, one command each, live ---------------

sub ctl {
    my (@args) = @_;
    local %ENV = (%ENV, %env);
    delete $ENV{ADMIN_TOKEN};
    open my $fh, '-|', "$repo/scripts/linguamate", @args or die $!;
    my $out = do { local $/; <$fh> } // '';
    close $fh;
    return ($? >> 8, $out);
}

sub on_both {
    my ($path, $want, %h) = @_;
    # fresh connections: both workers answer within a few tries
    my %st;
    $st{ get($path, %h)->{status} }++ for 1 .. 8;
    return join(',', sort keys %st) eq $want;
}

my $actions_before = grep { /"evt":"admin_action"/ } log_lines();

# degradation: maintenance, features off, a longer cache TTL
($rc, $out) = ctl('flags', '{"maintenance":true}');
is $rc, 0, 'scripts/linguamate flags \'{"maintenance":true}\'' or diag $out;
like $out, qr/"maintenance":true/, '... answers the flags';
ok on_both('/api/info', '503'), 'every worker is in maintenance at once';
like get('/api/info')->{content}, qr/"code":"MAINTENANCE"/, '... MAINTENANCE';
ok on_both('/api/health', '200'), 'health still answers';
ok on_both('/api/health/ready', '503'), 'ready says not ready: the balancer drains';
($rc, $out) = ctl('flags', '{"features":{"chat":false,"analytics":false}}');
is $rc, 0, 'chat and analytics off' or diag $out;
($rc, $out) = ctl('flags', '{"cacheTtlSeconds":300}');
is $rc, 0, 'cache TTL 300' or diag $out;
($rc, $out) = ctl('cache-purge');
is $rc, 0, 'scripts/linguamate cache-purge' or diag $out;
like $out, qr/"purged":"all"/, '... purges every cached tRPC answer';
($rc, $out) = ctl('flags', '{"maintenance":false}');
is $rc, 0, 'maintenance off again';
ok on_both('/api/info', '200'), 'serving again';
is get('/api/info')->{headers}{'cache-control'}, 'public, max-age=300',
   'with the new cache TTL';
$r = $http->post("http://127.0.0.1:$port/api/toolkit/v1/text/llm",
                 { content => '{}', headers => { 'Content-Type' => 'application/json' } });
is $r->{status}, 503, 'the LLM route is off';
like $r->{content}, qr/"code":"FEATURE_DISABLED".*"feature":"chat"/s, '... FEATURE_DISABLED chat';
$r = $http->post("http://127.0.0.1:$port/api/analytics/events",
                 { content => '{"events":[{"name":"x","time":1}]}',
                   headers => { 'Content-Type' => 'application/json' } });
is $r->{status}, 503, 'the analytics route is off';
like $r->{content}, qr/"code":"FEATURE_DISABLED".*"feature":"analytics"/s,
     '... FEATURE_DISABLED analytics';
($rc, $out) = ctl('flags', 'not json');
isnt $rc, 0, 'a bad flags body fails the command';
like $out, qr/VALIDATION_ERROR/, '... and says why';

# security incident: revoke every session, strict mode, more logging
($rc, $out) = ctl('admin', 'POST', '/sessions/revoke-all');
is $rc, 0, 'scripts/linguamate admin POST /sessions/revoke-all' or diag $out;
($rc, $out) = ctl('flags', '{"strictMode":true,"logLevel":"debug"}');
is $rc, 0, 'strict mode and debug logging' or diag $out;
($rc, $out) = ctl('state');
is $rc, 0, 'scripts/linguamate state';
my $st = eval { $json->decode($out) } || {};
is_deeply [ map { $st->{flags}{$_} ? 1 : 0 } qw(maintenance strictMode) ], [0, 1],
   'the state shows strict mode';
is $st->{flags}{logLevel}, 'debug', '... and the log level';
$r = $http->post("http://127.0.0.1:$port/api/ingest/logs",
                 { content => '{}', headers => { 'Content-Type' => 'application/json' } });
is $r->{status}, 401, 'strict mode: the ingest route requires a token';
my $actions = poll(sub {
    (grep { /"evt":"admin_action"/ } log_lines()) - $actions_before >= 7 }, 5);
ok $actions, 'every step is recorded as an admin_action line';

# back to normal, except the cache TTL: kept through stop/start
($rc, $out) = ctl('flags', '{"features":{"chat":null,"analytics":null},'
                  . '"strictMode":null,"logLevel":null}');
is $rc, 0, 'the live changes cleared';

# --- make stop ---------------------------------------------------------------

($rc, $out) = make('stop');
is $rc, 0, 'make stop succeeds' or diag $out;
ok !-d "/proc/$master", 'the master is gone';
($rc) = make('status');
isnt $rc, 0, 'make status says stopped';

($rc, $out) = make('start');
is $rc, 0, 'make start again' or diag $out;
like get('/api/auth/session', Authorization => "Bearer $token")->{content},
     qr/"reason":"REVOKED"/, 'the revocation survived stop/start (STATE_DIR)';
is get('/api/info')->{headers}{'cache-control'}, 'public, max-age=300',
   'the live cache TTL survived stop/start (STATE_DIR)';
($rc, $out) = make('stop');
is $rc, 0, 'make stop';

# --- production refuses to start without a secret ---------------------------

write_env("NODE_ENV=production\nJWT_SECRET=\n");
($rc, $out) = make('start');
isnt $rc, 0, 'production without JWT_SECRET does not start';
like $out, qr/JWT_SECRET is not set in production/, 'and says why';

# --- make run: foreground, Ctrl-C stops it -----------------------------------

write_env();
my $pid = fork // die;
if ($pid == 0) {
    %ENV = (%ENV, %env);
    setpgrp(0, 0);
    open STDOUT, '>', "$tmp/run.out" or die $!;
    open STDERR, '>', "$tmp/run.err" or die $!;
    exec 'make', '-s', '-C', $repo, 'run';
}
ok poll(sub { (get('/api/health/live')->{status} // 0) == 200 }, 20),
   'make run serves in the foreground';
ok poll(sub { `cat $tmp/run.out` =~ /"evt":"http_request","msg":"GET \/api\/health\/live 200/ }, 5),
   'its request log goes to standard output (LOG_FILE default)';
kill 'INT', -$pid;
my $gone = poll(sub { waitpid($pid, WNOHANG) == $pid }, 10);
ok $gone, 'Ctrl-C (SIGINT) stops it';
ok !(get('/api/health/live')->{status} == 200), 'nothing serves afterwards';

$toolkit->stop;
done_testing();
