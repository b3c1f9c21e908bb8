# vim:set ft= ts=4 sw=4 et fdm=marker:
#
# Hostile requests (issue #9, item 2) against a real master and two
# workers serving the module's endpoints as conf/linguamate.conf does:
# header injection through x-correlation-id, JSON nested 100,000 deep,
# 1e400, duplicate keys, invalid UTF-8, bodies past the limits, chunked
# bodies, 64 KB headers, 16 KB tokens, paths with %00 and "..", and 1,000
# idle slow connections.  Each answer's status and JSON envelope are
# checked (parsed), then the request is repeated (HOSTILE_REPEAT, 200) and
# the workers must be the same processes with their RSS grown by no more
# than a small bound.  Requests are written raw on a socket: most of these
# cannot be sent by an HTTP client library.

use strict;
use warnings;
use lib 't/lib';
use Test::More;
use JSON::PP;
use IO::Socket::INET;
use IO::Select;
use POSIX qw(strftime);
use Time::HiRes qw(time sleep);
use Digest::SHA qw(hmac_sha256_hex);
use Linguamate::Server;
use Linguamate::Upstream;
use Linguamate::Token;

$SIG{PIPE} = 'IGNORE';

my $repeat = $ENV{HOSTILE_REPEAT} // 200;
# RSS growth allowed per hostile request repeated $repeat times, both
# workers together, after a warm-up of 20: malloc may keep a few pages
# under valgrind or ASan, RSS is the tool's (memcheck's heap, ASan's
# quarantine of freed memory), not nginx's: they report leaks themselves;
# the release build's run ("make test") checks the bound
my $rss_bound_kb = $ENV{HOSTILE_RSS_BOUND_KB}
                   // ($ENV{TEST_NGINX_USE_VALGRIND}
                       || $ENV{TEST_NGINX_CHECK_SANITIZER} ? 1e9 : 1024);
my $json = JSON::PP->new->utf8->canonical;
my $admin = 'admin-token-admin-token-admin-token-0';
my $key = 'log-signing-key-for-the-suite-0001';

my $app = Linguamate::Upstream->new(sub {
    return (200, '{"result":{"data":{"json":{"ok":true}}}}');
});

my $srv = Linguamate::Server->new(workers => 2, connections => 2048,
                                  main => 'worker_rlimit_nofile 8192;');
my $state = $srv->dir . '/state';
mkdir $state;
chmod 0777, $state;
my $app_port = $app->port;

$srv->configure(<<"_HTTP_", <<'_SERVER_');
    linguamate_jwt_secret $SECRET;
    linguamate_state_dir $state;
    linguamate_admin_token $admin;
    linguamate_log_file logs/events.log;
    linguamate_log_signing_key $key;
    linguamate_rate_limit_max_login_attempts 1000;
    linguamate_app_upstream_url http://127.0.0.1:$app_port;
    linguamate_limit_zone global size=4m window=1s limit=10000;
    linguamate_limit_zone auth size=1m window=1s limit=10000;
    linguamate_lockout_zone auth_lockout size=1m window=1s lock=1s;
    linguamate_session_zone sessions size=1m;
    linguamate_lockout_zone tiny_lockout size=32k;
    linguamate_breaker app;
    log_format linguamate escape=none '\$linguamate_log_line';
    access_log logs/access.log linguamate;
