package Linguamate::Deployment;

# One default deployment (conf/ rendered by scripts/linguamate) in a
# folder of its own, for the end-to-end tests: its env file, run dir and
# port; scripts/linguamate with an exact environment; HTTP calls.

use strict;
use warnings;
use HTTP::Tiny;
use IO::Socket::INET;
use Time::HiRes qw(sleep time);
use Exporter 'import';

our @EXPORT_OK = qw(free_port poll);

my $repo = $ENV{LINGUAMATE_REPO} // do { require Cwd; Cwd::getcwd() };

sub free_port {
    my $s = IO::Socket::INET->new(Listen => 1, LocalAddr => '127.0.0.1:0')
        or die "no port: $!";
    return $s->sockport;
}

# the condition's value once true, polled every 50 ms for up to $secs
sub poll {
    my ($cond, $secs) = @_;
    my $end = time + $secs;
    while (time < $end) {
        my $v = $cond->();
        return $v if $v;
        sleep 0.05;
    }
    return $cond->();
}

# the module: a prebuilt one, else scripts/build.sh's (built once)
my $module;
sub module {
    return $module //= $ENV{LINGUAMATE_MODULE} // do {
        my $m = `'$repo/scripts/build.sh'`;
        chomp $m;
        die "build failed\n" if $? || !-f $m;
        $m;
    };
}

# new(dir => ..., env => "A=1\nB=2\n" (the env file, from .env.example
# with these lines added after it; undef: no env file), port => N)
sub new {
    my ($class, %a) = @_;
    my $self = bless {
        dir  => $a{dir},
        port => $a{port} // free_port(),
        http => HTTP::Tiny->new(timeout => 5),
    }, $class;
    mkdir $self->{dir};
    $self->{env_file} = "$self->{dir}/app.env";
    $self->{run_dir} = "$self->{dir}/run";
    $self->write_env($a{env}) if defined $a{env};
    return $self;
}

sub repo { $repo }
sub port { $_[0]{port} }
sub env_file { $_[0]{env_file} }
sub run_dir { $_[0]{run_dir} }
sub url { "http://127.0.0.1:$_[0]{port}" }

sub write_env {
    my ($self, $extra) = @_;
    open my $in, '<', "$repo/.env.example" or die $!;
    my $text = do { local $/; <$in> };
    $text .= "\nPORT=$self->{port}\nWORKER_PROCESSES=1\n"
           . "STATE_DIR=$self->{dir}/state\n" . ($extra // '');
    my $f = $self->{env_file};
    open my $out, '>', "$f.tmp" or die $!;
    print $out $text;
    close $out;
    chmod 0600, "$f.tmp";
    rename "$f.tmp", $f or die $!;
}

# scripts/linguamate ARGS with only PATH, HOME, the sanitizer's variables
# and the given variables in its environment: (exit code, standard output and error)
sub ctl {
    my ($self, $env, @args) = @_;
    my %e = (
        PATH                => $ENV{PATH},
        HOME                => $ENV{HOME} // '/',
        LINGUAMATE_RUN_DIR  => $self->{run_dir},
        LINGUAMATE_ENV_FILE => $self->{env_file},
        LINGUAMATE_MODULE   => module(),
        %{ $env // {} },
    );
    $e{NGINX} = $ENV{TEST_NGINX_BINARY} if $ENV{TEST_NGINX_BINARY};
    # a SANITIZE=1 run: the runtime and where it reports (scripts/test.sh)
    for my $k (qw(LINGUAMATE_PRELOAD ASAN_OPTIONS UBSAN_OPTIONS)) {
        $e{$k} = $ENV{$k} if defined $ENV{$k} && !exists $e{$k};
    }
    my $pid = open(my $fh, '-|') // die "fork: $!";
    if (!$pid) {
        %ENV = %e;
        open STDERR, '>&', \*STDOUT or die;
        exec "$repo/scripts/linguamate", @args or die "exec: $!";
    }
    my $out = do { local $/; <$fh> } // '';
    close $fh;
    return ($? >> 8, $out);
}

sub get {
    my ($self, $path, %h) = @_;
    return $self->{http}->get($self->url . $path, { headers => \%h });
}

sub master {
    my ($self) = @_;
    open my $f, '<', "$self->{run_dir}/nginx.pid" or return;
    my $pid = <$f>;
    chomp $pid;
    return $pid;
}

# the lines of a log file under the run dir's logs/
sub log_lines {
    my ($self, $name) = @_;
    open my $fh, '<', "$self->{run_dir}/logs/" . ($name // 'linguamate.log')
        or return ();
    return <$fh>;
}

sub DESTROY {
    my ($self) = @_;
    my $pid = $self->master or return;
    kill 'QUIT', $pid if $pid && -d "/proc/$pid";
}

1;
