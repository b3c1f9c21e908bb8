package Test::Nginx::Socket;

# A small, self-contained implementation of a compatible subset of
# openresty's Test::Nginx::Socket, so that the project's t/*.t files can be
# run without it and unchanged with it.  See t/README.md for the supported
# sections, functions and environment variables.
#
# Like upstream, this module is a Test::Base subclass: the __DATA__ section
# of a test file is parsed by Test::Base into blocks ("=== TEST n: name")
# with sections ("--- name [filters]"), filters such as "eval" or "chomp"
# are Test::Base's, and ONLY / SKIP / LAST work as in Test::Base.
#
# The lower layer (settings, server root, nginx.conf, nginx process) lives
# in Test::Nginx::Util.

use strict;
use warnings;

use Test::Base ();            # loads Test::More, Spiffy; no import here
use Test::More ();
use HTTP::Response ();
use IO::Select ();
use IO::Socket::INET ();
use List::Util qw(shuffle);
use Scalar::Util qw(looks_like_number);
use Text::Diff ();
use Time::HiRes qw(sleep time);

use Test::Nginx::Util qw(:DEFAULT parse_time trim show_all_chars
    parse_headers get_nginx_version canon_version
    ensure_server_port setup_server_root write_config_file write_user_files
    start_nginx stop_nginx nginx_alive startup_output describe_status
    read_file_from file_size);

our $VERSION = '0.01';

# Spiffy-style subclass of Test::Base: "use Test::Nginx::Socket 'no_plan'"
# goes through Test::Base::import (which passes plan arguments to
# Test::More) and then exports @EXPORT of this class and of Test::Base
# (is, ok, like, plan, diag, blocks, ...), as upstream.
our @ISA = ('Test::Base');

our @EXPORT = qw(
    run_tests run_test is_str plan env_to_nginx
    repeat_each workers master_on master_off master_process_enabled
    no_shuffle no_long_string no_diff log_level no_root_location
    check_accum_error_log use_hup no_nginx_manager timeout
    worker_connections config_preamble
    server_name server_addr server_root html_dir
    server_port server_port_for_client
    add_block_preprocessor add_cleanup_handler add_response_body_check
    set_http_config_filter bail_out
    $ServerPort $ServerPortForClient
);

BEGIN { *plan = \&Test::More::plan }

sub value_contains ($$);
sub parse_response ($;$);

our @ResponseBodyChecks;
our $FilterHttpConfig;

sub add_response_body_check ($) { push @ResponseBodyChecks, shift }
sub set_http_config_filter ($)  { $FilterHttpConfig = shift }

#---------------------------------------------------------------------------
# State of the current run
#---------------------------------------------------------------------------

my $NginxOwner;          # block whose config the running nginx uses
my $ErrLogPos = 0;       # error.log offset of the next error_log_data()
my $BlockErrStart = 0;   # error.log offset where the current block started
my $BlockAccStart = 0;   # access.log offset where the current block started
my $ScanErrPos = 0;      # error.log offset up to which crashes were scanned
my $ScanStderrPos = 0;   # stderr.log offset up to which it was scanned
my $AccSyncPos = 0;      # access.log offset at the last log settle point
my $PendingRequests = 0; # requests sent since the last log settle point
my $AccessLogCustom = 0; # config has its own access_log directives
my $NginxRandPorts = {};  # $TEST_NGINX_RAND_PORT_N values of the running nginx

#---------------------------------------------------------------------------
# Entry point
#---------------------------------------------------------------------------

