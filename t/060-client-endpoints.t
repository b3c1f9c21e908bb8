# vim:set ft= ts=4 sw=4 et fdm=marker:
#
# The app's telemetry endpoints, POST /api/ingest/logs and POST
# /api/analytics/events, on a real nginx with 2 workers: records written
# as pino lines at their level with the right correlation, security
# records, redaction, every validation path with its details, the time
# window of sig.ts, the HMAC over the bytes as sent, LOG_SIGNING_KEY
# unset, size, type and method limits, hostile bodies, the event log (and
# its reopening on USR1) and the counters in /api/metrics.  Log lines
# and answers are read with a JSON parser.

use strict;
use warnings;
use lib 't/lib';
use Test::More;
use JSON::PP;
use HTTP::Tiny;
use POSIX qw(strftime);
use Time::HiRes qw(time sleep);
use Digest::SHA qw(hmac_sha256_hex);
use Linguamate::Server;
use Linguamate::Prom;
use Linguamate::Token;

my $json = JSON::PP->new->canonical->utf8;
my $key = 'log-signing-key-for-the-suite-0001';

my $server_conf = <<'_SERVER_';
        error_page 400 401 404 405 413 415 500 /_linguamate/error;
        location = /_linguamate/error { internal; linguamate_endpoint error; }
        client_max_body_size 1m;
        client_body_buffer_size 1m;
        location = /api/ingest/logs {
            linguamate_route ingest_logs;
            linguamate_auth optional;
            linguamate_endpoint ingest_logs;
        }
        location = /api/analytics/events {
            linguamate_route analytics_events;
            linguamate_auth optional;
            linguamate_endpoint analytics_events;
        }
        location = /api/small/logs {
            client_body_buffer_size 1k;
            linguamate_endpoint ingest_logs;
        }
        location = /api/metrics { linguamate_endpoint metrics; }
        location = /api/health { linguamate_endpoint health; }
_SERVER_

# "signed": LOG_SIGNING_KEY and an event log file
my $srv = Linguamate::Server->new(workers => 2);
$srv->configure(<<"_HTTP_", $server_conf);
    linguamate_jwt_secret $SECRET;
    linguamate_log_file logs/events.log;
    linguamate_log_level trace;
    linguamate_log_signing_key $key;
    linguamate_event_log logs/analytics.log;
_HTTP_
$srv->start;

# "plain": no LOG_SIGNING_KEY, events to the server log
my $plain = Linguamate::Server->new(workers => 2);
$plain->configure(<<"_HTTP_", $server_conf);
    linguamate_jwt_secret $SECRET;
    linguamate_log_file logs/events.log;
    linguamate_log_level trace;
_HTTP_
$plain->start;

my $http = HTTP::Tiny->new(timeout => 20, keep_alive => 0);

# ISO-8601 of epoch milliseconds, and of epoch seconds
sub iso_ms {
    my ($ms) = @_;
    return strftime('%Y-%m-%dT%H:%M:%S', gmtime int($ms / 1000))
           . sprintf('.%03dZ', $ms % 1000);
}

sub iso { iso_ms(int($_[0] * 1000)) }

sub record {
    my (%o) = @_;
    return { ts => iso(time), lvl => 'INFO', cat => 'app', evt => 'screen_view',
             msg => 'hello', %o };
}

