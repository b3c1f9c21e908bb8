# vim:set ft= ts=4 sw=4 et fdm=marker:
#
# The AI toolkit proxy in front of a fake toolkit: routes and upstream
# paths, the API key and correlation headers, retries with backoff on 5xx,
# 429, connect errors and timeouts, 4xx untouched, the 503/504 envelopes,
# speech-to-text checks, streaming, the breaker, and /api/toolkit/health.

use strict;
use warnings;
use lib 't/lib';
use Test::More;
use JSON::PP;
use HTTP::Tiny;
use IO::Socket::INET;
use Socket ();
use IO::Compress::Gzip ();
use IO::Uncompress::Gunzip ();
use Time::HiRes qw(time sleep);
use Linguamate::Server;
use Linguamate::Upstream;

my $json = JSON::PP->new->canonical;
my $key = 'tk-secret-key-0123456789';
my $srv = Linguamate::Server->new(workers => 2);
my $dir = $srv->dir;

# the fake toolkit: its behaviour per request comes from $dir/script
# (one word per line, consumed in order; "ok" once the script is empty)
sub script { open my $f, '>', "$dir/script" or die; print $f map { "$_\n" } @_; close $f }
sub seen {
    open my $f, '<', "$dir/seen" or return ();
    return map { $json->decode($_) } <$f>;
}
sub clear_seen { unlink "$dir/seen" }

my $up = Linguamate::Upstream->new(sub {
    my ($method, $uri, $h, $body) = @_;
    local $/ = "\n";
    open my $s, '<', "$dir/script";
    my @lines = $s ? <$s> : ();
    close $s if $s;
    my $step = shift(@lines) // "ok\n";
    chomp $step;
    open my $w, '>', "$dir/script"; print $w @lines; close $w;
    open my $l, '>>', "$dir/seen";
    print $l $json->encode({ method => $method, uri => $uri, auth => $h->{authorization},
                             rid => $h->{'x-request-id'}, cid => $h->{'x-correlation-id'},
                             uid => $h->{'x-user-id'}, len => length $body,
                             ctype => $h->{"content-type"}, step => $step }), "\n";
    close $l;
    return (500, '{"e":"boom"}') if $step eq '500';
    if ($step eq 'gz') {
        IO::Compress::Gzip::gzip(\'{"zipped":true}' => \my $z);
        return (200, $z, { 'Content-Encoding' => 'gzip' });
    }
    # hang up without an answer (reset by peer / premature close)
    return ('RAW', sub { my $c = shift; setsockopt($c, Socket::SOL_SOCKET(), Socket::SO_LINGER(), pack('ii', 1, 0)); close $c })
        if $step eq 'reset';
    return (429, '{"e":"slow down"}') if $step eq '429';
    return (400, '{"e":"bad prompt"}') if $step eq '400';
    if ($step eq 'hang') { sleep 3; return (200, '{"late":true}') }
    if ($step eq 'stream' || $step eq 'stall') {
        my $pause = $step eq 'stream' ? 0.6 : 2;
        return ('RAW', sub {
            my $c = shift;
            print $c "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                   . "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
            print $c "c\r\ndata: first\n\r\n";
            $c->flush;
            sleep $pause;
            print $c "d\r\ndata: second\n\r\n0\r\n\r\n";
        });
    }
    return (200, $json->encode({ ok => JSON::PP::true, echo => $body }));
});
my $port = $up->port;