sub run_tests () {
    eval { get_nginx_version() };
    if ($@) {
        Test::More::fail("nginx binary usable");
        Test::More::diag($@);
        return;
    }

    my @blocks = Test::Base::blocks();
    @blocks = shuffle @blocks unless $Test::Nginx::Util::NoShuffle;

    for my $block (@blocks) {
        for my $hdl (@Test::Nginx::Util::BlockPreprocessors) {
            $hdl->($block);
        }
        $block->set_value('name', "$0 " . ($block->name // ''));
        run_test($block);
    }

    stop_current_nginx();
}

# Run one block: decide about skipping, (re)start nginx when the block has
# its own config, then send the requests repeat_each() times.
sub run_test ($) {
    my $block = shift;
    my $name = $block->name;

    return if defined $block->SKIP;

    my $skip = eval { skip_info($block) };
    if ($@) {
        Test::More::fail("$name - invalid skip/todo section: $@");
        return;
    }
    if ($skip->{skip}) {
        SKIP: { Test::More::skip("$name - $skip->{reason}", $skip->{count}) }
        return;
    }
    if ($skip->{todo}) {
        TODO: {
            Test::More::todo_skip("$name - $skip->{reason}", $skip->{count});
        }
        return;
    }

    return unless check_block_sanity($block);

    my $rand_ports = {};

    if (defined $block->must_die) {
        stop_current_nginx();
        run_must_die($block, $rand_ports);
        return;
    }

    my $fresh = 0;
    if ($Test::Nginx::Util::NoNginxManager) {
        # nginx is managed by the user; just talk to it
    } elsif (defined $block->config || !nginx_alive()) {
        stop_current_nginx();
        return unless prepare_and_start($block, $rand_ports);
        $fresh = 1;
    } else {
        # no --- config section: keep using the running nginx, as upstream
        $NginxOwner = $block;
        $rand_ports = $NginxRandPorts;
    }

    # error.log / access.log checks of this block start here (a fresh nginx
    # includes its start-up messages, like upstream)
    $BlockErrStart = $fresh ? 0 : file_size($Test::Nginx::Util::ErrLogFile);
    $BlockAccStart = $fresh ? 0 : file_size($Test::Nginx::Util::AccLogFile);
    $ErrLogPos = $BlockErrStart;
    $AccSyncPos = $BlockAccStart;
    $PendingRequests = 0;

    if (defined(my $init = $block->init)) {
        eval "package main; no strict; $init";
        if ($@) {
            Test::More::fail("$name - init section failed: $@");
            return;
        }
    }

    for my $r (0 .. $RepeatEach - 1) {
        if ($r > 0 && !$Test::Nginx::Util::NoNginxManager) {
            eval { write_user_files($block, $rand_ports) };
            Test::More::fail("$name - user_files: $@") if $@;
        }
        $ErrLogPos = $BlockErrStart if $Test::Nginx::Util::CheckAccumErrLog;
        run_test_helper($block, $r, $rand_ports);
    }

    post_block_checks($block);
}

#---------------------------------------------------------------------------
# Block set-up
#---------------------------------------------------------------------------

# Sections whose "eval" produced a Perl error, unsupported features, ...
sub check_block_sanity ($) {
    my $block = shift;
    my $name = $block->name;
    my $map = $block->{_section_map} ? $block->{_section_map}[0] : {};
    for my $sec (sort keys %{ $map || {} }) {
        next unless ($map->{$sec}{filters} // '') =~ /\beval\b/;
        my $v = $block->$sec;
        if (defined $v && !ref $v && $v =~ /\(eval \d+\) line \d+/) {
            Test::More::fail("$name - Perl error in \"--- $sec eval\": $v");
            return 0;
        }
    }
    for my $sec (qw(http2 http3 tcp_listen udp_listen)) {
        if (defined $block->$sec) {
            Test::More::fail("$name - section \"--- $sec\" is not supported "
                             . "by this Test::Nginx subset");
            return 0;
        }
    }
    return 1;
}

# Fresh server root for $block: user files and conf/nginx.conf.  Returns
# false (after a failing test saying why) on errors such as an undefined
# $TEST_NGINX_XXX variable.
sub write_server_files ($$) {
    my ($block, $rand_ports) = @_;
    my $ok = eval {
        setup_server_root();
        my $config = Test::Nginx::Util::expand_env_in_text(
            $block->config // '', $rand_ports, 1);
        if ($FilterHttpConfig && !$block->{_tn_http_config_filtered}++) {
            # upstream's set_http_config_filter() hook
            $block->set_value('http_config',
                              $FilterHttpConfig->($block->http_config // ''));
        }
        write_user_files($block, $rand_ports);
        write_config_file($block, $config, $rand_ports);
        $AccessLogCustom = ($config . ($block->http_config // ''))
                           =~ /\baccess_log\b/ ? 1 : 0;
        1;
    };
    return 1 if $ok;
    Test::More::fail($block->name . " - cannot set up the server root: $@");
    return 0;
}

# Write the server root and start nginx for $block.  On failure a failing
# test explains why and 0 is returned.
sub prepare_and_start ($$) {
    my ($block, $rand_ports) = @_;
    my $name = $block->name;

    ensure_server_port();
    return 0 unless write_server_files($block, $rand_ports);

    warn "$name\n" if $Test::Nginx::Util::UseValgrind;

    my $res = eval { start_nginx() } || { ok => 0, output => $@ };
    $ScanErrPos = 0;
    $ScanStderrPos = 0;
    if (!$res->{ok}) {
        my $why = $res->{timeout}
            ? "not ready after $Test::Nginx::Util::StartTimeout s"
            : $res->{exited}
            ? 'exited with ' . describe_status($res->{status})
            : 'could not be started';
        Test::More::fail("$name - nginx failed to start ($why)");
        Test::More::diag(tail_text($res->{output} // '', 40));
        return 0;
    }
    $NginxOwner = $block;
    $NginxRandPorts = $rand_ports;
    return 1;
}

# "--- must_die": nginx must exit right after starting.  Upstream checks
# this once per repeat_each round, followed by the error_log checks, which
# see what nginx printed to stderr plus logs/error.log.
sub run_must_die ($$) {
    my ($block, $rand_ports) = @_;
    my $name = $block->name;
    my $must_die = $block->must_die;
    $must_die =~ s/^\s+|\s+$//g;

    for my $r (0 .. $RepeatEach - 1) {
        ensure_server_port();
        return unless write_server_files($block, $rand_ports);

        # never under valgrind, as upstream
        local $Test::Nginx::Util::UseValgrind = undef;
        local $Test::Nginx::Util::StartTimeout = 10;
        my $res = eval { start_nginx(must_die => 1) } || { ok => 0, output => $@ };

        if ($res->{ok}) {
            my $out = startup_output();
            stop_nginx();
            Test::More::fail(looks_like_number($must_die) && length $must_die
                ? "$name - die with the expected exit code"
                : "$name - die as expected");
            Test::More::diag("nginx must die but it does not");
            Test::More::diag(tail_text($out, 20));
        } elsif (!$res->{exited}) {
            Test::More::fail("$name - nginx neither died nor became ready");
            Test::More::diag($res->{output} // '');
        } elsif ($res->{status} & 127) {
            Test::More::fail("$name - nginx died with "
                             . describe_status($res->{status}));
            Test::More::diag(tail_text($res->{output}, 20));
        } elsif (($res->{status} >> 8) == 127
                 && $res->{output} =~ /^exec .* failed/m) {
            Test::More::fail("$name - failed to execute the nginx command line");
            Test::More::diag($res->{output});
        } elsif (looks_like_number($must_die) && length $must_die) {
            Test::More::is($res->{status} >> 8, $must_die,
                           "$name - die with the expected exit code");
        } else {
            Test::More::isnt($res->{status} >> 8, 0, "$name - die as expected");
        }

        my @lines = split_lines(startup_output());
        check_error_log($block, undef, $r, 0, \@lines);
    }
}

# Checks after all repeats of a block: crashed workers, sanitizer reports,
# "Assertion failed" lines, and nginx having died.
sub post_block_checks ($) {
    my $block = shift;
    my $name = $block->name;
    return if $Test::Nginx::Util::NoNginxManager;

    # upstream warns about [alert]/[crit]/[emerg] lines unless expected
    my ($log) = read_file_from($Test::Nginx::Util::ErrLogFile, $BlockErrStart);
    my %expected;
    for my $sec (qw(error_log no_error_log)) {
        my $v = $block->$sec;
        next unless defined $v;
        for my $lvl (qw(alert crit emerg)) {
            $expected{$lvl} = 1 if value_contains($v, "[$lvl");
        }
    }
    for my $line (split_lines($log)) {
        if ($line =~ /\[(alert|crit|emerg)\]/ && !$expected{$1}
            && $line !~ /exited on signal/)
        {
            warn "WARNING: $name - " . fmt_str($line) . "\n";
        }
        if ($line =~ /\bAssertion .*?failed\b/) {
            Test::More::fail("$name - " . fmt_str($line));
        }
    }

    scan_for_crashes($block);

    # nginx gone (single process mode crash, sanitizer abort, ...)?
    if ($NginxOwner && $NginxOwner == $block && !nginx_alive()) {
        stop_current_nginx();
    }
}

# Fail the block for crash reports that appeared in the logs since the last
# scan: worker processes killed by signals (always), sanitizer reports
# (with TEST_NGINX_CHECK_SANITIZER) and valgrind errors (with
# TEST_NGINX_USE_VALGRIND).
sub scan_for_crashes ($) {
    my $block = shift;
    my $name = $block ? $block->name : $0;

    my ($err, $new_err) = read_file_from($Test::Nginx::Util::ErrLogFile,
                                         $ScanErrPos);
    my ($stderr, $new_stderr) = read_file_from($Test::Nginx::Util::StderrFile,
                                               $ScanStderrPos);
    $ScanErrPos = $new_err;
    $ScanStderrPos = $new_stderr;

    my @crash = grep { /exited on signal/ } split_lines($err);
    if (@crash) {
        Test::More::fail("$name - no nginx process crashed");
        Test::More::diag(join '', @crash);
    }

    if ($Test::Nginx::Util::CheckSanitizer) {
        my $report = sanitizer_report($stderr) . sanitizer_report($err)
                     . sanitizer_log_files();
        if (length $report) {
            Test::More::fail("$name - no sanitizer report");
            Test::More::diag($report);
        }
    }

    if ($Test::Nginx::Util::UseValgrind) {
        # with -q valgrind prints errors only ("Warning: ..." aside)
        my $report = first_lines_from($stderr,
                                      qr/^==\d+==\s+(?!Warning:)\S/, 150);
        if (length $report) {
            Test::More::fail("$name - no valgrind report");
            Test::More::diag($report);
        }
    }
}

# Sanitizer reports written to files (log_path=PREFIX in ASAN_OPTIONS and
# friends gives PREFIX.<pid>) by the processes of our nginx: the pids are
# those of the master and of every process that wrote to our error.log.
my %SanLogPos;

sub sanitizer_log_files () {
    my @prefixes;
    for my $var (qw(ASAN_OPTIONS UBSAN_OPTIONS LSAN_OPTIONS TSAN_OPTIONS
                    MSAN_OPTIONS))
    {
        my $v = $ENV{$var} // next;
        push @prefixes, grep { $_ ne 'stderr' && $_ ne 'stdout' }
                        $v =~ /(?:^|[:\s])log_path=([^:\s]+)/g;
    }
    return '' unless @prefixes;

    my %pids;
    $pids{$Test::Nginx::Util::LastNginxPid} = 1
        if $Test::Nginx::Util::LastNginxPid;
    my ($log) = read_file_from($Test::Nginx::Util::ErrLogFile);
    $pids{$1} = 1 while $log =~ /^\S+ \S+ \[\w+\] (\d+)#\d+:/mg;
    $pids{$1} = 1 while $log =~ /(?:start worker process|worker process) (\d+)/g;

    my $report = '';
    for my $prefix (@prefixes) {
        for my $file (glob "$prefix.*") {
            my ($pid) = $file =~ /\.(\d+)$/ or next;
            next unless $pids{$pid};
            my ($data, $pos) = read_file_from($file, $SanLogPos{$file} // 0);
            $SanLogPos{$file} = $pos;
            $report .= "$file:\n$data" if length $data;
        }
    }
    return $report;
}

# The ASan/LSan/UBSan/TSan/MSan report in $text: from the first report line
# on, at most 100 lines.
sub sanitizer_report ($) {
    my $text = shift;
    my $re = qr/ERROR:\s+(?:Address|Leak|Memory|Thread)Sanitizer
               |WARNING:\s+ThreadSanitizer
               |runtime\s+error:
               |SUMMARY:\s+\w+Sanitizer/x;
    return first_lines_from($text, $re, 100);
}

# At most $max lines of $text, starting with the first line matching $re
# (or the "=====" banner line right before it, as printed by ASan).
sub first_lines_from ($$$) {
    my ($text, $re, $max) = @_;
    return '' unless $text =~ $re;
    my @lines = split_lines($text);
    my ($first) = grep { $lines[$_] =~ $re } 0 .. $#lines;
    return '' unless defined $first;
    $first-- if $first > 0 && $lines[$first - 1] =~ /^=+\s*$/;
    my $last = $first + $max - 1 < $#lines ? $first + $max - 1 : $#lines;
    return join '', @lines[$first .. $last];
}

# Stop the running nginx and check how it went, on behalf of the block that
# configured it (upstream checks the previous block's shutdown_error_log when
# the next block starts, too).
sub stop_current_nginx () {
    return unless $Test::Nginx::Util::NginxPid;
    my $block = $NginxOwner;
    my $name = $block ? $block->name : "$0 nginx";
    undef $NginxOwner;

    my $st = stop_nginx();

    if ($st->{early}) {
        Test::More::fail("$name - nginx exited prematurely ("
                         . describe_status($st->{status}) . ")");
        Test::More::diag(tail_text(startup_output(), 30));
    } elsif (($st->{forced} // '') eq 'KILL') {
        Test::More::fail("$name - nginx quits on SIGQUIT/SIGTERM");
    } elsif (defined $st->{status} && $st->{status} != 0
             && !($Test::Nginx::Util::UseValgrind && $st->{status} >> 8 == 97))
    {   # (valgrind's --error-exitcode: reported by scan_for_crashes)
        Test::More::fail("$name - nginx exits cleanly (got "
                         . describe_status($st->{status}) . ")");
        Test::More::diag(tail_text(startup_output(), 30));
    } elsif ($st->{forced}) {
        warn "WARNING: $name - nginx did not quit within "
             . "$Test::Nginx::Util::StopTimeout s of SIGQUIT; sent SIGTERM\n";
    }

    scan_for_crashes($block);

    if ($block && (defined $block->shutdown_error_log
                   || defined $block->no_shutdown_error_log))
    {
        my ($log) = read_file_from($Test::Nginx::Util::ErrLogFile,
                                   $BlockErrStart);
        my @lines = split_lines($log);
        check_log_patterns($name, \@lines, $block->shutdown_error_log,
                           $block->no_shutdown_error_log, 'error.log', '');
    }

    if (my $total = $ENV{TEST_NGINX_ERROR_LOG}) {
        my ($log) = read_file_from($Test::Nginx::Util::ErrLogFile);
        if (length $log && open my $out, '>>', $total) {
            print $out "\n=== $name\n", $log;
            close $out;
        }
    }
}

#---------------------------------------------------------------------------
# skip_nginx, skip_nginx2, skip_openssl, skip_eval, todo
#---------------------------------------------------------------------------

sub _version_cmp ($$$) {
    my ($have, $op, $want) = @_;
    return $have <  $want if $op eq '<';
    return $have <= $want if $op eq '<=';
    return $have >  $want if $op eq '>';
    return $have >= $want if $op eq '>=';
    die "bad operator $op\n";
}

# Parses "<op> x.y[.z][letter]" into ($op, canonical version).
sub _version_spec ($) {
    my $s = shift;
    $s =~ /^\s*([<>]=?)\s*(\d+)\.(\d+)(?:\.(\d+))?([a-z])?\s*$/
        or die "bad version condition \"$s\"\n";
    return ($1, canon_version($2, $3, $4 // 0, $5));
}

sub skip_info ($) {
    my $block = shift;
    my %r;

    if (defined(my $s = $block->skip_eval)) {
        $s =~ /^\s*(\d+)\s*:\s*(.*)$/s or die "bad --- skip_eval: $s\n";
        my ($n, $code) = ($1, $2);
        my $res = eval "package main; no strict; $code";
        die "skip_eval: $@" if $@;
        %r = (skip => 1, count => $n, reason => 'skip_eval') if $res;
    }

    if (defined(my $s = $block->skip_nginx)) {
        $s =~ /^\s*(\d+)\s*:\s*([<>]=?\s*[\d.]+)\s*(?::\s*(.*?))?\s*$/s
            or die "bad --- skip_nginx: $s\n";
        my ($n, $cond, $reason) = ($1, $2, $3);
        my ($op, $ver) = _version_spec($cond);
        if (_version_cmp($NginxVersion, $op, $ver)) {
            %r = (skip => 1, count => $n,
                  reason => $reason || "nginx version $cond");
        }
    } elsif (defined(my $s2 = $block->skip_nginx2)) {
        $s2 =~ /^\s*(\d+)\s*:\s*([<>]=?\s*[\d.]+)\s*(and|or)\s*
                ([<>]=?\s*[\d.]+)\s*(?::\s*(.*?))?\s*$/xs
            or die "bad --- skip_nginx2: $s2\n";
        my ($n, $c1, $conj, $c2, $reason) = ($1, $2, $3, $4, $5);
        my ($op1, $v1) = _version_spec($c1);
        my ($op2, $v2) = _version_spec($c2);
        my $m1 = _version_cmp($NginxVersion, $op1, $v1);
        my $m2 = _version_cmp($NginxVersion, $op2, $v2);
        if ($conj eq 'and' ? ($m1 && $m2) : ($m1 || $m2)) {
            %r = (skip => 1, count => $n,
                  reason => $reason || "nginx version $c1 $conj $c2");
        }
    }

    if (defined(my $s = $block->skip_openssl)) {
        $s =~ /^\s*(\d+)\s*:\s*([<>]=?\s*[\d.]+[a-z]?)\s*(?::\s*(.*?))?\s*$/s
            or die "bad --- skip_openssl: $s\n";
        my ($n, $cond, $reason) = ($1, $2, $3);
        my ($op, $ver) = _version_spec($cond);
        if (!defined $Test::Nginx::Util::OpenSSLVersion) {
            %r = (skip => 1, count => $n,
                  reason => $reason || 'Not built with OpenSSL');
        } elsif (_version_cmp($Test::Nginx::Util::OpenSSLVersion, $op, $ver)) {
            %r = (skip => 1, count => $n,
                  reason => $reason || "OpenSSL version $cond");
        }
    }

    return \%r if $r{skip};

    if (defined(my $s = $block->todo)) {
        $s =~ /^\s*(\d+)\s*:\s*(.*?)\s*$/s or die "bad --- todo: $s\n";
        return { todo => 1, count => $1, reason => $2 || 'various reasons' };
    }

    return \%r;
}

#---------------------------------------------------------------------------
# Requests
#---------------------------------------------------------------------------

# upstream's more_headers syntax: one "Name: value" per line, '#' comments
sub parse_more_headers ($) {
    my $in = shift // '';
    my ($out, $chunked) = ('', 0);
    for my $line (split /\n+/, $in) {
        next if $line =~ /^\s*#/ || $line !~ /\S/;
        my ($key, $val) = split /:\s*/, $line, 2;
        $val //= '';
        $chunked = 1 if lc($key) eq 'transfer-encoding' && $val eq 'chunked';
        $out .= "$key: $val\r\n";
    }
    return ($out, $chunked);
}

# Turn a request spec ("METHOD [URI [HTTP/x.y]]\nbody", possibly split into
# packets) into the bytes to send, split at the corresponding positions.
# As upstream: Host and Connection headers are added unless given in
# more_headers; with a non-empty body and no Content-Length / chunked
# Transfer-Encoding in more_headers, the body is stripped of leading and
# trailing white space and a Content-Length is added.
sub build_request ($$$$$) {
    my ($name, $more_headers, $chunked, $conn, $packets) = @_;

    my $raw = join '', @$packets;
    my ($first) = $raw =~ /\A([^\n]*\n?)/;
    $first //= '';
    my $first_len = length $first;

    $first =~ /^(\s*)(\S+)( *)(?:(\S+)( *))?(?:(\S+)( *))?(\s*)$/
        or die "Request line is not valid. Should be 'meth [url [version]]' "
             . "but got \"$first\".\n";
    my ($meth, $url, $ver) = ($2, $4, $6);
    # token spans in the original text, for re-splitting into packets
    my @span = ([$-[2], $+[2]],
                defined $url ? [$-[4], $+[4]] : undef,
                defined $ver ? [$-[6], $+[6]] : undef);
    $url //= '/';
    $ver //= 'HTTP/1.1';

    my $content = substr $raw, $first_len;
    my $len_header = '';
    if (!$chunked && $content ne ''
        && $more_headers !~ /(?:^|\n)Content-Length:/i)
    {
        $content =~ s/^\s+|\s+$//gs;
        $len_header = 'Content-Length: ' . length($content) . "\r\n";
    }

    my $headers = '';
    $headers .= "Host: $ServerName\r\n"
        if $more_headers !~ /(?:^|\n)Host:/i;
    $headers .= "Connection: $conn\r\n"
        if $more_headers !~ /(?:^|\n)Connection/i;
    $headers .= "$more_headers$len_header\r\n";

    my $head = "$meth $url $ver\r\n$headers";
    my $new = $head . $content;

    return [$new] if @$packets <= 1;

    # Map each packet boundary of the original text into the new text: in
    # the request line a boundary stays inside its token, anything after the
    # request line token goes after the added headers, and body positions
    # keep their offset from the start of the body.
    my @new_start = (0, length($meth) + 1,
                     length($meth) + 1 + length($url) + 1);
    my $map = sub {
        my $p = shift;
        if ($p >= $first_len) {
            my $off = $p - $first_len;
            $off = length $content if $off > length $content;
            return length($head) + $off;
        }
        for my $i (0 .. 2) {
            my $s = $span[$i] or next;
            return $new_start[$i] if $p <= $s->[0];
            return $new_start[$i] + ($p - $s->[0]) if $p <= $s->[1];
        }
        return length $head;
    };

    my @out;
    my ($orig, $prev) = (0, 0);
    for my $i (0 .. $#$packets) {
        $orig += length $packets->[$i];
        my $pos = $i == $#$packets ? length $new : $map->($orig);
        $pos = $prev if $pos < $prev;
        push @out, substr $new, $prev, $pos - $prev;
        $prev = $pos;
    }
    return \@out;
}

# Returns a list of requests, one per connection; each request is a list of
# packets { value => bytes, delay_before => seconds }.  pipelined_requests
# give one connection carrying all the requests.
sub get_req_from_block ($$) {
    my ($block, $rand_ports) = @_;
    my $name = $block->name;
    my $expand = sub {
        Test::Nginx::Util::expand_env_in_text($_[0], $rand_ports)
    };
    my @reqs;

    if (defined(my $raw = $block->raw_request)) {
        my @parts = ref $raw eq 'ARRAY' ? @$raw : ($raw);
        push @reqs, [ map {
            ref $_ eq 'HASH' ? { %$_, value => $expand->($_->{value}) }
                             : { value => $expand->($_) }
        } @parts ];
        return \@reqs;
    }

    my $more_headers = $block->more_headers // '';
    my $hdr_for = sub {
        my $i = shift;
        my $h = $more_headers;
        if (ref $h eq 'ARRAY') {
            $h = $h->[$i];
            die "--- more_headers lacks data for request $i\n"
                unless defined $h;
        }
        return parse_more_headers($expand->($h));
    };

    if (defined(my $reqs = $block->pipelined_requests)) {
        die "invalid entries in --- pipelined_requests (an array is needed)\n"
            unless ref $reqs eq 'ARRAY';
        my $data = '';
        for my $i (0 .. $#$reqs) {
            my ($hdr, $chunked) = $hdr_for->($i);
            my $conn = $i == $#$reqs ? 'close' : 'keep-alive';
            $data .= build_request($name, $hdr, $chunked, $conn,
                                   [ $expand->($reqs->[$i]) ])->[0];
        }
        push @reqs, [ { value => $data } ];
        return \@reqs;
    }

    my $request = $block->request;
    die "no --- request section\n" unless defined $request;
    if (!ref $request) {
        # leading comment lines and white space are ignored
        1 while $request =~ s/^\s*#[^\n]+\s+|^\s+//s;
        $request = [ $request ];
    } elsif (ref $request ne 'ARRAY') {
        die "invalid --- request: must be a string or an array of requests\n";
    }

    for my $i (0 .. $#$request) {
        my $one = $request->[$i];
        my ($hdr, $chunked) = $hdr_for->($i);
        if (!ref $one) {
            push @reqs, [ { value => build_request($name, $hdr, $chunked,
                                   'close', [ $expand->($one) ])->[0] } ];
        } elsif (ref $one eq 'ARRAY') {
            my @orig = map {
                ref $_ eq 'HASH' ? { %$_ }
                : !ref $_       ? { value => $_ }
                : die "invalid packet $_ (string or hash expected)\n"
            } @$one;
            my $new = build_request($name, $hdr, $chunked, 'close',
                                    [ map { $expand->($_->{value}) } @orig ]);
            $orig[$_]{value} = $new->[$_] for 0 .. $#orig;
            push @reqs, \@orig;
        } else {
            die "invalid request $one (string or array of packets expected)\n";
        }
    }
    return \@reqs;
}

# Send the packets over a fresh connection and read the reply until the
# server closes the connection (the default requests say
# "Connection: close"), or until a complete response has arrived when
# $opt{stop_when_complete} (keep-alive requests), or until $timeout seconds
# pass without any I/O.  Returns ($response_bytes, $error) where $error is
# 'timeout', a connect error, or undef.
sub send_request ($$$%) {
    my ($packets, $timeout, $block, %opt) = @_;

    my $addr = $block->server_addr_for_client // $ServerAddr;
    my ($sock, $cerr);
    for my $try (1 .. 20) {
        $sock = IO::Socket::INET->new(
            PeerAddr => $addr,
            PeerPort => $ServerPortForClient,
            Proto    => 'tcp',
            Timeout  => $timeout,
        );
        last if $sock;
        $cerr = "$!";
        last if !$Test::Nginx::Util::NoNginxManager && !nginx_alive();
        sleep 0.02;
    }
    return ('', "Can't connect to $addr:$ServerPortForClient: $cerr")
        unless $sock;

    local $SIG{PIPE} = 'IGNORE';
    $sock->blocking(0);
    my $sel = IO::Select->new($sock);

    my @queue = @$packets;
    my $cur = shift @queue;
    my $wbuf = $cur ? $cur->{value} // '' : '';
    my $writing = 1;
    my $resp = '';
    my $err;
    my $middle_delay = $block->raw_request_middle_delay;

    while (1) {
        # move on to the next packet when the current one is fully written
        while ($writing && $wbuf eq '') {
            if (!@queue) {
                $writing = 0;
                my $sd = $block->shutdown;
                if (defined $sd) {
                    $sd = 1 unless $sd =~ /\d/;
                    shutdown $sock, $sd;
                }
                last;
            }
            $cur = shift @queue;
            my $delay = $cur->{delay_before} // $middle_delay;
            sleep $delay if $delay;
            $wbuf = $cur->{value} // '';
        }

        $! = 0;
        my ($r, $w) = IO::Select->select($sel, $writing ? $sel : undef,
                                         undef, $timeout);
        if (!$r && !$w) {
            next if $!{EINTR};
            $err = 'timeout';
            last;
        }

        if ($w && @$w) {
            my $n = syswrite $sock, $wbuf;
            if (defined $n) {
                substr($wbuf, 0, $n) = '';
            } elsif (!$!{EAGAIN} && !$!{EWOULDBLOCK} && !$!{EINTR}) {
                # e.g. nginx answered early and closed; keep reading
                warn "WARNING: " . $block->name . " - write failed: $!\n"
                    if $Test::Nginx::Util::Verbose;
                $writing = 0;
            }
        }

        if ($r && @$r) {
            my $n = sysread $sock, my $buf, 65536;
            if (!defined $n) {
                next if $!{EAGAIN} || $!{EWOULDBLOCK} || $!{EINTR};
                last;               # ECONNRESET etc.: use what we have
            }
            last if $n == 0;        # EOF
            $resp .= $buf;
            last if !$writing && $opt{stop_when_complete}
                    && response_complete($resp, $opt{head});
        }
    }
    close $sock;
    return ($resp, $err);
}

# Is $data a complete HTTP response (head plus framed body)?
sub response_complete ($$) {
    my ($data, $head_req) = @_;
    my ($res, $raw_headers, $left, $complete) = parse_response($data, $head_req);
    return $complete;
}

#---------------------------------------------------------------------------
# Responses
#---------------------------------------------------------------------------

# Parse one response from $raw.  Returns ($res, $raw_headers, $leftover,
# $complete, $error): $res is an HTTP::Response (undef when there is no
# head at all), $raw_headers the head up to and including the CRLF of its
# last line (as upstream), $leftover the bytes after this response (next
# pipelined response), $complete whether the body was fully framed.
sub parse_response ($;$) {
    my ($raw, $head_req) = @_;
    return (undef, '', undef, 0) unless defined $raw && length $raw;

    my $end = index $raw, "\r\n\r\n";
    if ($end < 0) {
        # no complete head: let HTTP::Response make the best of it
        my $res = HTTP::Response->parse($raw);
        _fix_code($res);
        return ($res, '', undef, 0);
    }
    my $raw_headers = substr $raw, 0, $end + 2;
    my $body = substr $raw, $end + 4;

    my $res = HTTP::Response->parse($raw_headers);
    _fix_code($res);
    my $code = $res->code // 0;
    my $te = $res->header('Transfer-Encoding');
    my $cl = $res->header('Content-Length');

    # skip interim responses such as "100 Continue"
    if ($code >= 100 && $code < 200 && $code != 101 && length $body) {
        return parse_response($body, $head_req);
    }

    my ($content, $left, $complete, $error);
    if ($head_req || $code == 304 || $code == 204 || ($code >= 100 && $code < 200)) {
        ($content, $left, $complete) = ('', $body, 1);
    } elsif (defined $te && $te =~ /\bchunked\b/i) {
        ($content, $left, $complete, $error) = decode_chunked($body);
        $error //= 'no last chunk found (incomplete chunked body)'
            unless $complete;
    } elsif (defined $cl && $cl =~ /^\s*(\d+)\s*$/) {
        my $len = $1;
        if (length $body >= $len) {
            $content = substr $body, 0, $len;
            $left = substr $body, $len;
            $complete = 1;
        } else {
            ($content, $complete) = ($body, 0);
        }
    } else {
        ($content, $complete) = ($body, 0);   # delimited by connection close
    }
    $left = undef if defined $left && $left eq '';
    $res->content($content);
    return ($res, $raw_headers, $left, $complete, $error);
}

sub _fix_code ($) {
    my $res = shift;
    my $code = $res->code;
    $res->code(undef) if defined $code && $code !~ /^\d+$/;
}

# Decode a chunked body; returns ($data, $leftover, $complete, $error).
sub decode_chunked ($) {
    my $raw = shift;
    my $out = '';
    pos($raw) = 0;
    while (1) {
        if ($raw =~ /\G[ \t]*([0-9A-Fa-f]+)[^\r\n]*\r\n/gc) {
            my $size = hex $1;
            if ($size == 0) {
                # optional trailers, then the final CRLF
                while ($raw =~ /\G([^\r\n]+)\r\n/gc) { }
                return ($out, undef, 0) unless $raw =~ /\G\r\n/gc;
                my $left = substr $raw, pos $raw;
                return ($out, $left, 1);
            }
            my $p = pos $raw;
            return ($out, undef, 0) if length($raw) - $p < $size + 2;
            $out .= substr $raw, $p, $size;
            pos($raw) = $p + $size;
            unless ($raw =~ /\G\r\n/gc) {
                return ($out, undef, 1,
                        'invalid chunked data received (expected CRLF)');
            }
        } elsif ($raw =~ /\G[ \t]*[0-9A-Fa-f]*[^\r\n]*\z/gc) {
            return ($out, undef, 0);          # incomplete size line
        } else {
            my $rest = substr $raw, pos($raw) // 0;
            return ($out, undef, 1,
                    "invalid chunked body received: " . show_all_chars($rest));
        }
    }
}

#---------------------------------------------------------------------------
# One round (repeat) of a block: send the requests and check the responses
#---------------------------------------------------------------------------

# Sections holding one expected value per request when there are several.
my @ArraySections = qw(error_code error_code_like response_body
    response_body_like response_body_unlike response_headers
    response_headers_like raw_response_headers_like
    raw_response_headers_unlike);

sub run_test_helper ($$$) {
    my ($block, $repeated_idx, $rand_ports) = @_;
    my $name = $block->name;

    my $reqs = eval { get_req_from_block($block, $rand_ports) };
    if (!$reqs) {
        Test::More::fail("$name - bad request specification: $@");
        return;
    }

    if (defined $block->curl) {
        warn "# " . curl_command($block, $reqs->[0]) . "\n";
    }

    my $timeout = parse_time($block->timeout) // $Test::Nginx::Util::Timeout;

    my $pipelined = $block->pipelined_requests;
    my $need_array = $pipelined ? 1 : @$reqs > 1;
    if ($need_array) {
        for my $sec (@ArraySections) {
            my $v = $block->$sec;
            next if !defined $v || ref $v eq 'ARRAY';
            Test::More::fail("$name - You asked for many requests, the "
                             . "expected results should be arrays as well "
                             . "(--- $sec)");
            return;
        }
    }

    my $req_idx = 0;
    for my $i (0 .. $#$reqs) {
        my $packets = $reqs->[$i];
        my $all = join '', map { $_->{value} // '' } @$packets;
        my $head_req = $all =~ /^\s*HEAD\s+/ ? 1 : 0;
        my @head_flags = $pipelined
            ? map { /^\s*HEAD\s+/ ? 1 : 0 } @$pipelined
            : ($head_req);
        # keep-alive requests (Connection overridden) end with the response
        my ($req_head) = split /\r\n\r\n/, $all, 2;
        my $stop_when_complete = !defined $block->raw_request && !$pipelined
            && ($req_head // '') =~ /^Connection:\s*(?!close)/mi;

        my $n = $pipelined ? scalar @$pipelined : 1;
        $PendingRequests += $n;

        my ($raw, $err) = send_request($packets, $timeout, $block,
                                       head => $head_req,
                                       stop_when_complete => $stop_when_complete);
        if (defined $err && $err eq 'timeout') {
            if (!defined $block->abort) {
                Test::More::fail("ERROR: client socket timed out - $name");
            }
        } elsif (defined $err) {
            Test::More::fail("$name - $err");
            if (!$Test::Nginx::Util::NoNginxManager && !nginx_alive()) {
                Test::More::diag("nginx is gone: "
                    . describe_status($Test::Nginx::Util::NginxStatus));
                Test::More::diag(tail_text(startup_output(), 30));
            }
        }

        for my $k (1 .. $n) {
            my ($res, $raw_headers, $left, $complete, $perr);
            if (defined $block->ignore_response) {
                # nothing to parse
            } elsif (defined $block->http09) {
                $res = HTTP::Response->new(200, 'OK', [], $raw);
                $raw_headers = '';
            } else {
                ($res, $raw_headers, $left, $complete, $perr) =
                    parse_response($raw, $head_flags[$k - 1]);
                if ($perr && !(defined $err && defined $block->abort)) {
                    Test::More::fail("$name - $perr");
                }
                if ($k < $n) {
                    $raw = $left // '';
                } elsif (defined $left) {
                    warn "WARNING: $name - unexpected extra bytes after the "
                         . "response: \"" . show_all_chars($left) . "\"\n";
                }
                if ($res && defined(my $cl = $res->header('Content-Length'))) {
                    warn "WARNING: $name - response body truncated: $cl "
                         . "expected, but got " . length($res->content) . "\n"
                        if !$complete && !$head_flags[$k - 1] && !$err
                           && $cl =~ /^\d+$/;
                }
            }

            if (!defined $block->ignore_response) {
                check_error_code($block, $res, $req_idx, $need_array);
                check_raw_response_headers($block, $raw_headers, $req_idx,
                                           $need_array);
                check_response_headers($block, $res, $raw_headers, $req_idx,
                                       $need_array);
                transform_response_body($block, $res, $req_idx);
                check_response_body($block, $res, $req_idx, $repeated_idx,
                                    $need_array);
            }

            # upstream also checks the logs after every request but the last
            if ($k < $n || $i < $#$reqs) {
                sleep parse_time($block->wait) if $block->wait;
                check_error_log($block, $res, $repeated_idx, $need_array,
                                undef, 1);
                check_access_log($block, $repeated_idx)
                    unless defined $block->ignore_response;
            }
            $req_idx++;
        }
    }

    sleep parse_time($block->wait) if $block->wait;

    if ($block->stap) {
        SKIP: {
            Test::More::skip("$name - stap_out - tests skipped due to env "
                             . "TEST_NGINX_USE_STAP not supported", 1);
        }
    }

    check_error_log($block, undef, $repeated_idx, $need_array);
    check_access_log($block, $repeated_idx)
        unless defined $block->ignore_response;
}

# A curl command line roughly equivalent to the (first) request, printed for
# "--- curl" like upstream.
sub curl_command ($$) {
    my ($block, $req) = @_;
    my $data = join '', map { $_->{value} // '' } @$req;
    my ($head, $body) = split /\r\n\r\n/, $data, 2;
    my ($line, @headers) = split /\r\n/, $head // '';
    my ($meth, $uri, $ver) = split ' ', $line // '';
    my @args = ('curl', '-i', '-sS');
    push @args, $meth eq 'HEAD' ? '-I' : ('-X', $meth) if $meth;
    push @args, '-0' if ($ver // '') eq 'HTTP/1.0';
    for my $h (@headers) {
        next if $h =~ /^(?:Connection|Content-Length)\s*:/i;
        push @args, '-H', $h;
    }
    push @args, '--data-binary', $body if defined $body && length $body;
    push @args, "http://$ServerAddr:$ServerPortForClient" . ($uri // '/');
    return join ' ', map {
        /^[-\w.\/:=@]+$/ ? $_ : do { (my $q = $_) =~ s/'/'\\''/g; "'$q'" }
    } @args;
}

#---------------------------------------------------------------------------
# Response checks (test names follow upstream)
#---------------------------------------------------------------------------

sub get_indexed_value ($$$) {
    my ($value, $req_idx, $need_array) = @_;
    return $value->[$need_array ? $req_idx : 0] if ref $value eq 'ARRAY';
    return $value;
}

sub check_error_code ($$$$) {
    my ($block, $res, $req_idx, $need_array) = @_;
    my $name = $block->name;
    my $code = ($res && $res->code) || '';
    if (defined $block->error_code_like) {
        my $pat = get_indexed_value($block->error_code_like, $req_idx,
                                    $need_array);
        Test::More::like($code, qr/$pat/sm, "$name - status code ok");
    } elsif (defined $block->error_code) {
        my $want = get_indexed_value($block->error_code, $req_idx,
                                     $need_array);
        $want =~ s/^\s+|\s+$//g if defined $want && !ref $want;
        Test::More::is($code, $want, "$name - status code ok");
    } else {
        Test::More::is($code, 200, "$name - status code ok");
    }
}

sub check_raw_response_headers ($$$$) {
    my ($block, $raw_headers, $req_idx, $need_array) = @_;
    my $name = $block->name;
    $raw_headers //= '';
    if (defined $block->raw_response_headers_like) {
        my $pat = get_indexed_value($block->raw_response_headers_like,
                                    $req_idx, $need_array);
        Test::More::like($raw_headers, qr/$pat/s,
                         "$name - raw resp headers like");
    }
    if (defined $block->raw_response_headers_unlike) {
        my $pat = get_indexed_value($block->raw_response_headers_unlike,
                                    $req_idx, $need_array);
        Test::More::unlike($raw_headers, qr/$pat/s,
                           "$name - raw resp headers unlike");
    }
}

# "--- response_headers": "Name: value" must match exactly ("Name:" alone
# accepts an absent or empty header), "!Name" means absent.  As upstream,
# response_headers_like is only looked at when there is no response_headers.
sub check_response_headers ($$$$$) {
    my ($block, $res, $raw_headers, $req_idx, $need_array) = @_;
    my $name = $block->name;

    if (defined $block->response_headers) {
        my $spec = get_indexed_value($block->response_headers, $req_idx,
                                     $need_array);
        for my $h (@{ parse_headers($spec) }) {
            my ($key, $val) = @$h;
            if (!defined $val) {
                Test::More::unlike($raw_headers // '',
                    qr/^\s*\Q$key\E\s*:/mi,
                    "$name - header $key not present in the raw headers");
                next;
            }
            $val =~ s/\$ServerPortForClient\b/$ServerPortForClient/g;
            $val =~ s/\$ServerPort\b/$ServerPort/g;
            my $actual = $res ? $res->header($key) : undef;
            Test::More::is($actual // '', $val, "$name - header $key ok");
        }
    } elsif (defined $block->response_headers_like) {
        my $spec = get_indexed_value($block->response_headers_like, $req_idx,
                                     $need_array);
        for my $h (@{ parse_headers($spec) }) {
            my ($key, $val) = @$h;
            $val //= '';
            my $actual = $res ? $res->header($key) : undef;
            Test::More::like($actual // '', qr/^$val$/,
                             "$name - header $key like ok");
        }
    }
}

# "--- response_body_filters": builtin names or code refs applied to the
# actual body before it is compared.
my %BodyFilters = (
    uc       => sub { uc $_[0] },
    lc       => sub { lc $_[0] },
    ucfirst  => sub { ucfirst $_[0] },
    lcfirst  => sub { lcfirst $_[0] },
    length   => sub { length $_[0] },
    md5_hex  => sub { require Digest::MD5; Digest::MD5::md5_hex($_[0]) },
    sha1_hex => sub { require Digest::SHA; Digest::SHA::sha1_hex($_[0]) },
);

sub transform_response_body ($$$) {
    my ($block, $res, $req_idx) = @_;
    my $filters = $block->response_body_filters;
    return unless defined $filters && $res && defined $res->content;

    if (!ref $filters) {
        $filters =~ s/^\s+|\s+$//g;
        $filters = [ split /\s+/, $filters ];
    } elsif (ref $filters ne 'ARRAY') {
        $filters = [ $filters ];
    }
    if (ref $filters->[0] eq 'ARRAY') {    # one filter list per request
        $filters = $filters->[$req_idx] || [];
    }

    my $content = $res->content;
    for my $f (@$filters) {
        my $code = ref $f eq 'CODE' ? $f : $BodyFilters{$f};
        if (!$code) {
            Test::More::fail($block->name . " - unknown filter \"$f\" in "
                             . "--- response_body_filters");
            return;
        }
        $content = $code->($content);
    }
    $res->content($content);
}

sub check_response_body ($$$$$) {
    my ($block, $res, $req_idx, $repeated_idx, $need_array) = @_;
    my $name = $block->name;
    my $content = $res ? $res->content : undef;

    if (defined $block->response_body || defined $block->response_body_eval) {
        my $expected;
        if (defined $block->response_body_eval) {
            $expected = eval get_indexed_value($block->response_body_eval,
                                               $req_idx, $need_array);
            warn $@ if $@;
        } else {
            $expected = get_indexed_value($block->response_body, $req_idx,
                                          $need_array);
        }
        if (defined $expected && !ref $expected) {
            $expected =~ s/\$ServerPortForClient\b/$ServerPortForClient/g;
            $expected =~ s/\$ServerPort\b/$ServerPort/g;
        }
        my $tail = "(repeated req $repeated_idx, req $req_idx)";
        if (ref $expected) {
            Test::More::like($content, $expected,
                             "$name - response_body - like $tail");
        } else {
            is_str($content, $expected,
                   "$name - response_body - response is expected $tail");
        }
    } elsif (defined $block->response_body_like
             || defined $block->response_body_unlike)
    {
        my $like = defined $block->response_body_like;
        my $pat = get_indexed_value(
            $like ? $block->response_body_like : $block->response_body_unlike,
            $req_idx, $need_array);
        $pat =~ s/\$ServerPortForClient\b/$ServerPortForClient/g;
        $pat =~ s/\$ServerPort\b/$ServerPort/g;
        my $summary = trim($content) // '';
        $summary = substr($summary, 0, 100) . '...' if length $summary > 100;
        my $type = $like ? 'like' : 'unlike';
        my $tname = "$name - response_body_$type - response is expected "
                    . "($summary)";
        if ($like) {
            Test::More::like($content, qr/$pat/s, $tname);
        } else {
            Test::More::unlike($content, qr/$pat/s, $tname);
        }
    }

    for my $check (@ResponseBodyChecks) {
        $check->($block, $content, $req_idx, $repeated_idx, 0);
    }
}

# String equality with a readable failure report: a unified diff for
# multi-line values, escaped strings otherwise.  Regexps are matched.
sub is_str ($$;$) {
    my ($got, $expected, $desc) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    if (ref $expected && ref $expected eq 'Regexp') {
        return Test::More::like($got, $expected, $desc);
    }
    if (!defined $got || !defined $expected || $NoLongString
        || $got eq $expected)
    {
        return Test::More::is($got, $expected, $desc);
    }
    my $ok = Test::More::ok(0, $desc);
    if (!$ENV{TEST_SHOW_NO_DIFFS} && ($got =~ /\n./ || $expected =~ /\n./)) {
        my ($e, $g) = map { (my $s = $_) =~ s/\r/\\r/g; $s } $expected, $got;
        Test::More::diag(Text::Diff::diff(\$e, \$g, {
            STYLE => 'Unified', FILENAME_A => 'expected', FILENAME_B => 'got',
        }));
    }
    Test::More::diag("     got: \"" . show_all_chars($got) . "\"\n"
                     . "expected: \"" . show_all_chars($expected) . "\"\n"
                     . 'length: got ' . length($got) . ', expected '
                     . length($expected));
    return $ok;
}

#---------------------------------------------------------------------------
# Log checks
#---------------------------------------------------------------------------

sub split_lines ($) {
    my $s = shift // '';
    return $s =~ /([^\n]*\n|[^\n]+\z)/g;
}

sub tail_text ($$) {
    my ($text, $n) = @_;
    my @l = split_lines($text);
    @l = @l[-$n .. -1] if @l > $n;
    my $out = join '', @l;
    $out .= "\n" if length $out && $out !~ /\n\z/;
    return length $out ? $out : "(no output)\n";
}

sub fmt_str ($) {
    my $s = shift;
    chomp $s;
    $s =~ s/"/\\"/g;
    $s =~ s/\r/\\r/g;
    $s =~ s/\n/\\n/g;
    return $s;
}

sub value_contains ($$) {
    my ($v, $pat) = @_;
    return 0 unless defined $v;
    return (grep { value_contains($_, $pat) } @$v) ? 1 : 0
        if ref $v eq 'ARRAY';
    return index("$v", $pat) >= 0 ? 1 : 0;
}

# Pattern list of an error_log-like section: text (one substring per line),
# a qr// or an array of both.
sub pattern_list ($) {
    my $pats = shift;
    return [] unless defined $pats;
    return [$pats] if ref $pats eq 'Regexp';
    return [ @$pats ] if ref $pats eq 'ARRAY';
    chomp(my $s = $pats);
    return [ grep { length } split /\n+/, $s ];
}

sub line_matches ($$) {
    my ($line, $pat) = @_;
    return ref $pat ? scalar($line =~ $pat) : index($line, $pat) >= 0;
}

# Wait until nginx has logged the requests sent so far: the access log has
# one more line per request (log-phase handlers run right before that).
# Falls back to a short fixed delay when the config manages access logs
# itself.
sub settle_logs () {
    return unless $PendingRequests;
    my $want = $PendingRequests;
    $PendingRequests = 0;
    my $file = $Test::Nginx::Util::AccLogFile;
    if ($AccessLogCustom || $Test::Nginx::Util::NoNginxManager) {
        sleep 0.03;
        $AccSyncPos = file_size($file);
        return;
    }
    my $deadline = time + ($Test::Nginx::Util::UseValgrind ? 2 : 0.25);
    while (1) {
        my ($data) = read_file_from($file, $AccSyncPos);
        my $lines = () = $data =~ /\n/g;
        if ($lines >= $want || time > $deadline) {
            $AccSyncPos += length $data;
            last;
        }
        sleep 0.002;
    }
    sleep 0.002;   # let the remaining log-phase handlers finish
}

# error.log lines since the last call (or since the block started with
# check_accum_error_log), like upstream's error_log_data().
sub error_log_data () {
    settle_logs();
    my ($data, $pos) = read_file_from($Test::Nginx::Util::ErrLogFile,
                                      $ErrLogPos);
    $ErrLogPos = $pos unless $Test::Nginx::Util::CheckAccumErrLog;
    return wantarray ? ([ split_lines($data) ], $pos)
                     : [ split_lines($data) ];
}

# Run the error_log / no_error_log / grep_error_log checks of a block for
# one request.  $lines can be given (must_die).  Expected error_log
# patterns that are not there yet are polled for up to 1 s, except in the
# checks upstream makes after each but the last request of a block
# ($intermediate).
sub check_error_log ($$$$;$$) {
    my ($block, $res, $repeated_idx, $need_array, $lines, $intermediate) = @_;
    my $name = $block->name;

    my $error_log = $block->error_log;
    my $no_error_log = $block->no_error_log;
    my $grep_pats = $block->grep_error_log;

    return unless defined $error_log || defined $no_error_log
                  || defined $grep_pats;

    my $given = defined $lines;
    my $scan_pos;
    ($lines, $scan_pos) = error_log_data() unless $given;

    if (defined $error_log && !$given && !$intermediate) {
        my $deadline = time + ($Test::Nginx::Util::UseValgrind ? 5 : 1);
        while (1) {
            my @missing = grep {
                my $p = $_;
                !grep { line_matches($_, $p) } @$lines
            } @{ pattern_list($error_log) };
            last if !@missing || time > $deadline;
            sleep 0.01;
            my ($more, $pos) = read_file_from($Test::Nginx::Util::ErrLogFile,
                                              $scan_pos);
            if (length $more) {
                $scan_pos = $pos;
                $ErrLogPos = $pos unless $Test::Nginx::Util::CheckAccumErrLog;
                if (@$lines && $lines->[-1] !~ /\n\z/) {
                    $more = pop(@$lines) . $more;  # partial last line
                }
                push @$lines, split_lines($more);
            }
        }
    }

    if (defined $grep_pats) {
        my $pat = ref $grep_pats eq 'ARRAY' ? $grep_pats->[$repeated_idx]
                                            : $grep_pats;
        my $expected = $block->grep_error_log_out;
        if (!defined $expected) {
            Test::More::fail("$name - No --- grep_error_log_out defined but "
                             . "--- grep_error_log is defined");
        } elsif (defined $pat) {
            $expected = $expected->[$repeated_idx] if ref $expected eq 'ARRAY';
            my $matched = '';
            for my $line (@$lines) {
                if (ref $pat ? $line =~ $pat : $line =~ /\Q$pat\E/) {
                    my $m = $&;
                    $matched .= "$m\n" unless $m =~ /\n/;
                }
            }
            if (ref $expected eq 'Regexp') {
                Test::More::like($matched, $expected,
                    "$name - grep_error_log_out (req $repeated_idx)");
            } else {
                is_str($matched, $expected,
                       "$name - grep_error_log_out (req $repeated_idx)");
            }
        }
    }

    check_log_patterns($name, $lines, $error_log, $no_error_log, 'error.log',
                       " (req $repeated_idx)");
}

sub check_access_log ($$) {
    my ($block, $repeated_idx) = @_;
    my ($pats, $no_pats) = ($block->access_log, $block->no_access_log);
    return unless defined $pats || defined $no_pats;
    settle_logs();
    my ($data) = read_file_from($Test::Nginx::Util::AccLogFile,
                                $BlockAccStart);
    my @lines = split_lines($data);
    check_log_patterns($block->name, \@lines, $pats, $no_pats, 'access.log',
                       " (req $repeated_idx)");
}

# One test per pattern: each of @$want must match some line, none of
# @$dont may match any line.
sub check_log_patterns ($$$$$$) {
    my ($name, $lines, $want, $dont, $file, $suffix) = @_;

    for my $pat (@{ pattern_list($want) }) {
        next unless defined $pat;
        if (grep { line_matches($_, $pat) } @$lines) {
            Test::More::pass("$name - pattern \"$pat\" matches a line in "
                             . "$file$suffix");
        } else {
            Test::More::fail("$name - pattern \"$pat\" should match a line in "
                             . "$file$suffix");
        }
    }

    for my $pat (@{ pattern_list($dont) }) {
        next unless defined $pat;
        my @hits = grep { line_matches($_, $pat) } @$lines;
        my $p = fmt_str("$pat");
        if (@hits) {
            Test::More::fail("$name - pattern \"$p\" should not match any line "
                             . "in $file but matches line \""
                             . fmt_str($hits[0]) . "\"$suffix");
            Test::More::diag(join '', @hits[0 .. ($#hits < 9 ? $#hits : 9)]);
        } else {
            Test::More::pass("$name - pattern \"$p\" does not match a line in "
                             . "$file$suffix");
        }
    }
}

1;
