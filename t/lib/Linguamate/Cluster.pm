package Linguamate::Cluster;

# Cluster mode for the tests (docs/cluster.md): Debian's redis-server on a
# free port, a TCP proxy that can cut a replica off from it, and N nginx
# replicas (Linguamate::Server: real masters with workers) of one
# configuration, each with its REDIS_URL.  Everything runs in the
# foreground as our children, on random loopback ports, and is killed and
# reaped at exit.  Conditions are polled, never slept for.
#
#   plan skip_all => Linguamate::Cluster::no_redis_reason()
#       if Linguamate::Cluster::no_redis_reason();
#   my $cl = Linguamate::Cluster->new(replicas => 3, proxied => [2]);
#   $cl->configure(sub { my ($i, $redis_url, $srv) = @_; ($http, $server) });
#   $cl->start;
#   $cl->replica(0)->get('/api/metrics');
#   $cl->redis->kill9; $cl->redis->restart;
#   $cl->proxy(2)->cut; $cl->proxy(2)->restore;

use strict;
use warnings;
use POSIX ();
use Linguamate::Server;

# every child started here (pid => owner pid), for the END block
our %Children;

sub redis_bin {
    for my $d (split(/:/, $ENV{PATH} // ''), '/usr/bin', '/usr/sbin') {
        return "$d/redis-server" if length $d && -x "$d/redis-server";
    }
    return undef;
}

# why the cluster tests cannot run here, or undef
sub no_redis_reason {
    return redis_bin() ? undef
        : 'redis-server is not installed (Debian package redis-server)';
}

# poll(sub { condition }, seconds): the condition's value, or false when it
# did not hold in time (Linguamate::Server's, every 20 ms)
sub poll {
    my ($cond, $secs) = @_;
    return Linguamate::Server->poll($cond, $secs);
}

sub reap {
    my ($pid, $secs) = @_;
    return 1 unless $pid;
    return poll(sub {
        my $w = waitpid($pid, POSIX::WNOHANG());
        $w == $pid || $w == -1;
    }, $secs // 10);
}

sub new {
    my ($class, %a) = @_;
    my $self = bless {
        n       => $a{replicas} // 3,
        workers => $a{workers} // 2,
        proxied => { map { $_ => 1 } @{ $a{proxied} // [] } },
        owner   => $$,
    }, $class;
    # an interrupted run still stops its servers (END, DESTROY)
    for my $sig (qw(INT TERM HUP)) {
        $SIG{$sig} = sub { exit 1 }
            if !$SIG{$sig} || $SIG{$sig} eq 'DEFAULT';
    }
    $self->{redis} = Linguamate::Cluster::Redis->new;
    $self->{redis}->start;
    for my $i (0 .. $self->{n} - 1) {
        $self->{proxy}[$i] = Linguamate::Cluster::Proxy->new($self->{redis}->port)
            if $self->{proxied}{$i};
        $self->{srv}[$i] = Linguamate::Server->new(
            workers => $self->{workers}, main => $a{main} // '');
    }
    return $self;
}

sub redis { $_[0]{redis} }
sub proxy { $_[0]{proxy}[$_[1]] }
sub replica { $_[0]{srv}[$_[1]] }
sub replicas { @{ $_[0]{srv} } }
sub count { $_[0]{n} }

# the REDIS_URL replica i is given: Redis itself, or its proxy
sub redis_url {
    my ($self, $i) = @_;
    my $port = $self->{proxy}[$i] ? $self->{proxy}[$i]->port
                                  : $self->{redis}->port;
    return "redis://127.0.0.1:$port/0";
}

# $make->($i, $redis_url, $server) returns the http{} and server{} bodies
sub configure {
    my ($self, $make) = @_;
    for my $i (0 .. $self->{n} - 1) {
        my $s = $self->{srv}[$i];
        $s->configure($make->($i, $self->redis_url($i), $s));
    }
}

sub start {
    my ($self) = @_;
    $_->start for $self->replicas;
    return $self;
}

sub stop {
    my ($self) = @_;
    return unless $$ == $self->{owner};
    # in global destruction some may be gone already
    $_->stop for grep { defined } @{ $self->{srv} // [] };
    $_->stop for grep { defined } @{ $self->{proxy} // [] };
    $self->{redis}->stop if $self->{redis};
}

sub DESTROY { $_[0]->stop }

END {
    # children left by a die: Redis and the proxies (the replicas stop in
    # Linguamate::Server's DESTROY)
    for my $pid (keys %Children) {
        next unless $Children{$pid} == $$;
        kill 'KILL', $pid;
        waitpid $pid, 0;
    }
}

# ---------------------------------------------------------------------------

package Linguamate::Cluster::Redis;

use strict;
use warnings;
use File::Temp qw(tempdir);
use IO::Socket::INET;
use POSIX ();

sub new {
    my ($class) = @_;
    return bless {
        port  => Linguamate::Server::free_port(),
        dir   => tempdir('linguamate-redis-XXXXXX', TMPDIR => 1,
                         CLEANUP => !$ENV{TEST_NGINX_NO_CLEAN}),
        owner => $$,
    }, $class;
}

sub port { $_[0]{port} }
sub dir { $_[0]{dir} }
sub pid { $_[0]{pid} }
sub url { "redis://127.0.0.1:$_[0]{port}/0" }

# start redis-server on its port (the same one on a restart), in the
# foreground, no persistence; returns once it answers PING
sub start {
    my ($self) = @_;
    die "redis-server already running\n" if $self->{pid};
    my $bin = Linguamate::Cluster::redis_bin()
        // die "redis-server is not installed\n";
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        open STDIN, '<', '/dev/null';
        open STDOUT, '>>', "$self->{dir}/redis.out";
        open STDERR, '>&', \*STDOUT;
        no warnings 'exec';
        exec $bin, '--port', $self->{port}, '--bind', '127.0.0.1',
             '--save', '', '--appendonly', 'no', '--dir', $self->{dir},
             '--daemonize', 'no', '--logfile', "$self->{dir}/redis.log";
        POSIX::_exit(127);
    }
    $self->{pid} = $pid;
    $Linguamate::Cluster::Children{$pid} = $$;
    my $up = Linguamate::Cluster::poll(sub {
        die "redis-server exited at start:\n" . $self->log . "\n"
            if waitpid($pid, POSIX::WNOHANG()) == $pid;
        $self->ping;
    }, 10);
    die "redis-server did not answer PING in 10 s:\n" . $self->log . "\n"
        unless $up;
    return $self;
}

# one command in RESP; the reply's first line (+PONG, :3, $5 ...), or undef
sub command { my ($self, @args) = @_; command_at($self->{port}, @args) }

# the same to any port (a proxy's)
sub command_at {
    my ($port, @args) = @_;
    local $SIG{PIPE} = 'IGNORE';
    my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port",
                                  Timeout => 2) or return undef;
    my $req = '*' . @args . "\r\n";
    $req .= '$' . length($_) . "\r\n$_\r\n" for @args;
    print $s $req;
    local $/ = "\r\n";
    my $line = <$s>;
    return undef unless defined $line;
    $line =~ s/\r\n$//;
    if ($line =~ /^\$(\d+)$/) {
        my $v = '';
        read $s, $v, $1 + 2;
        $v =~ s/\r\n$//;
        return $v;
    }
    return $line;
}

sub ping { (($_[0]->command('PING') // '') eq '+PONG') ? 1 : 0 }

# kill -9, reaped: every connection to it is gone at once
sub kill9 {
    my ($self) = @_;
    my $pid = delete $self->{pid} or return;
    kill 'KILL', $pid;
    waitpid $pid, 0;
    delete $Linguamate::Cluster::Children{$pid};
}

# a new redis-server on the same port, empty (no persistence)
sub restart {
    my ($self) = @_;
    $self->kill9;
    return $self->start;
}

sub stop {
    my ($self) = @_;
    return unless $$ == $self->{owner};
    $self->kill9;
}

sub log {
    my ($self) = @_;
    my $out = '';
    for my $f ('redis.out', 'redis.log') {
        open my $fh, '<', "$self->{dir}/$f" or next;
        local $/;
        $out .= <$fh> // '';
    }
    return $out;
}

sub DESTROY { $_[0]->stop }

# ---------------------------------------------------------------------------

package Linguamate::Cluster::Proxy;

# A TCP proxy in a forked child between a replica and Redis.  cut() closes
# every connection it carries and stops listening (new connections are
# refused); restore() listens again on the same port.  Both return once
# the child has done it (it answers on a control pipe).

use strict;
use warnings;
use IO::Handle;
use IO::Select;
use IO::Socket::INET;
use POSIX ();

sub new {
    my ($class, $target) = @_;
    my $self = bless { target => $target, owner => $$ }, $class;
    my $listen = _listen(0) or die "proxy: listen: $!";
    $self->{port} = $listen->sockport;

    pipe my $cmd_r, my $cmd_w or die "pipe: $!";
    pipe my $ack_r, my $ack_w or die "pipe: $!";
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        $SIG{PIPE} = 'IGNORE';
        $SIG{TERM} = 'DEFAULT';
        close $cmd_w;
        close $ack_r;
        $ack_w->autoflush(1);
        _run($self, $listen, $cmd_r, $ack_w);
        POSIX::_exit(0);
    }
    close $listen;
    close $cmd_r;
    close $ack_w;
    $cmd_w->autoflush(1);
    @$self{qw(pid cmd ack)} = ($pid, $cmd_w, $ack_r);
    $Linguamate::Cluster::Children{$pid} = $$;
    return $self;
}

sub port { $_[0]{port} }

sub _listen {
    my ($port) = @_;
    return IO::Socket::INET->new(Listen => 64, LocalAddr => "127.0.0.1:$port",
                                 ReuseAddr => 1, Blocking => 1);
}

sub _control {
    my ($self, $what) = @_;
    print { $self->{cmd} } "$what\n";
    my $ack = readline($self->{ack}) // '';
    chomp $ack;
    die "proxy: $what: $ack\n" unless $ack eq 'ok';
    return 1;
}

sub cut { $_[0]->_control('cut') }
sub restore { $_[0]->_control('restore') }

# the child: carry bytes both ways until told otherwise
sub _run {
    my ($self, $listen, $cmd, $ack) = @_;
    my %peer;           # socket => the socket on the other side
    my $sel = IO::Select->new($listen, $cmd);

    my $drop = sub {
        my ($s) = @_;
        my $o = delete $peer{$s};
        for my $x (grep { defined } $s, $o) {
            delete $peer{$x};
            $sel->remove($x);
            close $x;
        }
    };

    while (1) {
        for my $s ($sel->can_read) {
            if (defined $cmd && $s == $cmd) {
                my $line = <$cmd>;
                return unless defined $line;     # the test is gone
                chomp $line;
                if ($line eq 'cut') {
                    my @all = values %peer;
                    $drop->($_) for @all;
                    if ($listen) {
                        $sel->remove($listen);
                        close $listen;
                        undef $listen;
                    }
                    print $ack "ok\n";
                } elsif ($line eq 'restore') {
                    $listen //= _listen($self->{port});
                    if ($listen) {
                        $sel->add($listen);
                        print $ack "ok\n";
                    } else {
                        print $ack "listen: $!\n";
                    }
                } else {
                    print $ack "unknown command\n";
                }
            } elsif ($listen && $s == $listen) {
                my $c = $listen->accept or next;
                my $u = IO::Socket::INET->new(
                    PeerAddr => "127.0.0.1:$self->{target}", Timeout => 2);
                unless ($u) {
                    close $c;            # Redis is down: so are we
                    next;
                }
                $peer{$c} = $u;
                $peer{$u} = $c;
                $sel->add($c, $u);
            } elsif (my $o = $peer{$s}) {
                my $n = sysread $s, my $buf, 65536;
                if (!$n) {
                    $drop->($s);
                    next;
                }
                my $off = 0;
                while ($off < $n) {
                    my $w = syswrite $o, $buf, $n - $off, $off;
                    unless ($w) {
                        $drop->($s);
                        last;
                    }
                    $off += $w;
                }
            }
        }
    }
}

sub stop {
    my ($self) = @_;
    return unless $self->{pid} && $$ == $self->{owner};
    close $self->{cmd};                 # the child sees EOF and exits
    kill 'TERM', $self->{pid}
        unless Linguamate::Cluster::reap($self->{pid}, 2);
    waitpid $self->{pid}, 0;
    delete $Linguamate::Cluster::Children{ delete $self->{pid} };
}

sub DESTROY { $_[0]->stop }

1;
