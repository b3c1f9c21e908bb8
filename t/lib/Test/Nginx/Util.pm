package Test::Nginx::Util;

# Lower layer of the project's self-contained Test::Nginx subset (see
# t/README.md): global settings, the per-test-file server root, nginx.conf
# generation and the life cycle of the nginx process under test.
#
# This is an independent implementation that follows the documented
# behaviour of openresty's Test::Nginx (Test::Nginx::Socket); it is not a
# copy of it.  Test::Nginx::Socket builds on this module and re-exports the
# public functions, so test files normally never use this module directly.

use strict;
use warnings;

use Exporter 'import';
use Config ();
use Cwd ();
use File::Basename ();
use File::Path qw(make_path remove_tree);
use File::Spec ();
use IO::Socket::INET ();
use POSIX qw(:sys_wait_h SIGQUIT SIGTERM SIGKILL);
use Time::HiRes qw(sleep time);
use Time::Local qw(timegm);

our $VERSION = '0.01';

our @EXPORT = qw(
    repeat_each workers master_on master_off master_process_enabled
    no_shuffle no_long_string no_diff log_level no_root_location
    check_accum_error_log use_hup no_nginx_manager timeout
    worker_connections config_preamble env_to_nginx
    server_name server_addr server_root html_dir
    server_port server_port_for_client
    add_block_preprocessor add_cleanup_handler bail_out
    $ServerPort $ServerPortForClient $ServerAddr $ServerName
    $RepeatEach $NoLongString $NginxVersion $NginxRawVersion
    $ServRoot $ConfFile $PidFile
);

# Internals used by Test::Nginx::Socket (not exported to test files).
our @EXPORT_OK = qw(
    parse_time trim show_all_chars parse_headers
    get_nginx_version canon_version ensure_server_port gen_rand_port
    port_is_free setup_server_root remove_server_root write_config_file
    write_user_files expand_env_in_text start_nginx stop_nginx nginx_alive
    startup_output describe_status read_file_from file_size write_file
    cleanup
);

#---------------------------------------------------------------------------
# Settings.  Each one can be changed by an exported function (called before
# run_tests()) and most by a TEST_NGINX_* environment variable, as upstream.
#---------------------------------------------------------------------------

our $RepeatEach        = 1;
our $Workers           = 1;
our $WorkerConnections = 64;
our $MasterProcessEnabled =
    _on_off($ENV{TEST_NGINX_MASTER_PROCESS}) // 'off';
our $LogLevel          = $ENV{TEST_NGINX_LOG_LEVEL} || 'debug';
our $NoShuffle         = $ENV{TEST_NGINX_NO_SHUFFLE} || 0;
our $NoRootLocation    = 0;
our $NoLongString      = 0;
our $CheckAccumErrLog  = $ENV{TEST_NGINX_CHECK_ACCUM_ERR_LOG} || 0;
our $Timeout           = $ENV{TEST_NGINX_TIMEOUT} || 3;
our $ServerAddr        = '127.0.0.1';
our $ServerName        = 'localhost';
our $NginxBinary       = $ENV{TEST_NGINX_BINARY} || 'nginx';
our $ConfigPreamble    = '';
our $NoNginxManager    = $ENV{TEST_NGINX_NO_NGINX_MANAGER} || 0;
our $UseHup            = $ENV{TEST_NGINX_USE_HUP} || 0;   # accepted, ignored
our $Verbose           = $ENV{TEST_NGINX_VERBOSE} || 0;
our $ReusePort         = $ENV{TEST_NGINX_REUSE_PORT} || 0;
our $EventType         = $ENV{TEST_NGINX_EVENT_TYPE};
our $PostponeOutput    = $ENV{TEST_NGINX_POSTPONE_OUTPUT};
our $WorkerUser        = $ENV{TEST_NGINX_WORKER_USER};
our $UseValgrind       = $ENV{TEST_NGINX_USE_VALGRIND};
our $CheckSanitizer    = $ENV{TEST_NGINX_CHECK_SANITIZER} || 0;
our $NoClean           = $ENV{TEST_NGINX_NO_CLEAN} || 0;

our (@EnvToNginx, @BlockPreprocessors, @CleanupHandlers);

