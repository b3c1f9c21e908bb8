# vim:set ft= ts=4 sw=4 et fdm=marker:
#
# Rate limiting across workers and over time, with a real master and two
# workers: exactness under concurrency, the sliding window, counters kept
# across a HUP reload, and the refusal of an incompatible zone change.

use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Time::HiRes qw(time sleep);
use HTTP::Tiny;
use POSIX ();
use Linguamate::Server;

my $srv = Linguamate::Server->new(workers => 2);

$srv->configure(<<'_HTTP_', <<'_SERVER_');
    linguamate_limit_zone exact size=1m window=1h limit=100;
    linguamate_limit_zone slide size=1m window=2s limit=2;
    linguamate_limit_zone kept size=1m window=1h limit=3;
    linguamate_limit_zone tiny size=32k window=1h limit=5 key=$http_x_key;
_HTTP_
        location = /api/exact { linguamate_limit exact; linguamate_endpoint root; }
        location = /api/slide { linguamate_limit slide; linguamate_endpoint root; }
        location = /api/kept { linguamate_limit kept; linguamate_endpoint root; }
        location = /api/tiny { linguamate_limit tiny; linguamate_endpoint root; }
_SERVER_
$srv->start;

my @workers = $srv->worker_pids;
is scalar @workers, 2, 'two workers';

# --- exact across workers: 50 clients x 10 requests, limit 100 ------------

my $clients = 50;
my $each = 10;
my @pipes;
for my $c (1 .. $clients) {
    pipe my $r, my $w or die;
    my $pid = fork // die;
    if ($pid == 0) {
        close $r;
        my $http = HTTP::Tiny->new(timeout => 10, keep_alive => 1);
        my %n;
        for (1 .. $each) {
            my $res = $http->get($srv->url('/api/exact'));
            $n{$res->{status}}++;
        }
        print $w join(',', map { "$_=$n{$_}" } sort keys %n), "\n";
        close $w;
        POSIX::_exit(0);
    }
    close $w;
    push @pipes, [$pid, $r];
}

my %total;
for my $p (@pipes) {
    my $line = readline($p->[1]) // '';
    waitpid $p->[0], 0;
    $total{$1} += $2 while $line =~ /(\d+)=(\d+)/g;
}

is $total{200} // 0, 100, 'exactly the limit passed (100 of 500)';
is $total{429} // 0, 400, 'every other request got 429';
is scalar(keys %total), 2, 'no other status';

my %served;
for (1 .. 20) {
    my $r = $srv->get('/api/exact');
    $served{$r->{status}}++;
}
is_deeply \%served, { 429 => 20 }, 'and it stays exact afterwards';

# --- a zone far too small: the least recently used keys are evicted ----------

my %tiny;
for my $i (1 .. 400) {
    $tiny{ $srv->get('/api/tiny', 'X-Key' => "client-number-$i-with-a-longer-key")->{status} }++;
}
is_deeply \%tiny, { 200 => 400 }, '400 distinct keys in a 32k zone: all served';
ok $srv->poll(sub { $srv->slurp('logs/error.log') =~ /\[warn\].*linguamate: zone "tiny" is full, evicted the least recently used entries/ }, 5),
   'the eviction is logged';
unlike $srv->slurp('logs/error.log'), qr/could not allocate node/,
       'and no request went uncounted';
is $srv->get('/api/tiny', 'X-Key' => 'client-number-400-with-a-longer-key')->{headers}{'x-ratelimit-remaining'},
   3, 'a recent key kept its count';
is $srv->get('/api/tiny', 'X-Key' => 'client-number-1-with-a-longer-key')->{headers}{'x-ratelimit-remaining'},
   4, 'the oldest key was evicted and starts afresh';

# --- the window slides: no burst at a window edge ------------------------

my $t0 = time;
is $srv->get('/api/slide')->{status}, 200, 'A passes';
sleep 1;     # the subject of this test is time itself: B one second later
is $srv->get('/api/slide')->{status}, 200, 'B passes, 1 s after A';
my $c = $srv->get('/api/slide');
is $c->{status}, 429, 'C is over the limit';
cmp_ok $c->{headers}{'retry-after'}, '<=', 1, 'Retry-After says A leaves within 1 s';

my $tok;
ok $srv->poll(sub { my $r = $srv->get('/api/slide'); $tok = time; $r->{status} == 200 }, 5),
   'D passes once A has left the window';
cmp_ok $tok - $t0, '>=', 1.95, 'not before A was 2 s old';
is $srv->get('/api/slide')->{status}, 429,
   'E right after D is refused: B is still in the window (a fixed window would let it through)';

# --- counters survive a HUP reload; a new limit applies at once ------------

for (1 .. 2) {
    is $srv->get('/api/kept')->{status}, 200, "kept request $_ passes";
}

$srv->configure(<<'_HTTP_', <<'_SERVER_');
    linguamate_limit_zone exact size=1m window=1h limit=100;
    linguamate_limit_zone slide size=1m window=2s limit=2;
    linguamate_limit_zone kept size=1m window=1h limit=4;
    linguamate_limit_zone tiny size=32k window=1h limit=5 key=$http_x_key;
_HTTP_
        location = /api/exact { linguamate_limit exact; linguamate_endpoint root; }
        location = /api/slide { linguamate_limit slide; linguamate_endpoint root; }
        location = /api/kept { linguamate_limit kept; linguamate_endpoint root; }
_SERVER_
ok $srv->reload, 'reloaded: the old workers are gone';

my $r = $srv->get('/api/kept');
is $r->{status}, 200, 'the third request passes';
is $r->{headers}{'ratelimit-policy'}, '"kept";q=4;w=3600', 'under the new limit of 4';
is $r->{headers}{'x-ratelimit-remaining'}, 1,
   'and the two requests before the reload still count';
is $srv->get('/api/kept')->{status}, 200, 'the fourth passes';
is $srv->get('/api/kept')->{status}, 429, 'the fifth does not';
is $srv->get('/api/exact')->{status}, 429, 'the exact zone is still exhausted';

# --- an incompatible change is refused, the old configuration serves -------

$srv->configure(<<'_HTTP_', <<'_SERVER_');
    linguamate_limit_zone exact size=1m window=1h limit=100 key=$http_x_key;
    linguamate_limit_zone slide size=1m window=2s limit=2;
    linguamate_limit_zone kept size=1m window=1h limit=4;
    linguamate_limit_zone tiny size=32k window=1h limit=5 key=$http_x_key;
_HTTP_
        location = /api/exact { linguamate_limit exact; linguamate_endpoint root; }
        location = /api/slide { linguamate_limit slide; linguamate_endpoint root; }
        location = /api/kept { linguamate_limit kept; linguamate_endpoint root; }
_SERVER_
my @before = $srv->worker_pids;
kill 'HUP', $srv->{pid};
ok $srv->poll(sub { $srv->slurp('logs/error.log') =~ /linguamate: zone "exact" is now a rate limit keyed by "\$http_x_key" while it previously was a rate limit keyed by the client address and route/ }, 10),
   'the key change is refused, naming both keys';
is_deeply [$srv->worker_pids], \@before, 'the old workers keep serving';
is $srv->get('/api/exact', 'X-Key' => 'fresh')->{status}, 429,
   'with the old key';

$srv->stop;
unlike $srv->slurp('logs/error.log'), qr/\[(alert|crit)\]|exited on signal/,
       'no alert, no crash';

done_testing();