sub configure {
    my ($base, $timeout) = @_;
    $srv->configure(<<"_HTTP_", <<'_SERVER_');
    linguamate_toolkit_url $base;
    linguamate_toolkit_api_key $key;
    linguamate_request_timeout_ms $timeout;
    linguamate_log_file logs/events.log;
    linguamate_log_level debug;
    linguamate_admin_token admin-token-admin-token-admin-token-0;
    linguamate_breaker toolkit failure_threshold=3 volume_threshold=5 reset_timeout=60s;
_HTTP_
        error_page 400 404 405 413 500 502 503 504 /_linguamate/error;
        location = /_linguamate/error { internal; linguamate_endpoint error; }
        client_max_body_size 1m;
        gzip on;
        gzip_types application/json;
        gzip_min_length 1;
        location = /api/toolkit/v1/text/llm { linguamate_circuit_breaker toolkit; linguamate_toolkit /text/llm/; }
        location = /api/toolkit/text/llm { linguamate_circuit_breaker toolkit; linguamate_toolkit /text/llm/; }
        location = /api/toolkit/v1/stt/transcribe {
            client_max_body_size 10m;
            linguamate_circuit_breaker toolkit;
            linguamate_toolkit /stt/transcribe/ multipart;
        }
        location = /api/toolkit/v1/images/generate { linguamate_circuit_breaker toolkit; linguamate_toolkit /images/generate/; }
        location = /api/toolkit/health { linguamate_endpoint toolkit_health; }
        location /api/admin/ { linguamate_endpoint admin; }
        location = /_linguamate/toolkit {
            internal;
            proxy_pass $linguamate_toolkit_target;
            proxy_set_header Authorization "Bearer $linguamate_toolkit_key";
            proxy_set_header X-Request-Id $linguamate_correlation_id;
            proxy_set_header X-Correlation-Id $linguamate_correlation_id;
            proxy_set_header X-User-Id $linguamate_user_id;
            proxy_buffering off;
            proxy_http_version 1.1;
            proxy_connect_timeout 1s;
            proxy_read_timeout 1s;
        }
_SERVER_
}

configure("http://127.0.0.1:$port", 10000);
$srv->start;

my $http = HTTP::Tiny->new(timeout => 20);
sub post {
    my ($path, $body, %h) = @_;
    return $http->post($srv->url($path), {
        content => $body,
        headers => { 'Content-Type' => 'application/json', %h },
    });
}
sub envelope { eval { $json->decode($_[0]{content})->{error} } || {} }

# each section starts with a closed breaker
sub reset_breaker {
    $http->post($srv->url('/api/admin/breakers/reset'), { headers => {
        Authorization => 'Bearer admin-token-admin-token-admin-token-0' } });
}

# --- routes, headers, body ----------------------------------------------------

script();
clear_seen();
my $r = post('/api/toolkit/v1/text/llm', '{"messages":[{"role":"user","content":"hi"}]}',
             'X-Correlation-Id' => 'tk-1', Authorization => 'Bearer client-token');
is $r->{status}, 200, 'LLM call passes';
my @s = seen();
is $s[0]{uri}, '/text/llm/', 'to /text/llm/';
is $s[0]{method}, 'POST', 'as a POST';
is $s[0]{auth}, "Bearer $key", 'with the toolkit key, not the client\'s token';
is $s[0]{rid}, 'tk-1', 'x-request-id is the correlation id';
is $s[0]{cid}, 'tk-1', 'x-correlation-id too';
is $s[0]{len}, length('{"messages":[{"role":"user","content":"hi"}]}'), 'the body arrives whole';
like $r->{content}, qr/"echo":"\{\\"messages\\"/, 'the toolkit\'s answer comes back';
is $r->{headers}{'x-correlation-id'}, 'tk-1', 'with the correlation id';
is $r->{headers}{'x-frame-options'}, 'DENY', 'and the security headers';
unlike $r->{content}, qr/\Q$key\E/, 'the key is never echoed';

clear_seen();
is post('/api/toolkit/text/llm', '{}')->{status}, 200, 'the unversioned alias works';
is((seen())[0]{uri}, '/text/llm/', 'to the same upstream path');
is post('/api/toolkit/v1/images/generate', '{}')->{status}, 200, 'images/generate';
is((seen())[1]{uri}, '/images/generate/', 'to /images/generate/');
is $http->get($srv->url('/api/toolkit/v1/text/llm'))->{status}, 405, 'GET is a 405';

# --- retries with backoff -----------------------------------------------------