# Version information of the nginx binary, filled by get_nginx_version().
our ($NginxVersion, $NginxRawVersion, $OpenSSLVersion, $NginxConfigureArgs);

# Seconds to wait for nginx to become ready / to quit gracefully.
our $StartTimeout = $UseValgrind ? 60 : 10;
our $StopTimeout  = $UseValgrind ? 30 : 3;

sub _on_off {
    my $v = shift;
    return undef unless defined $v && length $v;
    return ($v =~ /^(?:on|1|yes|true)$/i) ? 'on' : 'off';
}

sub repeat_each (@) {
    $RepeatEach = shift if @_;
    return $RepeatEach;
}

sub workers (@) {
    $Workers = shift if @_;
    return $Workers;
}

sub worker_connections (@) {
    $WorkerConnections = shift if @_;
    return $WorkerConnections;
}

sub master_on ()  { $MasterProcessEnabled = 'on' }
sub master_off () { $MasterProcessEnabled = 'off' }

sub master_process_enabled (@) {
    $MasterProcessEnabled = $_[0] ? 'on' : 'off' if @_;
    return $MasterProcessEnabled;
}

sub no_shuffle ()            { $NoShuffle = 1 }
sub no_long_string ()        { $NoLongString = 1 }
sub no_diff ()               { $ENV{TEST_SHOW_NO_DIFFS} = 1 }
sub no_root_location ()      { $NoRootLocation = 1 }
sub check_accum_error_log () { $CheckAccumErrLog = 1 }
sub use_hup ()               { $UseHup = 1 }       # we always restart
sub no_nginx_manager ()      { $NoNginxManager = 1 }

sub log_level (@) {
    $LogLevel = shift if @_;
    return $LogLevel;
}

sub timeout (@) {
    $Timeout = shift if @_;
    return $Timeout;
}

sub config_preamble ($) { $ConfigPreamble = shift }

sub server_name (@) {
    $ServerName = shift if @_;
    return $ServerName;
}

sub server_addr (@) {
    $ServerAddr = shift if @_;
    return $ServerAddr;
}

sub env_to_nginx (@) {
    die "env_to_nginx: no arguments specified\n" unless @_;
    for my $v (@_) {
        die "env_to_nginx: bad argument value: $v\n"
            if $v !~ /^[A-Za-z_]/ || $v =~ /\n/;
        push @EnvToNginx, $v;
    }
}

sub add_block_preprocessor (&) { unshift @BlockPreprocessors, shift }
sub add_cleanup_handler ($)    { unshift @CleanupHandlers, shift }

#---------------------------------------------------------------------------
# Ports
#---------------------------------------------------------------------------

# Random ports are drawn from outside the kernel's ephemeral range, so they
# never clash with the local port of an outgoing connection.
sub _port_range {
    my ($lo, $hi) = (32768, 60999);
    if (open my $fh, '<', '/proc/sys/net/ipv4/ip_local_port_range') {
        my $line = <$fh> // '';
        ($lo, $hi) = ($1, $2) if $line =~ /(\d+)\s+(\d+)/;
    }
    return $lo > 12000 ? (10000, $lo - 1) : ($hi + 1, 65535);
}

# True when a listening socket could be bound to $port right now (with
# SO_REUSEADDR, like nginx does, so TIME_WAIT leftovers do not count).
sub port_is_free ($) {
    my $port = shift;
    my $s = IO::Socket::INET->new(
        LocalAddr => '0.0.0.0',
        LocalPort => $port,
        Proto     => 'tcp',
        ReuseAddr => 1,
        Listen    => 1,
    );
    return 0 unless $s;
    close $s;
    return 1;
}

sub gen_rand_port (;$) {
    my $used = shift || {};
    my ($lo, $hi) = _port_range();
    for (1 .. 1000) {
        my $port = $lo + int(rand($hi - $lo + 1));
        next if $used->{$port};
        return $port if port_is_free($port);
    }
    return undef;
}