_HTTP_
        client_max_body_size 1m;
        linguamate_limit global;
        error_page 400 401 403 404 405 408 413 414 429 494 500 501 502 503
                   504 505 /_linguamate/error;
        location = /_linguamate/error {
            internal;
            linguamate_limit off;
            linguamate_endpoint error;
        }
        location = /api/health { linguamate_route health; linguamate_endpoint health; }
        location = /api/auth/session {
            linguamate_route auth_session;
            linguamate_auth on;
            linguamate_endpoint auth_session;
        }
        location = /api/auth/refresh {
            linguamate_route auth_refresh;
            linguamate_limit global;
            linguamate_limit auth;
            linguamate_lockout auth_lockout;
            client_max_body_size 16k;
            linguamate_endpoint auth_refresh;
        }
        location = /api/ingest/logs {
            linguamate_route ingest_logs;
            linguamate_auth optional;
            client_body_buffer_size 1m;
            linguamate_endpoint ingest_logs;
        }
        location = /api/analytics/events {
            linguamate_route analytics_events;
            linguamate_auth optional;
            linguamate_feature analytics;
            client_body_buffer_size 1m;
            linguamate_endpoint analytics_events;
        }
        location /api/trpc/ {
            linguamate_route trpc;
            linguamate_trpc on;
            linguamate_auth public;
            linguamate_limit global;
            linguamate_limit auth;
            linguamate_lockout auth_lockout;
            linguamate_circuit_breaker app;
            client_body_buffer_size 1m;
            proxy_max_temp_file_size 0;
            proxy_ignore_client_abort on;
            proxy_pass $linguamate_app_upstream;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_read_timeout 5s;
        }
        location = /api/auth/tiny {
            linguamate_route auth_tiny;
            linguamate_lockout tiny_lockout;
            linguamate_endpoint auth_refresh;
        }
        location /api/admin/ {
            linguamate_route admin;
            linguamate_endpoint admin;
        }
        location / {
            linguamate_route other;
            linguamate_endpoint not_found;
        }
_SERVER_
$srv->start;

my @workers = $srv->worker_pids;
is scalar @workers, 2, 'two workers';

# --- raw HTTP -----------------------------------------------------------------