# the body as the app sends it: the logs text, the sig around it
sub batch {
    my (%o) = @_;
    my $logs = $o{logs_text} // $json->encode($o{logs} // [record()]);
    my $ts = $o{ts} // iso(time);
    my $hmac = $o{hmac} // hmac_sha256_hex(qq({"items":$logs,"ts":"$ts"}),
                                           $o{key} // $key);
    return qq({"logs":$logs,"sig":{"hmac":"$hmac","algo":")
           . ($o{algo} // 'HMAC-SHA256') . qq(","ts":"$ts"}});
}

sub post {
    my ($s, $path, $body, %h) = @_;
    my $r = $http->post($s->url($path), {
        content => $body,
        headers => { 'Content-Type' => 'application/json', %h },
    });
    $r->{json} = eval { $json->decode($r->{content}) };
    return $r;
}

# the log lines a request wrote, by its correlation id
sub lines {
    my ($s, $file) = @_;
    my @out;
    for (split /\n/, $s->slurp($file // 'logs/events.log')) {
        my $d = eval { $json->decode($_) };
        push @out, $d // { NOT_JSON => $_ };
    }
    return @out;
}

sub fields { [ map { $_->{field} } @{ $_[0]{json}{error}{details} // [] } ] }

sub metrics {
    my ($s) = @_;
    my $r = $http->get($s->url('/api/metrics'));
    return ($r->{content}, prom_samples($r->{content}));
}

my @workers = $srv->worker_pids;
my ($m0_text, $m0) = metrics($srv);
is promtool_check($m0_text), "promtool ok\n", 'promtool accepts the exposition';
is $m0->{'linguamate_client_logs_total{level="security"}'}, 0,
   'client counters start at 0';

# --- a valid batch -----------------------------------------------------------

my $r = post($srv, '/api/ingest/logs', batch(logs => [
    record(lvl => 'INFO', evt => 'lesson_started', msg => 'started c-valid',
           data => { lesson => 12, words => ['hola', 'adios'] }),
    record(lvl => 'WARN', evt => 'slow_render', msg => 'slow c-valid',
           corr => { correlationId => 'app-corr-7', sessionId => 's-1' }),
    record(lvl => 'DEBUG', evt => 'tap', msg => 'tap c-valid',
           device => { os => 'ios', version => '17.2' },
           user => { id => 'u-1' }, req => { path => '/x' }),
]), 'X-Correlation-Id' => 'c-valid');
is $r->{status}, 200, 'a valid signed batch is 200';
is_deeply $r->{json}, { success => JSON::PP::true, count => 3 },
          '{"success":true,"count":3}';
like $r->{headers}{'content-type'}, qr{^application/json}, 'as JSON';

my @l = grep { ($_->{source} // '') eq 'client' && $_->{msg} =~ /c-valid$/ }
        lines($srv);
is scalar @l, 3, 'one log line per record';
is_deeply [ map { $_->{level} } @l ], [30, 40, 20], 'each at its level';
is_deeply [ map { $_->{evt} } @l ], ['lesson_started', 'slow_render', 'tap'],
          'evt is the record\'s';
is $l[0]{corr}{correlationId}, 'c-valid',
   'a record without corr carries the request\'s correlation id';
is_deeply $l[1]{corr}, { correlationId => 'app-corr-7', sessionId => 's-1' },
          'a record with corr keeps its own';
is_deeply $l[0]{data}, { lesson => 12, words => ['hola', 'adios'] },
          'data is carried along';
is_deeply [ @{ $l[2] }{qw(device user req)} ],
          [ { os => 'ios', version => '17.2' }, { id => 'u-1' }, { path => '/x' } ],
          'device, user and req are carried along';
is $l[0]{cat}, 'app', 'cat is the record\'s';
is $l[0]{lvl}, 'INFO', 'and lvl';
like $l[0]{clientTs}, qr/^\d{4}-\d\d-\d\dT/, 'and its ts as clientTs';
ok !exists $l[0]{userId}, 'no user without a token';
ok((grep { $_->{hostname} && $_->{pid} && $_->{time} =~ /^\d{13}$/ } @l) == 3,
   'pino fields on every line');

# --- every level, SECURITY ----------------------------------------------------

my %want = (TRACE => 10, DEBUG => 20, INFO => 30, NOTICE => 30, WARN => 40,
            ERROR => 50, FATAL => 60, SECURITY => 40);
$r = post($srv, '/api/ingest/logs', batch(logs => [
    map { record(lvl => $_, cat => 'auth', msg => "lvl $_ c-levels") } sort keys %want
]), 'X-Correlation-Id' => 'c-levels');
is $r->{status}, 200, 'a batch of every level';
@l = grep { ($_->{msg} // '') =~ /^lvl (\w+) c-levels$/ } lines($srv);
is scalar @l, 8, 'eight lines';
is_deeply { map { $_->{msg} =~ /^lvl (\w+)/; ($1 => $_->{level}) } @l }, \%want,
          'TRACE 10, DEBUG 20, INFO and NOTICE 30, WARN 40, ERROR 50, '
          . 'FATAL 60, SECURITY 40';
my ($sec) = grep { $_->{lvl} eq 'SECURITY' } @l;
ok $sec->{security}, 'a SECURITY record is a security event';
is $sec->{cat}, 'security', 'in cat "security"';
is $sec->{clientCat}, 'auth', 'its own cat kept as clientCat';
ok !(grep { $_->{security} } grep { $_->{lvl} ne 'SECURITY' } @l),
   'no other record is';

# --- a verified token passes its user on --------------------------------------

$r = post($srv, '/api/ingest/logs', batch(logs => [record(msg => 'c-user')]),
          Authorization => 'Bearer ' . token(sub => 'user-42', sid => 's-42'));
is $r->{status}, 200, 'with a bearer token';
my ($u) = grep { ($_->{msg} // '') eq 'c-user' } lines($srv);
is $u->{userId}, 'user-42', 'the token\'s user is on the line';

# --- redaction ----------------------------------------------------------------

my $jwt = token(sub => 'victim');
my %secrets = (
    password => 'hunter2-pass-value', token => 'tok-deep-value',
    apikey => 'apikey-value-123', jwt => $jwt,
    bearer => 'Bearer abcdefghijklmnopqrstuvwxyz',
    cookie => 'sid=cookie-value-77', pin => '8642', card => '4111111111111111',
);
$r = post($srv, '/api/ingest/logs', batch(logs => [record(
    msg => 'c-redact',
    data => {
        password => $secrets{password},
        nested => { deeper => { access_token => $secrets{token} },
                    list => [ { 'API-Key' => $secrets{apikey} } ] },
        note => $secrets{jwt},
        header => $secrets{bearer},
        'Set-Cookie' => $secrets{cookie},
        PIN => $secrets{pin},
        pinned => 'kept',
        creditCard => $secrets{card},
        plain => 'kept too',
    },
    user => { id => 'u-9', Authorization => 'Basic xyz' },
    corr => { correlationId => 'c-redact', refreshToken => $secrets{token} },
)]));
is $r->{status}, 200, 'a record full of secrets is accepted';
my ($red) = grep { ($_->{msg} // '') eq 'c-redact' } lines($srv);
is $red->{data}{password}, '[REDACTED]', 'password';
is $red->{data}{nested}{deeper}{access_token}, '[REDACTED]', 'a token key, nested';
is $red->{data}{nested}{list}[0]{'API-Key'}, '[REDACTED]', 'an API key in an array';
is $red->{data}{note}, '[REDACTED]', 'a JWT-looking value under any key';
is $red->{data}{header}, '[REDACTED]', 'a Bearer value';
is $red->{data}{'Set-Cookie'}, '[REDACTED]', 'a cookie';
is $red->{data}{PIN}, '[REDACTED]', 'PIN';
is $red->{data}{creditCard}, '[REDACTED]', 'a card number';
is $red->{data}{pinned}, 'kept', '"pinned" is not "pin"';
is $red->{data}{plain}, 'kept too', 'other values are kept';
is $red->{user}{Authorization}, '[REDACTED]', 'in user too';
is $red->{corr}{refreshToken}, '[REDACTED]', 'and in corr';
my $all = $srv->slurp('logs/events.log') . $srv->slurp('logs/error.log');
for my $k (sort keys %secrets) {
    unlike $all, qr/\Q$secrets{$k}\E/, "the $k value never reaches a log";
}

$r = post($srv, '/api/ingest/logs',
          batch(logs => [record(msg => "failed with $jwt")]));
is $r->{status}, 200, 'a message holding a token';
unlike $srv->slurp('logs/events.log'), qr/\Q$jwt\E/, 'is redacted too';

# --- bounded lines ------------------------------------------------------------

$r = post($srv, '/api/ingest/logs', batch(logs => [record(
    msg => 'c-big ' . ('m' x 100000),
    evt => "odd\"evt\\\n\x{e9}",
    data => { map { ("key$_" => ('v' x 300) . "\x{1F600}\"") } 1 .. 2000 },
    device => { list => [ (1) x 5000 ] },
)]));
is $r->{status}, 200, 'a huge record is accepted';
my ($big) = grep { ($_->{msg} // '') =~ /^c-big/ } lines($srv);
ok $big, 'and written as one valid JSON line';
my ($big_raw) = grep { /c-big/ } split /\n/, $srv->slurp('logs/events.log');
cmp_ok length($big_raw), '<=', 4096, 'of at most 4 KB';
ok $big->{truncated} || $big->{data}{_truncated}, 'marked as truncated';
is $big->{evt}, "odd\"evt\\\n\x{e9}", 'an evt with quotes and controls survives';
ok !(grep { exists $_->{NOT_JSON} } lines($srv)), 'every line so far is JSON';

# --- size, type, method -------------------------------------------------------

$r = post($srv, '/api/ingest/logs', 'x' x (1024 * 1024 + 1));
is $r->{status}, 413, 'a body of 1 MB + 1 is 413';
is $r->{json}{error}{code}, 'PAYLOAD_TOO_LARGE', 'in the envelope';

my @chunks = (('[' . ('1,' x 50000) . '1]') x 11);
$r = $http->post($srv->url('/api/ingest/logs'), {
    headers => { 'Content-Type' => 'application/json' },
    content => sub { shift @chunks },
});
is $r->{status}, 413, 'a chunked body over 1 MB is 413';

$r = post($srv, '/api/small/logs', batch(logs => [ map { record() } 1 .. 20 ]));
is $r->{status}, 413, 'a body buffered to a temporary file is 413';
is eval { $json->decode($r->{content})->{error}{code} }, 'PAYLOAD_TOO_LARGE',
   'in the envelope';

$r = post($srv, '/api/ingest/logs', batch(), 'Content-Type' => 'text/plain');
is $r->{status}, 415, 'text/plain is 415';
is $r->{json}{error}{code}, 'UNSUPPORTED_MEDIA_TYPE', 'UNSUPPORTED_MEDIA_TYPE';
$r = $http->post($srv->url('/api/analytics/events'), { content => '{}' });
is $r->{status}, 415, 'no Content-Type is 415';
$r = post($srv, '/api/ingest/logs', batch(),
          'Content-Type' => 'Application/JSON; charset=utf-8');
is $r->{status}, 200, 'application/json with a charset is fine';
$r = post($srv, '/api/ingest/logs', batch(),
          'Content-Type' => 'application/jsonp');
is $r->{status}, 415, 'application/jsonp is not JSON';

$r = $http->get($srv->url('/api/ingest/logs'));
is $r->{status}, 405, 'GET is 405';
is $r->{headers}{allow}, 'POST', 'with Allow: POST';
$r = $http->request('PUT', $srv->url('/api/analytics/events'), { content => '{}' });
is $r->{status}, 405, 'PUT on analytics is 405';

$r = post($srv, '/api/ingest/logs', '');
is $r->{status}, 400, 'an empty body is 400';
is_deeply fields($r), ['body'], 'details name the body';

# --- validation: details ------------------------------------------------------

my @cases = (
    [ 'logs missing', '{"sig":{"hmac":"","algo":"HMAC-SHA256","ts":"' . iso(time) . '"}}',
      ['logs'] ],
    [ 'logs not an array', batch(logs_text => '{"a":1}'), ['logs'] ],
    [ 'logs empty', batch(logs_text => '[]'), ['logs'] ],
    [ '101 records', batch(logs => [ map { record() } 1 .. 101 ]), ['logs'] ],
    [ 'a record not an object', batch(logs_text => '[1]'), ['logs[0]'] ],
    [ 'lvl missing', batch(logs => [ do { my $x = record(); delete $x->{lvl}; $x } ]),
      ['logs[0].lvl'] ],
    [ 'lvl not in the list', batch(logs => [ record(lvl => 'LOUD') ]), ['logs[0].lvl'] ],
    [ 'lvl lower case', batch(logs => [ record(lvl => 'info') ]), ['logs[0].lvl'] ],
    [ 'cat a number', batch(logs => [ record(cat => 7) ]), ['logs[0].cat'] ],
    [ 'evt missing', batch(logs => [ do { my $x = record(); delete $x->{evt}; $x } ]),
      ['logs[0].evt'] ],
    [ 'evt empty', batch(logs => [ record(evt => '') ]), ['logs[0].evt'] ],
    [ 'msg missing', batch(logs => [ do { my $x = record(); delete $x->{msg}; $x } ]),
      ['logs[0].msg'] ],
    [ 'ts missing', batch(logs => [ do { my $x = record(); delete $x->{ts}; $x } ]),
      ['logs[0].ts'] ],
    [ 'data a string', batch(logs => [ record(data => 'x') ]), ['logs[0].data'] ],
    [ 'device an array', batch(logs => [ record(device => []) ]), ['logs[0].device'] ],
    [ 'corr a number', batch(logs => [ record(corr => 5) ]), ['logs[0].corr'] ],
    [ 'sig missing', '{"logs":' . $json->encode([record()]) . '}', ['sig'] ],
    [ 'sig.algo', batch(algo => 'HMAC-SHA1'), ['sig.algo'] ],
    [ 'sig.ts not a time', batch(ts => 'yesterday'), ['sig.ts'] ],
    [ 'sig.hmac a number', '{"logs":' . $json->encode([record()])
      . ',"sig":{"hmac":1,"algo":"HMAC-SHA256","ts":"' . iso(time) . '"}}', ['sig.hmac'] ],
    [ 'several problems at once',
      batch(logs => [ record(lvl => 'X'), record(), record(evt => 3, data => 1) ]),
      ['logs[0].lvl', 'logs[2].evt', 'logs[2].data'] ],
    [ 'the body an array', '[1,2]', ['body'] ],
    [ 'not JSON', '{"logs":', ['body'] ],
    [ 'invalid UTF-8', batch(logs_text => qq([{"ts":"x","lvl":"INFO","cat":"c","evt":"e","msg":"\xff\xfe"}])),
      ['body'] ],
    [ 'nesting 100000 deep', '{"logs":' . ('[' x 100000) . (']' x 100000) . '}', ['body'] ],
    [ 'a number of 1e400', batch(logs => [ record(data => { n => 1 }) ]) =~ s/"n":1/"n":1e400/r,
      ['body'] ],
    [ 'logs twice', batch() =~ s/^\{/{"logs":[],/r, ['logs'] ],
    [ 'a key twice in a record', batch(logs_text => '[{"ts":"t","lvl":"INFO","lvl":"WARN",'
      . '"cat":"c","evt":"e","msg":"m"}]'), ['logs[0].lvl'] ],
    [ 'a NUL byte', batch(logs => [ record() ]) =~ s/hello/hel\0lo/r,
      ['body'] ],
);
my $rej0 = (metrics($srv))[1];
for my $c (@cases) {
    my ($name, $body, $fields) = @$c;
    $r = post($srv, '/api/ingest/logs', $body);
    is $r->{status}, 400, "$name: 400";
    is $r->{json}{error}{code}, 'VALIDATION_ERROR', "$name: VALIDATION_ERROR";
    is_deeply fields($r), $fields, "$name: details name @$fields"
        or diag $r->{content};
}
my $rej1 = (metrics($srv))[1];
is $rej1->{'linguamate_client_batches_rejected_total{endpoint="ingest",reason="validation"}'}
   - $rej0->{'linguamate_client_batches_rejected_total{endpoint="ingest",reason="validation"}'},
   scalar @cases, 'each refusal counted as "validation"';

$r = post($srv, '/api/ingest/logs',
          batch(logs => [ map { record(lvl => 'BAD') } 1 .. 100 ]));
is scalar @{ $r->{json}{error}{details} }, 20, 'at most 20 problems are listed';

is_deeply [ $srv->worker_pids ], \@workers, 'no worker died on any of it';
is $http->get($srv->url('/api/health'))->{status}, 200, 'and they still answer';

# --- the time window of sig.ts ------------------------------------------------

$r = post($srv, '/api/ingest/logs', batch(ts => iso(time - 600)));
is $r->{status}, 400, 'sig.ts 10 minutes old is refused';
is_deeply fields($r), ['sig.ts'], 'as sig.ts';
$r = post($srv, '/api/ingest/logs', batch(ts => iso(time + 600)));
is $r->{status}, 400, 'sig.ts 10 minutes ahead too';
$r = post($srv, '/api/ingest/logs', batch(ts => iso(time - 240)));
is $r->{status}, 200, 'sig.ts 4 minutes old is fine';
$r = post($srv, '/api/ingest/logs',
          batch(ts => strftime('%Y-%m-%dT%H:%M:%S+02:00', gmtime(time + 7200))));
is $r->{status}, 200, 'an offset form of now is fine';

# --- the signature ------------------------------------------------------------

$r = post($srv, '/api/ingest/logs', batch(hmac => 'ab' x 32));
is $r->{status}, 401, 'a wrong hmac is 401';
is $r->{json}{error}{code}, 'UNAUTHORIZED', 'UNAUTHORIZED';
is $r->{json}{error}{reason}, 'BAD_SIGNATURE', 'reason BAD_SIGNATURE';
$r = post($srv, '/api/ingest/logs', batch(key => 'some-other-key'));
is $r->{status}, 401, 'an hmac under another key is 401';
$r = post($srv, '/api/ingest/logs', batch(hmac => ''));
is $r->{status}, 401, 'an empty hmac is 401';
$r = post($srv, '/api/ingest/logs', batch() =~ s/"hmac":"([0-9a-f]+)"/'"hmac":"' . uc($1) . '"'/er);
is $r->{status}, 401, 'upper-case hex is 401 (lower-case is the format)';

my $ts = iso(time);
my $spaced = qq([ { "ts" : "$ts", "lvl" : "INFO" ,\n "cat":"app", "evt":"e", "msg":"c-spaced" } ]);
$r = post($srv, '/api/ingest/logs', batch(logs_text => $spaced, ts => $ts));
is $r->{status}, 200, 'a body with white space, signed over the bytes as sent';
my $compact = $json->encode($json->decode($spaced));
$r = post($srv, '/api/ingest/logs', batch(logs_text => $spaced, ts => $ts,
    hmac => hmac_sha256_hex(qq({"items":$compact,"ts":"$ts"}), $key)));
is $r->{status}, 401, 'signed over a re-serialised form instead: 401';

my $escaped = batch(logs_text => '[' . $json->encode(record(msg => "caf\x{e9} \\u00e9")) . ']');
$r = post($srv, '/api/ingest/logs', $escaped);
is $r->{status}, 200, 'escapes and UTF-8 are signed as sent';

$r = post($srv, '/api/ingest/logs', batch() =~ s/^\{"logs"/{"\\u006cogs"/r);
is $r->{status}, 401, 'a "logs" key written with an escape cannot be verified: 401';

$r = post($plain, '/api/ingest/logs', batch(hmac => 'not-checked'));
is $r->{status}, 200, 'without LOG_SIGNING_KEY the hmac is not checked';
$r = post($plain, '/api/ingest/logs', batch(ts => iso(time - 600)));
is $r->{status}, 400, 'but the time window is';

# --- analytics ----------------------------------------------------------------

my $ms = int(time * 1000) - 5000;
$r = post($srv, '/api/analytics/events', $json->encode({ events => [
    { name => 'lesson_completed', time => iso(time),
      properties => { lesson => 3, score => 0.9, password => 'an-event-secret' } },
    { name => 'app:open.v2-x', time => $ms },
] }), 'X-Correlation-Id' => 'c-events',
      Authorization => 'Bearer ' . token(sub => 'user-7'));
is $r->{status}, 200, 'a valid analytics batch is 200';
is_deeply $r->{json}, { success => JSON::PP::true, count => 2 }, 'count 2';
my @ev = grep { ($_->{correlationId} // '') eq 'c-events' } lines($srv, 'logs/analytics.log');
is scalar @ev, 2, 'two lines in the event log';
is_deeply [ map { $_->{name} } @ev ], ['lesson_completed', 'app:open.v2-x'], 'names';
is $ev[0]{userId}, 'user-7', 'the token\'s user';
is_deeply $ev[0]{properties}, { lesson => 3, score => 0.9, password => '[REDACTED]' },
          'properties, redacted';
is $ev[1]{eventTime}, iso_ms($ms), 'epoch ms as ISO-8601';
like $ev[0]{time}, qr/^\d{13}$/, 'the time it was received';
unlike $srv->slurp('logs/analytics.log'), qr/an-event-secret/, 'no secret in the event log';

$r = post($plain, '/api/analytics/events', $json->encode({ events => [
    { name => 'quiz_started', time => iso(time) } ] }), 'X-Correlation-Id' => 'c-ev-plain');
is $r->{status}, 200, 'without an event log';
my ($pe) = grep { ($_->{evt} // '') eq 'analytics_event' } lines($plain);
is $pe->{level}, 30, 'the event is an info line of the server log';
is $pe->{name}, 'quiz_started', 'with its name';
is $pe->{corr}{correlationId}, 'c-ev-plain', 'and the correlation id';

my @bad_events = (
    [ 'events missing', {}, ['events'] ],
    [ 'events empty', { events => [] }, ['events'] ],
    [ '101 events', { events => [ map { { name => 'e', time => 1 } } 1 .. 101 ] }, ['events'] ],
    [ 'name with a space', { events => [ { name => 'a b', time => 1 } ] }, ['events[0].name'] ],
    [ 'name of 129', { events => [ { name => 'n' x 129, time => 1 } ] }, ['events[0].name'] ],
    [ 'name missing', { events => [ { time => 1 } ] }, ['events[0].name'] ],
    [ 'time a word', { events => [ { name => 'e', time => 'soon' } ] }, ['events[0].time'] ],
    [ 'time negative', { events => [ { name => 'e', time => -5 } ] }, ['events[0].time'] ],
    [ 'time fractional', { events => [ { name => 'e', time => 1.5 } ] }, ['events[0].time'] ],
    [ 'properties an array', { events => [ { name => 'e', time => 1, properties => [] } ] },
      ['events[0].properties'] ],
    [ 'two bad events', { events => [ { name => '', time => 1 }, 7 ] },
      ['events[0].name', 'events[1]'] ],
);
for my $c (@bad_events) {
    my ($name, $body, $fields) = @$c;
    $r = post($srv, '/api/analytics/events', $json->encode($body));
    is $r->{status}, 400, "analytics, $name: 400";
    is_deeply fields($r), $fields, "analytics, $name: details @$fields"
        or diag $r->{content};
}

# --- the event log is reopened on USR1 ----------------------------------------

rename $srv->dir . '/logs/analytics.log', $srv->dir . '/logs/analytics.log.1';
kill 'USR1', $srv->{pid};
ok $srv->poll(sub { -e $srv->dir . '/logs/analytics.log' }, 5), 'USR1 reopens the event log';
sleep 0.3;
post($srv, '/api/analytics/events', $json->encode({ events => [
    { name => 'after_rotation', time => 1 } ] }));
like $srv->slurp('logs/analytics.log'), qr/after_rotation/, 'new events go to the new file';

# --- metrics ------------------------------------------------------------------

my (undef, $before) = metrics($srv);
post($srv, '/api/ingest/logs', batch(logs => [
    record(lvl => 'ERROR'), record(lvl => 'ERROR'), record(lvl => 'SECURITY'),
    record(lvl => 'NOTICE') ]));
post($srv, '/api/ingest/logs', batch(hmac => 'cd' x 32));
post($srv, '/api/ingest/logs', batch(ts => iso(time - 900)));
post($srv, '/api/ingest/logs', batch(logs => [ record(lvl => 'NOPE') ]));
post($srv, '/api/ingest/logs', 'x' x (1024 * 1024 + 10));
post($srv, '/api/analytics/events', $json->encode({ events => [
    map { { name => "e$_", time => 1 } } 1 .. 3 ] }));
post($srv, '/api/analytics/events', '{"events":[]}');
post($srv, '/api/analytics/events', '{"events":1}', 'Content-Type' => 'text/plain');
my ($after_text, $after) = metrics($srv);
is promtool_check($after_text), "promtool ok\n", 'promtool still accepts it';
my %delta = (
    'linguamate_client_logs_total{level="error"}' => 2,
    'linguamate_client_logs_total{level="security"}' => 1,
    'linguamate_client_logs_total{level="notice"}' => 1,
    'linguamate_client_logs_total{level="info"}' => 0,
    'linguamate_analytics_events_total' => 3,
    'linguamate_client_batches_rejected_total{endpoint="ingest",reason="signature"}' => 1,
    'linguamate_client_batches_rejected_total{endpoint="ingest",reason="skew"}' => 1,
    'linguamate_client_batches_rejected_total{endpoint="ingest",reason="validation"}' => 1,
    'linguamate_client_batches_rejected_total{endpoint="analytics",reason="validation"}' => 2,
    'linguamate_client_batches_rejected_total{endpoint="analytics",reason="signature"}' => 0,
);
for my $k (sort keys %delta) {
    is(($after->{$k} // 'none') - ($before->{$k} // 0), $delta{$k}, "$k grew by $delta{$k}");
}

# --- LOG_LEVEL filters client records; counters survive a reload ------------

my (undef, $p0) = metrics($plain);
$plain->configure(<<"_HTTP_", $server_conf);
    linguamate_jwt_secret $SECRET;
    linguamate_log_file logs/events.log;
    linguamate_log_level warn;
_HTTP_
ok $plain->reload, 'reload at LOG_LEVEL warn';
my (undef, $p1) = metrics($plain);
my $info = 'linguamate_client_logs_total{level="info"}';
cmp_ok $p0->{$info}, '>', 0, 'a count before the reload';
is $p1->{$info}, $p0->{$info}, 'is kept across it';
$r = post($plain, '/api/ingest/logs', batch(logs => [
    record(lvl => 'INFO', msg => 'c-filtered-info'),
    record(lvl => 'ERROR', msg => 'c-filtered-error') ]));
is $r->{json}{count}, 2, 'both records are taken';
is scalar(grep { ($_->{msg} // '') eq 'c-filtered-info' } lines($plain)), 0,
   'the INFO one is below LOG_LEVEL and not written';
is scalar(grep { ($_->{msg} // '') eq 'c-filtered-error' } lines($plain)), 1,
   'the ERROR one is';
my (undef, $p2) = metrics($plain);
is $p2->{$info} - $p1->{$info}, 1, 'both are counted';

unlike $srv->slurp('logs/error.log') . $plain->slurp('logs/error.log'),
       qr/\[(alert|crit|emerg)\]|exited on signal/, 'no alert, no crash';

# workers do not inherit the sanitizers' environment: their reports (SANITIZE=1)
# land on nginx's stderr
unlike $srv->slurp('logs/stderr.log') . $plain->slurp('logs/stderr.log'),
       qr/runtime error|Sanitizer/, 'no sanitizer report';

done_testing();