# The main listening port.  A port given by the user (TEST_NGINX_SERVER_PORT
# or TEST_NGINX_PORT) is used as is.  Otherwise one random free port is
# chosen per test file and re-checked before every nginx start (see
# ensure_server_port()).  _TEST_NGINX_AUTO_PORT marks a value we chose
# ourselves, so that test files started from this process (the runner's
# self-test does that) do not mistake it for a user setting.
our $FixedPort;
our $ServerPort;
{
    my $env = $ENV{TEST_NGINX_SERVER_PORT} || $ENV{TEST_NGINX_PORT};
    my $auto = $ENV{_TEST_NGINX_AUTO_PORT};
    if ($env && !($auto && $auto eq $env)) {
        $FixedPort  = 1;
        $ServerPort = $env;
    } else {
        $ServerPort = gen_rand_port()
            or die "Test::Nginx: cannot find a free port\n";
        $ENV{_TEST_NGINX_AUTO_PORT} = $ServerPort;
    }
    $ENV{TEST_NGINX_SERVER_PORT} = $ServerPort;
}
our $ServerPortForClient = $ENV{TEST_NGINX_CLIENT_PORT} || $ServerPort;

sub server_port (@) {
    if (@_) {
        $ServerPort = shift;
        $ServerPortForClient = $ServerPort;
        $FixedPort = 1;
        $ENV{TEST_NGINX_SERVER_PORT} = $ServerPort;
    }
    return $ServerPort;
}

sub server_port_for_client (@) {
    $ServerPortForClient = shift if @_;
    return $ServerPortForClient;
}

# Called before each nginx start: if somebody else grabbed our random port in
# the meantime, move to another one.
sub ensure_server_port () {
    return if $FixedPort || port_is_free($ServerPort);
    my $new = gen_rand_port({ $ServerPort => 1 })
        or return;
    $ServerPortForClient = $new if $ServerPortForClient == $ServerPort;
    $ServerPort = $new;
    $ENV{TEST_NGINX_SERVER_PORT} = $ENV{_TEST_NGINX_AUTO_PORT} = $new;
}

#---------------------------------------------------------------------------
# Server root.  Default: t/servroot_<test name>_<pid> (unique per test file
# process, so parallel prove jobs never collide), removed at exit unless
# TEST_NGINX_NO_CLEAN is set.  TEST_NGINX_SERVROOT overrides it (and is then
# never removed).
#---------------------------------------------------------------------------

our ($ServRoot, $OwnServRoot);
if (defined $ENV{TEST_NGINX_SERVROOT} && length $ENV{TEST_NGINX_SERVROOT}) {
    $ServRoot = File::Spec->rel2abs($ENV{TEST_NGINX_SERVROOT});
    $OwnServRoot = 0;
} else {
    my $tag = File::Basename::basename($0);
    $tag =~ s/\.t$//;
    $tag =~ s/[^\w.-]+/_/g;
    my $base = -d 't' ? 't' : File::Spec->tmpdir;
    $ServRoot = File::Spec->rel2abs("$base/servroot_${tag}_$$");
    $OwnServRoot = 1;
}

our $LogDir     = "$ServRoot/logs";
our $HtmlDir    = "$ServRoot/html";
our $ConfDir    = "$ServRoot/conf";
our $ConfFile   = "$ConfDir/nginx.conf";
our $ErrLogFile = "$LogDir/error.log";
our $AccLogFile = "$LogDir/access.log";
our $StderrFile = "$LogDir/stderr.log";
our $StdoutFile = "$LogDir/stdout.log";
our $PidFile    = "$LogDir/nginx.pid";

$ENV{TEST_NGINX_SERVER_ROOT} = $ServRoot;
$ENV{TEST_NGINX_HTML_DIR}    = $HtmlDir;

sub server_root () { $ServRoot }
sub html_dir ()    { $HtmlDir }

# Recreate conf/, logs/ and html/ (and drop nginx's *_temp / *_cache
# directories) so every nginx start sees a clean tree.
sub setup_server_root () {
    make_path($ServRoot) unless -d $ServRoot;
    remove_tree($ConfDir, $LogDir, $HtmlDir,
                glob("$ServRoot/*_temp"), glob("$ServRoot/*_cache"));
    for my $d ($ConfDir, $LogDir, $HtmlDir) {
        make_path($d) or die "cannot create $d: $!\n";
    }
    write_file("$HtmlDir/index.html",
        '<html><head><title>It works!</title></head>'
        . '<body>It works!</body></html>');
}