script('500', '500', 'ok');
clear_seen();
my $t0 = time;
$r = post('/api/toolkit/v1/text/llm', '{"x":1}');
my $took = time - $t0;
is $r->{status}, 200, '500, 500, then 200: the client gets the 200';
is scalar(seen()), 3, "three attempts" or diag(`cat $dir/seen; cat $dir/script`);
cmp_ok $took, '>=', 1.45, 'after 500 ms and 1 s of backoff';
cmp_ok $took, '<', 4, 'and not much more';
is((grep { $_->{len} == 7 } seen()), 3, 'each attempt carried the body');

reset_breaker();
script('reset', 'reset', 'ok');
clear_seen();
$r = post('/api/toolkit/v1/text/llm', '{}');
is $r->{status}, 200, 'two connection resets, then an answer: 200';
is scalar(seen()), 3, 'after three attempts';

reset_breaker();
script('429', 'ok');
clear_seen();
is post('/api/toolkit/v1/text/llm', '{}')->{status}, 200, '429 is retried';
is scalar(seen()), 2, 'two attempts';

reset_breaker();
script('400');
clear_seen();
$r = post('/api/toolkit/v1/text/llm', '{}');
is $r->{status}, 400, 'a 4xx is not retried';
is $r->{content}, '{"e":"bad prompt"}', 'and passes through untouched';
is scalar(seen()), 1, 'one attempt';

reset_breaker();
script('500', '500', '500');
clear_seen();
$r = post('/api/toolkit/v1/text/llm', '{}');
is $r->{status}, 500, 'three 500s: the last one is the answer';
is scalar(seen()), 3, 'after three attempts';

# --- an encoded answer is not encoded again -------------------------------------

reset_breaker();
script('gz');
{
    my $c = IO::Socket::INET->new(PeerAddr => '127.0.0.1:' . $srv->port) or die;
    print $c "POST /api/toolkit/v1/text/llm HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
           . "Accept-Encoding: gzip\r\nConnection: close\r\n\r\n{}";
    my $all = do { local $/; <$c> } // '';
    my ($head, $body) = split /\r\n\r\n/, $all, 2;
    my @enc = $head =~ /^content-encoding:/gim;
    is scalar(@enc), 1, 'one Content-Encoding header';
    if ($head =~ /transfer-encoding: chunked/i) {
        my $plain = '';
        while ($body =~ s/^([0-9a-f]+)\r\n//i) {
            my $n = hex $1;
            last if $n == 0;
            $plain .= substr($body, 0, $n, '');
            $body =~ s/^\r\n//;
        }
        $body = $plain;
    }
    IO::Uncompress::Gunzip::gunzip(\$body => \my $out);
    is $out, '{"zipped":true}', 'and the body gunzips once to the toolkit\'s answer';
}

# --- the key never reaches a log ----------------------------------------------

unlike $srv->slurp('logs/events.log') . $srv->slurp('logs/error.log'), qr/\Q$key\E/,
       'the toolkit key is in no log';

reset_breaker();
# --- speech to text -------------------------------------------------------------

$r = post('/api/toolkit/v1/stt/transcribe', '{"audio":"x"}');
is $r->{status}, 400, 'speech-to-text needs multipart';
is envelope($r)->{code}, 'VALIDATION_ERROR', 'VALIDATION_ERROR';
script();
$r = post('/api/toolkit/v1/stt/transcribe', "--b\r\nContent-Disposition: form-data; name=\"audio\"\r\n\r\nRIFF\r\n--b--\r\n",
          'Content-Type' => 'multipart/form-data; boundary=b');
is $r->{status}, 200, 'a multipart upload passes';
$r = post('/api/toolkit/v1/stt/transcribe', 'x' x (10 * 1024 * 1024 + 10),
          'Content-Type' => 'multipart/form-data; boundary=b');
is $r->{status}, 413, 'over 10 MB: 413';
is envelope($r)->{code}, 'PAYLOAD_TOO_LARGE', 'PAYLOAD_TOO_LARGE';

reset_breaker();
# --- streaming passes through ----------------------------------------------------