# send bytes, read the answer until the server closes; returns a hash
sub raw {
    my ($bytes, $timeout) = @_;
    $timeout //= 10;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $srv->port,
                                  Timeout => $timeout)
        or return { status => 0, error => "connect: $!" };
    my $sel = IO::Select->new($s);
    my ($in, $off) = ('', 0);
    my $end = time + $timeout;
    $s->blocking(0);
    # write what the server takes, reading meanwhile (it may answer early)
    while ($off < length $bytes && time < $end) {
        my ($r, $w) = IO::Select->select($sel, $sel, undef, 0.5);
        if ($r && @$r) {
            my $n = sysread $s, my $buf, 65536;
            last if !defined $n && !$!{EAGAIN};
            last if defined $n && $n == 0;
            $in .= $buf if $n;
        }
        if ($w && @$w) {
            my $n = syswrite $s, $bytes, 65536, $off;
            last if !defined $n && !$!{EAGAIN};
            $off += $n if $n;
        }
    }
    while (time < $end) {
        # a whole answer with a Content-Length: no need to wait for the close
        last if $in =~ /\r\n\r\n/ && $in =~ /^Content-Length: (\d+)\r$/mi
                && length($in) - index($in, "\r\n\r\n") - 4 >= $1;
        last unless $sel->can_read($end - time);
        my $n = sysread $s, my $buf, 65536;
        next if !defined $n && $!{EAGAIN};
        last unless $n;
        $in .= $buf;
    }
    close $s;
    my ($head, $body) = split /\r\n\r\n/, $in, 2;
    my %res = (status => 0, raw => $in, body => $body // '', headers => {});
    return \%res unless defined $head && $head =~ m{^HTTP/1\.\d (\d{3})};
    $res{status} = $1;
    for (split /\r\n/, $head) {
        $res{headers}{lc $1} = $2 if /^([^:]+):\s*(.*)$/;
    }
    if (($res{headers}{'transfer-encoding'} // '') =~ /chunked/) {
        my ($b, $rest) = ('', $res{body});
        while ($rest =~ s/^([0-9a-fA-F]+)\r\n//) {
            my $n = hex $1;
            last if $n == 0;
            $b .= substr $rest, 0, $n, '';
            $rest =~ s/^\r\n//;
        }
        $res{body} = $b;
    }
    $res{json} = eval { $json->decode($res{body}) };
    return \%res;
}

sub request {
    my ($method, $path, %o) = @_;
    my $body = $o{body};
    my $h = "$method $path HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n";
    $h .= $o{headers} // '';
    if (defined $body && !$o{no_length}) {
        $h .= 'Content-Length: ' . length($body) . "\r\n";
    }
    $h .= "Content-Type: application/json\r\n" if defined $body;
    return "$h\r\n" . ($body // '');
}

sub chunked {
    my ($method, $path, $body, %o) = @_;
    my $out = '';
    my $size = $o{chunk} // 4096;
    for (my $i = 0; $i < length $body; $i += $size) {
        my $c = substr $body, $i, $size;
        $out .= sprintf("%x\r\n", length $c) . "$c\r\n";
    }
    $out .= "0\r\n\r\n";
    return request($method, $path, %o,
                   headers => ($o{headers} // '') . "Transfer-Encoding: chunked\r\n",
                   body => $out, no_length => 1);
}

sub rss_kb {
    my $kb = 0;
    for my $pid (@_) {
        open my $f, '<', "/proc/$pid/status" or next;
        while (<$f>) { $kb += $1 if /^VmRSS:\s+(\d+)/ }
    }
    return $kb;
}

# --- the hostile inputs --------------------------------------------------------

sub iso { strftime('%Y-%m-%dT%H:%M:%S.000Z', gmtime($_[0] // time)) }

sub batch {
    my ($logs) = @_;
    my $ts = iso();
    my $hmac = hmac_sha256_hex(qq({"items":$logs,"ts":"$ts"}), $key);
    return qq({"logs":$logs,"sig":{"hmac":"$hmac","algo":"HMAC-SHA256","ts":"$ts"}});
}

my $record = sub {
    my ($extra) = @_;
    return sprintf '{"ts":"%s","lvl":"INFO","cat":"app","evt":"e","msg":"m"%s}',
                   iso(), $extra // '';
};

my $deep = '[' x 100_000 . ']' x 100_000;
my $auth = "Authorization: Bearer $admin\r\n";
my $bad_token = 'eyJ' . ('A' x 7000) . '.eyJ' . ('B' x 100) . '.sig';
my $huge_token = 'eyJhbGciOiJIUzI1NiJ9.' . ('A' x 16384) . '.sig';
my $valid = token(sub => 'u-1', sid => 's-1');

# [ name, request bytes, status, code (or undef: not an error), tRPC shape ]
my @cases = (
    # x-correlation-id: header injection
    [ 'x-correlation-id with a bare CR',
      request('GET', '/api/health', headers => "X-Correlation-Id: abc\rSet-Cookie: evil=1\r\n"),
      400, 'BAD_REQUEST' ],
    [ 'x-correlation-id with LF: a second header, nothing injected',
      request('GET', '/api/health', headers => "X-Correlation-Id: abc\nSet-Cookie: evil=1\r\n"),
      200, undef, sub {
          my $r = shift;
          is $r->{headers}{'x-correlation-id'}, 'abc', '  the id is what preceded the LF';
          ok !exists $r->{headers}{'set-cookie'}, '  no Set-Cookie in the answer';
      } ],
    [ 'x-correlation-id with encoded CR/LF',
      request('POST', '/api/auth/refresh', body => '{}',
              headers => "X-Correlation-Id: a%0d%0aSet-Cookie:%20evil=1\r\n"),
      400, 'VALIDATION_ERROR', sub {
          my $r = shift;
          like $r->{headers}{'x-correlation-id'}, qr/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-/,
               '  a fresh UUID instead';
          is $r->{json}{error}{requestId}, $r->{headers}{'x-correlation-id'},
             '  which is the requestId';
          ok !exists $r->{headers}{'set-cookie'}, '  no Set-Cookie in the answer';
      } ],
    [ 'x-correlation-id of 10 KB',
      request('GET', '/api/health', headers => 'X-Correlation-Id: ' . ('c' x 10240) . "\r\n"),
      400, 'BAD_REQUEST', sub {
          unlike $_[0]{raw}, qr/ccccccccccccccccc/, '  not echoed';
      } ],
    [ 'x-correlation-id of 6 KB (fits the buffers)',
      request('GET', '/api/health', headers => 'X-Correlation-Id: ' . ('c' x 6144) . "\r\n"),
      200, undef, sub {
          like $_[0]{headers}{'x-correlation-id'}, qr/^[0-9a-f-]{36}$/, '  replaced by a UUID';
      } ],

    # JSON nested 100,000 deep
    [ 'ingest: JSON nested 100,000 deep',
      request('POST', '/api/ingest/logs', body => qq({"logs":$deep})),
      400, 'VALIDATION_ERROR' ],
    [ 'analytics: JSON nested 100,000 deep',
      request('POST', '/api/analytics/events', body => qq({"events":$deep})),
      400, 'VALIDATION_ERROR' ],
    [ 'admin flags: JSON nested 100,000 deep (past its 4 KB)',
      request('PATCH', '/api/admin/flags', headers => $auth,
              body => qq({"features":$deep})),
      413, 'PAYLOAD_TOO_LARGE' ],
    [ 'admin flags: JSON nested 2,000 deep (under its 4 KB)',
      request('PATCH', '/api/admin/flags', headers => $auth,
              body => '{"features":' . ('[' x 2000) . (']' x 2000) . '}'),
      400, 'VALIDATION_ERROR' ],
    [ 'refresh: JSON nested 4,000 deep (under its 8 KB buffer)',
      request('POST', '/api/auth/refresh',
              body => '{"refreshToken":' . ('[' x 4000) . (']' x 4000) . '}'),
      400, 'VALIDATION_ERROR' ],
    [ 'refresh: JSON nested 100,000 deep (past its 16k)',
      request('POST', '/api/auth/refresh', body => $deep),
      413, 'PAYLOAD_TOO_LARGE' ],
    # an auth procedure's input the edge cannot read as the app will is
    # refused (docs/auth.md): past 32 levels its reader stops
    [ 'tRPC: JSON nested 100,000 deep in an auth procedure: refused',
      request('POST', '/api/trpc/auth.login', body => qq({"json":$deep})),
      400, 'BAD_REQUEST', sub {
          is $_[0]{json}{error}{json}{data}{reason}, 'TOO_DEEP', '  reason TOO_DEEP';
      }, 1 ],

    # 1e400
    [ 'ingest: a number of 1e400',
      request('POST', '/api/ingest/logs',
              body => batch('[' . $record->(',"data":{"n":1e400}') . ']')),
      400, 'VALIDATION_ERROR' ],
    [ 'analytics: a number of 1e400',
      request('POST', '/api/analytics/events',
              body => qq({"events":[{"name":"x","timestamp":"@{[ iso() ]}","properties":{"n":1e400}}]})),
      400, 'VALIDATION_ERROR' ],
    [ 'refresh: a number of 1e400',
      request('POST', '/api/auth/refresh', body => '{"refreshToken":1e400}'),
      400, 'VALIDATION_ERROR' ],
    [ 'admin flags: a number of 1e400',
      request('PATCH', '/api/admin/flags', headers => $auth,
              body => '{"cacheTtlSeconds":1e400}'),
      400, 'VALIDATION_ERROR' ],

    # duplicate keys
    [ 'refresh: duplicate keys',
      request('POST', '/api/auth/refresh',
              body => qq({"refreshToken":"$valid","refreshToken":"x"})),
      400, 'VALIDATION_ERROR', sub {
          is_deeply $_[0]{json}{error}{details},
                    [ { field => 'refreshToken', message => 'is duplicated' } ],
                    '  details: refreshToken is duplicated';
      } ],
    [ 'admin flags: duplicate keys',
      request('PATCH', '/api/admin/flags', headers => $auth,
              body => '{"maintenance":false,"maintenance":true}'),
      400, 'VALIDATION_ERROR', sub {
          is_deeply $_[0]{json}{error}{details},
                    [ { field => 'maintenance', message => 'is duplicated' } ],
                    '  details: maintenance is duplicated';
      } ],
    [ 'admin flags: duplicate features',
      request('PATCH', '/api/admin/flags', headers => $auth,
              body => '{"features":{"chat":false},"features":{"chat":true}}'),
      400, 'VALIDATION_ERROR' ],
    [ 'ingest: duplicate keys',
      request('POST', '/api/ingest/logs',
              body => batch('[' . $record->(',"msg":"again"') . ']')),
      400, 'VALIDATION_ERROR' ],

    # invalid UTF-8
    [ 'ingest: invalid UTF-8',
      request('POST', '/api/ingest/logs',
              body => batch('[' . $record->(qq(,"data":{"s":"\xff\xfe\xc0\xaf"})) . ']')),
      400, 'VALIDATION_ERROR' ],
    [ 'analytics: invalid UTF-8',
      request('POST', '/api/analytics/events',
              body => qq({"events":[{"name":"\xc3\x28","timestamp":"@{[ iso() ]}"}]})),
      400, 'VALIDATION_ERROR' ],
    [ 'refresh: invalid UTF-8',
      request('POST', '/api/auth/refresh', body => qq({"refreshToken":"a\xff\xfeb"})),
      400, 'VALIDATION_ERROR' ],
    [ 'admin flags: invalid UTF-8',
      request('PATCH', '/api/admin/flags', headers => $auth,
              body => qq({"logLevel":"\xf8\x88\x80\x80\x80"})),
      400, 'VALIDATION_ERROR' ],

    # bodies past the limits
    [ 'refresh: 20 KB body',
      request('POST', '/api/auth/refresh', body => '{"refreshToken":"' . ('a' x 20480) . '"}'),
      413, 'PAYLOAD_TOO_LARGE' ],
    [ 'ingest: 1 MB + 1 body',
      request('POST', '/api/ingest/logs', body => 'x' x (1024 * 1024 + 1)),
      413, 'PAYLOAD_TOO_LARGE' ],
    [ 'ingest: Content-Length of 10 GB, no body',
      "POST /api/ingest/logs HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: 10737418240\r\n\r\n",
      413, 'PAYLOAD_TOO_LARGE' ],
    [ 'ingest: Content-Length that is not a number',
      "POST /api/ingest/logs HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: -1\r\n\r\n",
      400, 'BAD_REQUEST' ],
    [ 'ingest: Content-Length and Transfer-Encoding both',
      "POST /api/ingest/logs HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: 5\r\n"
      . "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
      400, 'BAD_REQUEST' ],

    # chunked bodies
    [ 'ingest: a chunked batch is read whole',
      chunked('POST', '/api/ingest/logs', batch('[' . $record->() . ']'), chunk => 7),
      200, undef, sub {
          is_deeply $_[0]{json}, { success => JSON::PP::true, count => 1 }, '  counted';
      } ],
    [ 'ingest: chunked past 1 MB',
      chunked('POST', '/api/ingest/logs', 'x' x (1024 * 1024 + 10), chunk => 65536),
      413, 'PAYLOAD_TOO_LARGE' ],
    [ 'refresh: chunked past 16k',
      chunked('POST', '/api/auth/refresh', 'x' x 20000),
      413, 'PAYLOAD_TOO_LARGE' ],
    [ 'ingest: a malformed chunk size',
      "POST /api/ingest/logs HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
      400, 'BAD_REQUEST' ],
    [ 'ingest: a chunk size of 2^64-1',
      "POST /api/ingest/logs HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\nabc\r\n0\r\n\r\n",
      [400, 413], undef ],
    [ 'ingest: Transfer-Encoding other than chunked',
      "POST /api/ingest/logs HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
      501, 'NOT_IMPLEMENTED' ],

    [ 'HTTP/2.0 in the request line of a plain connection',
      "GET /api/health HTTP/2.0\r\nHost: x\r\nConnection: close\r\n\r\n",
      505, 'HTTP_VERSION_NOT_SUPPORTED' ],
    [ 'a NUL in the method',
      "G\x00T /api/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
      400, 'BAD_REQUEST' ],

    # 64 KB of headers
    [ 'one header of 64 KB',
      request('GET', '/api/health', headers => 'X-Big: ' . ('h' x 65536) . "\r\n"),
      400, 'BAD_REQUEST' ],
    [ '16 headers of 4 KB',
      request('GET', '/api/health', headers => join '', map { "X-H$_: " . ('h' x 4096) . "\r\n" } 1 .. 16),
      400, 'BAD_REQUEST' ],
    [ 'a cookie of 64 KB',
      request('GET', '/api/auth/session', headers => 'Cookie: a=' . ('k' x 65536) . "\r\n"),
      400, 'BAD_REQUEST' ],

    # tokens of 16 KB
    [ 'a bearer token of 16 KB',
      request('GET', '/api/auth/session', headers => "Authorization: Bearer $huge_token\r\n"),
      400, 'BAD_REQUEST' ],
    [ 'a garbage bearer token of 7 KB',
      request('GET', '/api/auth/session', headers => "Authorization: Bearer $bad_token\r\n"),
      401, 'UNAUTHORIZED', sub {
          like $_[0]{json}{error}{reason}, qr/^(MALFORMED|BAD_SIGNATURE)$/, "  reason $_[0]{json}{error}{reason}";
          like $_[0]{headers}{'www-authenticate'}, qr/^Bearer/, '  WWW-Authenticate';
      } ],
    [ 'refresh: a garbage refresh token of 7 KB',
      request('POST', '/api/auth/refresh', body => qq({"refreshToken":"$bad_token"})),
      401, 'UNAUTHORIZED' ],
    [ 'tRPC: a bearer token of 16 KB',
      request('GET', '/api/trpc/user.me', headers => "Authorization: Bearer $huge_token\r\n"),
      400, 'BAD_REQUEST' ],
    # docs/trpc.md: an invalid token is passed on as absent (public
    # procedures exist), refused only in strict mode
    [ 'tRPC: a garbage bearer token of 7 KB: passed on as absent',
      request('GET', '/api/trpc/user.me', headers => "Authorization: Bearer $bad_token\r\n"),
      200, undef ],

    # paths with %00 and ..
    [ 'path with %00',
      request('GET', '/api/health%00.json'),
      400, 'BAD_REQUEST' ],
    [ 'admin path with %00',
      request('GET', '/api/admin/lockouts/a%00b', headers => $auth),
      400, 'BAD_REQUEST' ],
    [ 'tRPC path with %00',
      request('GET', '/api/trpc/user.me%00'),
      400, 'BAD_REQUEST' ],
    [ 'path above the root',
      request('GET', '/api/../../etc/passwd'),
      400, 'BAD_REQUEST' ],
    [ 'encoded .. out of the admin API, without the token',
      request('GET', '/api/admin/%2e%2e/%2e%2e/api/health'),
      200, undef, sub {
          is $_[0]{json}{status}, 'ok', '  normalised to /api/health, nothing of admin';
      } ],
    [ 'encoded ../ into the admin API from the tRPC route',
      request('GET', '/api/trpc/..%2f..%2fapi%2fadmin%2fstate'),
      401, 'UNAUTHORIZED' ],
    [ 'encoded ../ in a lockout key',
      request('GET', '/api/admin/lockouts/..%2f..%2f..%2fetc%2fpasswd', headers => $auth),
      404, 'NOT_FOUND' ],
);

my $t0 = time;
my %rss_growth;
for my $c (@cases) {
    my ($name, $bytes, $status, $code, $extra, $trpc) = @$c;
    my @st = ref $status ? @$status : ($status);
    my $r = raw($bytes);
    ok((grep { $r->{status} == $_ } @st), "$name: status $r->{status}")
        or diag substr($r->{raw}, 0, 600);
    if ($r->{status} >= 400) {
        my $e = $trpc ? $r->{json}{error}{json} : $r->{json}{error};
        ok ref $e eq 'HASH', "  a JSON error envelope" or diag $r->{body};
        if ($trpc) {
            is $e->{data}{httpStatus}, $r->{status}, '  tRPC shape, its httpStatus';
            is $e->{data}{code}, $code, "  data.code $code" if $code;
        } else {
            is $e->{code}, $code, "  code $code" if $code;
            like $e->{timestamp} // '', qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/,
                 '  timestamp';
            like $e->{requestId} // '', qr/^[A-Za-z0-9._:-]{1,128}$/, '  requestId';
            ok length($e->{message} // ''), '  a message';
        }
        like $r->{headers}{'content-type'} // '', qr{^application/json}, '  JSON content type';
    }
    $extra->($r) if $extra;

    # repeated: same workers, RSS flat after a warm-up
    my %seen;
    for my $i (1 .. $repeat) {
        my $kb = rss_kb(@workers) if $i == 21;
        $rss_growth{$name} = -$kb if $i == 21;
        $seen{ raw($bytes)->{status} }++;
    }
    $rss_growth{$name} += rss_kb(@workers);
    is_deeply [ sort keys %seen ], [ sort map { "$_" } grep { $seen{$_} } @st ],
              "  the same answer $repeat times" or diag explain \%seen;
    is_deeply [ $srv->worker_pids ], \@workers, '  no worker died';
    cmp_ok $rss_growth{$name}, '<=', $rss_bound_kb,
           "  workers' RSS grew $rss_growth{$name} kB over the last " . ($repeat - 20);
}
note sprintf 'hostile cases: %d x %d requests in %.1f s', scalar @cases, $repeat + 1,
             time - $t0;

# --- 1,000 idle slow connections -------------------------------------------

my @idle;
for my $i (1 .. 1000) {
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $srv->port,
                                  Timeout => 5) or last;
    # half say nothing, half start a request and stall in its headers
    syswrite $s, "GET /api/health HTTP/1.1\r\nHost: slow\r\nX-Slow: " if $i % 2;
    push @idle, $s;
}
is scalar @idle, 1000, '1,000 idle connections open';
my @lat;
for (1 .. 20) {
    my $t = time;
    my $r = raw(request('GET', '/api/health'), 5);
    push @lat, $r->{status} == 200 ? time - $t : 99;
}
@lat = sort { $a <=> $b } @lat;
cmp_ok $lat[-1], '<', 2, sprintf 'others are answered meanwhile (median %.0f ms, max %.0f ms)',
       1000 * $lat[10], 1000 * $lat[-1];
is_deeply [ $srv->worker_pids ], \@workers, 'no worker died';
close $_ for @idle;
ok $srv->poll(sub { raw(request('GET', '/api/health'), 5)->{status} == 200 }, 10),
   'after they close: still answering';

# --- a zone far too small: its "no room" line at most once a second ---------

my $t1 = time;
my %tiny;
for my $i (1 .. 600) {
    $tiny{ raw(request('POST', '/api/auth/tiny',
                       body => qq({"email":"account-$i\@example.com","refreshToken":"x"})))->{status} }++;
}
my $secs = time - $t1;
is_deeply [ keys %tiny ], [401], "600 failed logins for 600 accounts in a 32k lockout zone: all 401";
my $nomem = () = $srv->slurp('logs/error.log') =~ /could not allocate node in zone "tiny_lockout"/g;
cmp_ok $nomem, '<=', 2 * (int($secs) + 2),
       "the zone's \"could not allocate\" lines are rate-limited ($nomem in ${\ sprintf '%.1f', $secs} s)";

# --- after it all -------------------------------------------------------------

my $st = raw(request('GET', '/api/admin/state', headers => $auth));
is $st->{status}, 200, 'the admin state answers';
is $st->{json}{flags}{maintenance}, JSON::PP::false, 'no hostile PATCH changed a flag';

my @bad = grep { !eval { $json->decode($_); 1 } }
          split /\n/, $srv->slurp('logs/access.log');
is scalar @bad, 0, 'every request log line is valid JSON';

$srv->stop;
# (valgrind keeps file descriptors for itself: nginx's setrlimit fails)
unlike join("\n", grep { !/setrlimit\(RLIMIT_NOFILE/ }
                   split /\n/, $srv->slurp('logs/error.log')),
       qr/\[(alert|emerg|crit)\]|exited on signal/, 'no alert, no crash';

done_testing;
