package Linguamate::Server;

# A real nginx (master + workers, in the foreground, our child) for tests
# that Test::Nginx blocks cannot express: concurrency across workers,
# reloads with state, timing.  Loads the module from TEST_NGINX_LOAD_MODULES
# and uses TEST_NGINX_BINARY like the suites.

use strict;
use warnings;
use File::Temp qw(tempdir);
use IO::Socket::INET;
use POSIX qw(WNOHANG);
use Time::HiRes qw(sleep time);
use HTTP::Tiny;

sub free_port {
    my $s = IO::Socket::INET->new(Listen => 1, LocalAddr => '127.0.0.1:0')
        or die "no free port: $!";
    return $s->sockport;
}

sub new {
    my ($class, %args) = @_;
    my $self = bless {
        workers => $args{workers} // 2,
        # worker_connections, and main-context lines (worker_rlimit_nofile)
        connections => $args{connections} // 1024,
        main    => $args{main} // '',
        port    => free_port(),
        dir     => tempdir('linguamate-srv-XXXXXX', TMPDIR => 1,
                           CLEANUP => !$ENV{TEST_NGINX_NO_CLEAN}),
        http    => HTTP::Tiny->new(timeout => 10, keep_alive => 0),
        owner   => $$,
    }, $class;
    mkdir "$self->{dir}/$_" for qw(conf logs);
    # workers run as an unprivileged user when the tests run as root
    chmod 0755, $self->{dir};
    return $self;
}

sub port { $_[0]{port} }

# seconds to wait for nginx itself: much longer under valgrind
sub slow { $ENV{TEST_NGINX_USE_VALGRIND} ? 10 * $_[1] : $_[1] }
sub dir { $_[0]{dir} }
sub url { "http://127.0.0.1:$_[0]{port}$_[1]" }

# write the configuration: $http is the http{} body, $server the server{}'s
sub configure {
    my ($self, $http, $server) = @_;
    my $modules = join '', map { "load_module $_;\n" }
                  split ' ', ($ENV{TEST_NGINX_LOAD_MODULES} // '');
    my $conf = <<"_EOC_";
${modules}daemon off;
master_process on;
worker_processes $self->{workers};
error_log logs/error.log info;
pid logs/nginx.pid;
$self->{main}
events { worker_connections $self->{connections}; accept_mutex off; }
http {
    access_log off;
    linguamate_env_from_process off;
    client_body_temp_path $self->{dir}/tmp_body;
    proxy_temp_path $self->{dir}/tmp_proxy;
$http
    server {
        listen 127.0.0.1:$self->{port};
        linguamate on;
$server
    }
}
_EOC_
    open my $fh, '>', "$self->{dir}/conf/nginx.conf.tmp" or die $!;
    print $fh $conf;
    close $fh;
    rename "$self->{dir}/conf/nginx.conf.tmp", "$self->{dir}/conf/nginx.conf"
        or die $!;
}

sub start {
    my ($self) = @_;
    my $bin = $ENV{TEST_NGINX_BINARY} // 'nginx';
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        open STDOUT, '>>', "$self->{dir}/logs/stdout.log";
        open STDERR, '>>', "$self->{dir}/logs/stderr.log";
        # under "make test VALGRIND=1" as the Test::Nginx suites are:
        # memcheck's errors go to logs/stderr.log, checked at stop
        my @vg;
        if ($ENV{TEST_NGINX_USE_VALGRIND}) {
            @vg = ('valgrind', '-q', '--tool=memcheck', '--leak-check=full',
                   '--show-possibly-lost=no', '--num-callers=50',
                   '--gen-suppressions=all');
            push @vg, "--suppressions=$ENV{TEST_NGINX_VALGRIND_SUPP}"
                if $ENV{TEST_NGINX_VALGRIND_SUPP};
        }
        exec @vg, $bin, '-p', "$self->{dir}/", '-c', 'conf/nginx.conf',
             '-e', 'logs/error.log';
        die "exec: $!";
    }
    $self->{pid} = $pid;
    my $ok = $self->poll(sub {
        return 0 if waitpid($pid, WNOHANG) == $pid;
        IO::Socket::INET->new("127.0.0.1:$self->{port}") ? 1 : 0;
    }, $self->slow(10));
    die "nginx did not start:\n" . $self->slurp('logs/stderr.log')
        . $self->slurp('logs/error.log') unless $ok;
    # the master listens before it forks: wait for every worker too
    $self->poll(sub { my @w = $self->worker_pids; @w >= $self->{workers} }, $self->slow(10));
    return $self;
}

sub worker_pids {
    my ($self) = @_;
    my @w;
    for my $stat (glob '/proc/[0-9]*/stat') {
        open my $fh, '<', $stat or next;
        my $line = <$fh> // next;
        # under valgrind the command is memcheck's
        push @w, $1 if $line =~ /^(\d+) \((?:nginx|memcheck-amd64-)\) \S+ $self->{pid} /;
    }
    return sort @w;
}

# SIGHUP and wait until the old workers are gone
sub reload {
    my ($self) = @_;
    my @old = $self->worker_pids;
    kill 'HUP', $self->{pid};
    return $self->poll(sub {
        my %now = map { $_ => 1 } $self->worker_pids;
        !grep { $now{$_} } @old;
    }, $self->slow(10));
}

sub stop {
    my ($self) = @_;
    return unless $self->{pid} && $$ == $self->{owner};
    kill 'QUIT', $self->{pid};
    my $gone = $self->poll(sub { waitpid($self->{pid}, WNOHANG) == $self->{pid} },
                           $self->slow(10));
    unless ($gone) {
        kill 'KILL', $self->{pid};
        waitpid $self->{pid}, 0;
    }
    delete $self->{pid};
    if ($ENV{TEST_NGINX_USE_VALGRIND}) {
        # a clean run adds no test (a suite may have said done_testing)
        my @errs = grep { /^==\d+== / } split /\n/, $self->slurp('logs/stderr.log');
        if (@errs) {
            Test::More::fail('no valgrind report');
            Test::More::diag(join "\n", @errs[0 .. ($#errs < 60 ? $#errs : 60)]);
        }
        truncate "$self->{dir}/logs/stderr.log", 0;
    }
}

# only the process that started nginx stops it (not a forked client)
sub DESTROY { $_[0]->stop if $$ == $_[0]{owner} }

sub get {
    my ($self, $path, %h) = @_;
    return $self->{http}->get($self->url($path), { headers => \%h });
}

sub poll {
    my ($self, $cond, $secs) = @_;
    my $end = time + $secs;
    while (time < $end) {
        my $v = $cond->();
        return $v if $v;
        sleep 0.02;
    }
    return $cond->();
}

sub slurp {
    my ($self, $file) = @_;
    open my $fh, '<', "$self->{dir}/$file" or return '';
    local $/;
    return <$fh>;
}

1;