script('stream');
{
    my $c = IO::Socket::INET->new(PeerAddr => '127.0.0.1:' . $srv->port) or die;
    print $c "POST /api/toolkit/v1/text/llm HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
           . "Connection: close\r\n\r\n{}";
    my $start = time;
    my ($first, $all) = (undef, '');
    while (my $line = <$c>) {
        $all .= $line;
        $first //= time - $start if $line =~ /data: first/;
    }
    my $total = time - $start;
    ok defined $first, 'the first event arrived';
    cmp_ok $first, '<', 0.45, 'before the toolkit finished (streamed, not buffered)';
    cmp_ok $total, '>=', 0.55, 'the rest came 0.6 s later';
    like $all, qr/data: second/, 'whole';
    like $all, qr{^HTTP/1\.1 200 .*content-type: text/event-stream}is, 'with the toolkit\'s status and type';
}

reset_breaker();
# --- a stream that stalls past the read timeout is cut, not ended cleanly ---

reset_breaker();
script('stall');
{
    my $c = IO::Socket::INET->new(PeerAddr => '127.0.0.1:' . $srv->port) or die;
    print $c "POST /api/toolkit/v1/text/llm HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
           . "Connection: close\r\n\r\n{}";
    my $all = do { local $/; <$c> } // '';
    like $all, qr/data: first/, 'the first event arrived';
    unlike $all, qr/\r\n0\r\n\r\n\z/, 'but no final chunk: the client can tell it was cut';
}

# --- /api/toolkit/health ----------------------------------------------------------

$r = $http->get($srv->url('/api/toolkit/health'));
is $r->{status}, 200, 'toolkit health';
my $h = eval { $json->decode($r->{content}) } || {};
is_deeply $h, { ok => JSON::PP::true, base => "http://127.0.0.1:$port",
                rate => { windowMs => 60000, max => 60 }, breaker => 'CLOSED' },
          'ok, base, rate and the breaker state';

reset_breaker();
# --- the breaker counts every attempt ---------------------------------------------

script(('500') x 6);
post('/api/toolkit/v1/text/llm', '{}') for 1 .. 2;
$r = post('/api/toolkit/v1/text/llm', '{}');
is $r->{status}, 503, 'after 6 failed attempts the breaker is open';
is envelope($r)->{code}, 'CIRCUIT_OPEN', 'CIRCUIT_OPEN';
like $http->get($srv->url('/api/toolkit/health'))->{content}, qr/"breaker":"OPEN"/,
     'the toolkit health shows it';

# --- an unreachable toolkit, and one that hangs ------------------------------------

my $dead = Linguamate::Server::free_port();
configure("http://127.0.0.1:$dead", 10000);
ok $srv->reload, 'reload: the toolkit now points at a closed port';
reset_breaker();
$t0 = time;
$r = post('/api/toolkit/v1/text/llm', '{}');
$took = time - $t0;
is $r->{status}, 503, 'unreachable after the retries: 503';
is envelope($r)->{code}, 'SERVICE_UNAVAILABLE', 'SERVICE_UNAVAILABLE';
is envelope($r)->{message}, 'Service temporarily unavailable', 'the original message';
cmp_ok $took, '>=', 1.45, 'after the backoff';

configure("http://127.0.0.1:$port", 2000);
ok $srv->reload, 'reload: REQUEST_TIMEOUT_MS 2000';
reset_breaker();
script('hang', 'hang', 'hang');
$t0 = time;
$r = post('/api/toolkit/text/llm', '{}');
$took = time - $t0;
is $r->{status}, 504, 'a toolkit that hangs: 504';
is envelope($r)->{code}, 'UPSTREAM_TIMEOUT', 'UPSTREAM_TIMEOUT';
cmp_ok $took, '<', 4, 'within REQUEST_TIMEOUT_MS and one read timeout';

$srv->stop;
$up->stop;
unlike $srv->slurp('logs/error.log'), qr/\[(alert|crit)\]|exited on signal/,
       'no alert, no crash';

done_testing();