sub remove_server_root () {
    return unless -d $ServRoot;
    if ($NoClean) {
        warn "# TEST_NGINX_NO_CLEAN: the server root is kept in $ServRoot\n";
    } elsif ($OwnServRoot) {
        remove_tree($ServRoot);
    }
}

#---------------------------------------------------------------------------
# Small helpers
#---------------------------------------------------------------------------

sub write_file ($$) {
    my ($path, $data) = @_;
    open my $out, '>', $path or die "cannot open $path for writing: $!\n";
    binmode $out;
    print $out $data;
    close $out or die "cannot write $path: $!\n";
}

# Contents of $path from byte $offset on; returns ($data, $new_offset).
sub read_file_from ($;$) {
    my ($path, $offset) = @_;
    $offset //= 0;
    open my $in, '<', $path or return ('', $offset);
    binmode $in;
    seek $in, $offset, 0 if $offset;
    my $data = do { local $/; <$in> } // '';
    close $in;
    return ($data, $offset + length $data);
}

sub file_size ($) { my $s = -s $_[0]; return $s // 0 }

# Upstream's time value syntax: "1.5", "1.5s" or "500ms" (seconds).
sub parse_time ($) {
    my $t = shift;
    return undef unless defined $t;
    $t =~ s/^\s+|\s+$//g;
    return $1 / 1000 if $t =~ /^([\d.]+)ms$/;
    return $1 if $t =~ /^([\d.]+)s?$/;
    return $t;
}

# Collapse whitespace, used in the response_body_like test name.
sub trim ($) {
    my $s = shift;
    return undef unless defined $s;
    $s =~ s/^\s+|\s+$//g;
    $s =~ s/\s+/ /g;
    return $s;
}

sub show_all_chars ($) {
    my $s = shift;
    return 'undef' unless defined $s;
    $s =~ s/\\/\\\\/g;
    $s =~ s/\n/\\n/g;
    $s =~ s/\r/\\r/g;
    $s =~ s/\t/\\t/g;
    $s =~ s/([\x00-\x1f\x7f-\xff])/sprintf('\\x%02x', ord $1)/ge;
    return $s;
}

# Parse "Name: value" lines (and "!Name" = must be absent) into an ordered
# list of [name, value-or-undef] pairs; later duplicates win.
sub parse_headers ($) {
    my $s = shift;
    my (@order, %val);
    for my $line (split /\n/, $s // '') {
        $line =~ s/^\s+|\s+$//g;
        next if $line eq '';
        my ($key, $value);
        if ($line =~ s/^!\s*//) {
            $key = $line;
        } else {
            ($key, $value) = split /\s*:\s*/, $line, 2;
            $value //= '';
        }
        push @order, $key unless exists $val{$key};
        $val{$key} = $value;
    }
    return [ map { [ $_, $val{$_} ] } @order ];
}

# Replace $TEST_NGINX_XXX in a config-like text: $TEST_NGINX_RAND_PORT_<N>
# gets a free random port (one per name and block, stored in %$rand_ports),
# the server port/root/html dir come from the runner, everything else from
# %ENV.  Unknown variables are fatal when $strict is set (config sections,
# as upstream); otherwise they are left alone.
sub expand_env_in_text ($$;$) {
    my ($text, $rand_ports, $strict) = @_;
    return $text unless defined $text && !ref $text;
    $text =~ s{\$(TEST_NGINX_[_A-Z0-9]+)}{
        my $var = $1;
        my $v;
        if ($var =~ /^TEST_NGINX_RAND_PORT_\d+$/) {
            if (!defined $rand_ports->{$var}) {
                my %used = ($ServerPort => 1,
                            map { $_ => 1 } grep { defined } values %$rand_ports);
                $rand_ports->{$var} = gen_rand_port(\%used)
                    // die "cannot find a free port for \$$var\n";
            }
            $v = $rand_ports->{$var};
        } elsif ($var eq 'TEST_NGINX_SERVER_PORT'
                 || ($var eq 'TEST_NGINX_PORT' && !defined $ENV{$var})) {
            $v = $ServerPort;
        } elsif ($var eq 'TEST_NGINX_SERVER_ROOT') {
            $v = $ServRoot;
        } elsif ($var eq 'TEST_NGINX_HTML_DIR') {
            $v = $ENV{TEST_NGINX_HTML_DIR} // $HtmlDir;
        } elsif (defined $ENV{$var}) {
            $v = $ENV{$var};
        } elsif ($strict) {
            die "No environment $var defined.\n";
        } else {
            $v = "\$$var";
        }
        $v;
    }ge;
    return $text;
}

#---------------------------------------------------------------------------
# nginx binary information
#---------------------------------------------------------------------------

sub find_executable ($) {
    my $cmd = shift;
    if ($cmd =~ m{/}) {
        return (-f $cmd && -x _) ? $cmd : undef;
    }
    for my $dir (split /\Q$Config::Config{path_sep}\E/, $ENV{PATH} // '') {
        next unless length $dir;
        my $abs = "$dir/$cmd";
        return $abs if -f $abs && -x _;
    }
    # nginx usually lives in an sbin directory that is not always in PATH.
    for my $dir (qw(/usr/sbin /usr/local/sbin /usr/local/nginx/sbin)) {
        my $abs = "$dir/$cmd";
        return $abs if -f $abs && -x _;
    }
    return undef;
}

sub canon_version (@) {
    my ($a, $b, $c, $d) = @_;
    my $v = sprintf "%d.%03d%03d", $a, $b // 0, $c // 0;
    $v .= sprintf "%03d", ord($d) - ord('a') if defined $d && length $d;
    return $v;
}

# Run "nginx -V" once; dies with a readable message when it cannot.
sub get_nginx_version () {
    return $NginxVersion if defined $NginxVersion;
    my $bin = find_executable($NginxBinary)
        or die "cannot find the nginx executable \"$NginxBinary\" "
             . "(set TEST_NGINX_BINARY or PATH)\n";
    $NginxBinary = $bin;
    my $out = `'$bin' -V 2>&1`;
    die "\"$bin -V\" failed: $out\n" if $? != 0;
    if ($out =~ m{built with OpenSSL (\d+)\.(\d+)\.(\d+)([a-z])?}) {
        $OpenSSLVersion = canon_version($1, $2, $3, $4);
    }
    ($NginxConfigureArgs) = $out =~ /^configure arguments:(.*)$/m;
    $NginxConfigureArgs //= '';
    if ($out =~ m{(?:nginx|openresty)[^/\s]*/(\d+)\.(\d+)\.(\d+)}
        || $out =~ m{\w+/(\d+)\.(\d+)\.(\d+)})
    {
        $NginxRawVersion = "$1.$2.$3";
        $NginxVersion = canon_version($1, $2, $3);
        return $NginxVersion;
    }
    die "cannot parse the output of \"$bin -V\": $out\n";
}

#---------------------------------------------------------------------------
# nginx.conf
#---------------------------------------------------------------------------

# Directives pointing nginx's temporary directories into the server root
# (distribution builds compile in absolute paths such as /var/lib/nginx),
# with the module that must be present for each of them.
my @TempPaths = (
    [ client_body_temp_path => 'client_body_temp', undef ],
    [ proxy_temp_path       => 'proxy_temp',   'http_proxy_module' ],
    [ fastcgi_temp_path     => 'fastcgi_temp', 'http_fastcgi_module' ],
    [ uwsgi_temp_path       => 'uwsgi_temp',   'http_uwsgi_module' ],
    [ scgi_temp_path        => 'scgi_temp',    'http_scgi_module' ],
);

# Write conf/nginx.conf for $block; $config is the (already expanded)
# --- config section.  Layout follows upstream's generated file.
sub write_config_file ($$$) {
    my ($block, $config, $rand_ports) = @_;

    my $expand = sub { expand_env_in_text($_[0] // '', $rand_ports, 1) };
    my $main_config      = $expand->($block->main_config);
    my $http_config      = $expand->($block->http_config);
    my $post_main_config = $expand->($block->post_main_config);
    my $preamble         = $expand->($ConfigPreamble);
    my $server_name      = $block->server_name // $ServerName;
    $config //= '';

    my $log_level = $block->log_level // $LogLevel;
    $log_level =~ s/^\s+|\s+$//g;

    my $load_modules = join '', map { "load_module $_;\n" }
        grep { length } split /\s+/, ($ENV{TEST_NGINX_LOAD_MODULES} // '');

    my $env = '';
    for my $v (qw(MOCKEAGAIN_VERBOSE MOCKEAGAIN MOCKEAGAIN_WRITE_TIMEOUT_PATTERN
                  MOCKNOEAGAIN_VERBOSE MOCKNOEAGAIN LD_PRELOAD LD_LIBRARY_PATH
                  ASAN_OPTIONS UBSAN_OPTIONS LSAN_OPTIONS),
               @EnvToNginx)
    {
        $env .= $v =~ /\s/ ? "env '$v';\n" : "env $v;\n";
    }

    my $user = '';
    if (defined $WorkerUser && length $WorkerUser) {
        $user = "user $WorkerUser;\n";
    } elsif ($> == 0) {
        $user = "user root;\n";   # workers must be able to read servroot
    }

    my $temp = '';
    for my $t (@TempPaths) {
        my ($directive, $dir, $module) = @$t;
        next if $http_config =~ /\b$directive\b/;
        next if $module && ($NginxConfigureArgs // '') =~ /--without-$module\b/;
        $temp .= "    $directive $ServRoot/$dir;\n";
    }

    my $extra_http = '';
    if (defined $PostponeOutput && $http_config !~ /\bpostpone_output\b/) {
        $extra_http .= "    postpone_output $PostponeOutput;\n";
    }

    my $listen_opts = $ReusePort ? ' reuseport' : '';
    (my $quoted_name = $server_name) =~ s/(['\\])/\\$1/g;

    my $root_location = $NoRootLocation ? '' : <<"_EOC_";
        location / {
            root $HtmlDir;
            index index.html index.htm;
        }
_EOC_

    my $use_event = defined $EventType ? "    use $EventType;\n" : '';
    my $name = $block->name // '';
    $name =~ s/\n/ /g;

    write_file($ConfFile, <<"_EOC_");
# Generated by t/lib/Test/Nginx for: $name
${load_modules}worker_processes  $Workers;
daemon off;
master_process $MasterProcessEnabled;
error_log $ErrLogFile $log_level;
pid       $PidFile;
$env$user
# Begin main_config
$main_config
# End main_config

http {
    access_log $AccLogFile;
    default_type text/plain;
    keepalive_timeout  68;
$temp$extra_http
# Begin http_config
$http_config
# End http_config

    server {
        listen          $ServerPort$listen_opts;
        server_name     '$quoted_name';
        client_max_body_size 30M;

        # Begin preamble config...
$preamble
        # End preamble config...

        # Begin test case config...
$config
        # End test case config.

$root_location    }
}

# Begin post_main_config
$post_main_config
# End post_main_config

events {
    accept_mutex off;
    worker_connections  $WorkerConnections;
$use_event}
_EOC_
}

# "user_files" section: either text with ">>> name [mtime]" headers or (with
# eval) an array of [name, body, mtime].  Relative names are created under
# html/, bodies go through $TEST_NGINX_* expansion.
sub write_user_files ($$) {
    my ($block, $rand_ports) = @_;
    my $files = $block->user_files;
    return unless $files;

    if (!ref $files) {
        my @list;
        for my $line (split /^/, $files) {
            if ($line =~ /^>>> (\S+)(?:[ \t]+(\S.*?))?\s*$/) {
                push @list, [ $1, undef, $2 ];
            } elsif (@list) {
                $list[-1][1] .= $line;
            }
        }
        $files = \@list;
    } elsif (ref $files ne 'ARRAY') {
        die "wrong value type for --- user_files: " . ref($files) . "\n";
    }

    for my $f (@$files) {
        my ($fname, $body, $date) = @$f;
        my $path = $fname =~ m{^/} ? $fname : "$HtmlDir/$fname";
        my $dir = File::Basename::dirname($path);
        make_path($dir) unless -d $dir;
        write_file($path, expand_env_in_text($body // '', $rand_ports));
        if (defined $date && length $date) {
            my $mtime = parse_touch_time($date)
                // die "bad timestamp \"$date\" for user file $fname\n";
            utime $mtime, $mtime, $path
                or die "cannot set the mtime of $path: $!\n";
        }
    }
}

# touch -t syntax [[CC]YY]MMDDhhmm[.ss], interpreted as GMT like upstream.
sub parse_touch_time ($) {
    my $t = shift;
    my $ss = 0;
    $ss = $1 if $t =~ s/\.(\d\d)$//;
    return undef unless $t =~ /^\d+$/;
    my $year;
    if (length $t == 12) {
        $year = substr $t, 0, 4, '';
    } elsif (length $t == 10) {
        my $yy = substr $t, 0, 2, '';
        $year = $yy >= 69 ? 1900 + $yy : 2000 + $yy;
    } elsif (length $t == 8) {
        $year = (gmtime)[5] + 1900;
    } else {
        return undef;
    }
    my ($mon, $day, $hh, $mm) = $t =~ /^(\d\d)(\d\d)(\d\d)(\d\d)$/;
    my $res = eval { timegm($ss, $mm, $hh, $day, $mon - 1, $year) };
    return $res;
}

#---------------------------------------------------------------------------
# The nginx process.  nginx runs in the foreground ("daemon off") as a
# direct child of the test process, in its own process group, with
# stdout/stderr going to logs/stdout.log and logs/stderr.log.
#---------------------------------------------------------------------------

our $NginxPid;        # pid of the running nginx (master or single process)
our $LastNginxPid;    # pid of the last nginx started (kept after it exits)
our $NginxStatus;     # wait status once reaped

sub nginx_command () {
    my @cmd = ($NginxBinary, '-p', "$ServRoot/", '-c', $ConfFile);
    # -e (nginx >= 1.19.5) sends start-up errors to our error.log too.
    push @cmd, '-e', $ErrLogFile
        if defined $NginxVersion && $NginxVersion >= canon_version(1, 19, 5);

    if ($UseValgrind) {
        my @vg;
        if ($UseValgrind =~ /^\d+$/) {
            @vg = ('valgrind', '-q', '--tool=memcheck', '--leak-check=full',
                   '--show-possibly-lost=no', '--num-callers=100',
                   '--error-exitcode=97', '--gen-suppressions=all');
        } else {
            @vg = ('valgrind', split ' ', $UseValgrind);
        }
        my $supp = $ENV{TEST_NGINX_VALGRIND_SUPP};
        push @vg, "--suppressions=$supp" if $supp;
        push @vg, '--suppressions=valgrind.suppress'
            if !$supp && -f 'valgrind.suppress';
        unshift @cmd, @vg;
    }
    return @cmd;
}

# Make the kernel kill nginx if the test process dies without cleaning up
# (Linux prctl(PR_SET_PDEATHSIG)); best effort, silently skipped elsewhere.
sub _set_parent_death_signal () {
    return unless $^O eq 'linux';
    my $nr = $Config::Config{archname} =~ /x86_64/  ? 157
           : $Config::Config{archname} =~ /aarch64/ ? 167
           : return;
    eval { syscall($nr, 1, SIGKILL) };
}

# Is the nginx we started still alive?  Reaps it (and remembers the status)
# if it is not.
sub nginx_alive () {
    return 0 unless $NginxPid;
    return 0 if defined $NginxStatus;
    my $r = waitpid($NginxPid, WNOHANG);
    return 1 if $r == 0;
    $NginxStatus = $r == $NginxPid ? $? : -1;
    return 0;
}

sub describe_status ($) {
    my $st = shift;
    return 'unknown status' if !defined $st || $st == -1;
    return 'signal ' . ($st & 127) . (($st & 128) ? ' (core dumped)' : '')
        if $st & 127;
    return 'exit code ' . ($st >> 8);
}

# Start nginx and wait until it is ready, i.e. until it has written its pid
# file (nginx does that after its listening sockets are open).  A child that
# exits first is a start failure.  Returns a hash:
#   { ok => 1 }  or  { ok => 0, exited => 1, status => $?, output => ... }
# With must_die => 1 a ready nginx is given a short grace period to exit
# (nginx can also die in its init_process handlers, after the pid file).
sub start_nginx (%) {
    my %opt = @_;
    die "nginx is already running\n" if $NginxPid && nginx_alive();

    my @cmd = nginx_command();
    warn "# starting: @cmd\n" if $Verbose;

    undef $NginxStatus;
    my $pid = fork;
    die "fork() failed: $!\n" unless defined $pid;
    if ($pid == 0) {
        # child: own process group, quiet stdin, output to the log dir
        POSIX::setpgid(0, 0);
        _set_parent_death_signal();
        open STDIN, '<', '/dev/null';
        open STDOUT, '>>', $StdoutFile;
        open STDERR, '>>', $StderrFile;
        { exec { $cmd[0] } @cmd; }
        print STDERR "exec $cmd[0] failed: $!\n";
        POSIX::_exit(127);
    }
    $NginxPid = $LastNginxPid = $pid;

    my $deadline = time + $StartTimeout;
    my $ready;
    while (1) {
        if (!nginx_alive()) {
            my $st = $NginxStatus;
            undef $NginxPid;
            return { ok => 0, exited => 1, status => $st,
                     output => startup_output() };
        }
        if (!$ready && -s $PidFile) {
            my ($pidtxt) = read_file_from($PidFile);
            $ready = 1 if $pidtxt =~ /^\s*$pid\s*$/;
        }
        if ($ready) {
            return { ok => 1 } unless $opt{must_die};
            # must_die: wait a little for a late death before giving up
            $deadline = time + 1 if $deadline > time + 1;
        }
        if (time > $deadline) {
            return { ok => 1, late => 1 } if $ready;
            my $out = startup_output();
            stop_nginx();
            return { ok => 0, timeout => 1, output => $out };
        }
        sleep 0.005;
    }
}

# What nginx printed to stderr plus the start of its error.log.
sub startup_output () {
    my ($err) = read_file_from($StderrFile);
    my ($log) = read_file_from($ErrLogFile);
    return $err . $log;
}

# Stop nginx: SIGQUIT (graceful), then SIGTERM, then SIGKILL for the whole
# process group; always reaps the child.  Returns a hash with
#   status  - wait status (undef if nothing was running)
#   early   - nginx had already exited before we asked it to
#   forced  - 'TERM' or 'KILL' when the graceful shutdown timed out
sub stop_nginx () {
    return {} unless $NginxPid;
    my $pid = $NginxPid;
    my %res;

    if (!nginx_alive()) {
        $res{early} = 1;
    } else {
        kill SIGQUIT, $pid;
        _wait_exit($StopTimeout);
        if (nginx_alive()) {
            $res{forced} = 'TERM';
            kill SIGTERM, $pid;
            _wait_exit(2);
        }
        if (nginx_alive()) {
            $res{forced} = 'KILL';
            kill SIGKILL, -$pid;
            kill SIGKILL, $pid;
            waitpid($pid, 0);
            $NginxStatus = $?;
        }
    }
    # leftovers of the process group (e.g. orphaned workers)
    kill SIGKILL, -$pid if kill 0, -$pid;

    $res{status} = $NginxStatus;
    undef $NginxPid;
    return \%res;
}

sub _wait_exit ($) {
    my $limit = time + shift;
    while (time < $limit) {
        return unless nginx_alive();
        sleep 0.005;
    }
}

# Cleanup used on exit, signals and bail_out.
sub cleanup () {
    for my $hdl (@CleanupHandlers) {
        eval { $hdl->() };
    }
    if ($NginxPid) {
        local $StopTimeout = 1 unless $UseValgrind;
        stop_nginx();
    }
}

sub bail_out (@) {
    cleanup();
    Test::More::BAIL_OUT(join '', @_);
}

# Only the process that loaded us (not forked helpers) cleans up.
our $OwnerPid = $$;

# (PIPE: e.g. "prove ... | head" closing our stdout)
my %SigNum = (INT => POSIX::SIGINT(), TERM => POSIX::SIGTERM(),
              HUP => POSIX::SIGHUP(), PIPE => POSIX::SIGPIPE());
for my $sig (keys %SigNum) {
    $SIG{$sig} = sub {
        if ($$ == $OwnerPid) {
            cleanup();
            remove_server_root();
        }
        POSIX::_exit(128 + $SigNum{$sig});
    };
}

END {
    if (defined $OwnerPid && $$ == $OwnerPid) {
        local $?;
        cleanup();
        remove_server_root();
    }
}

1;
