# vim:set ft= ts=4 sw=4 et fdm=marker:
#
# Self-test of the bundled Test::Nginx subset (t/lib/Test/Nginx/*.pm).
# Uses only stock nginx features (no module of this project).
#
# Part 1 is an ordinary Test::Nginx test file: the blocks below exercise the
# supported sections and are all expected to pass.
# Part 2 (after run_tests()) writes small test files into a temporary
# directory, runs them in subprocesses and checks that the runner reports
# deliberate failures (and that prove does, too), plus the features that
# need global settings (plans, ONLY/LAST, master process, config reuse...).
#
# Run: prove -I t/lib t/000-runner.t

use strict;
use warnings;

use Test::Nginx::Socket 'no_plan';

use Cwd ();
use File::Spec ();
use File::Temp ();
use IO::Socket::INET ();

# A listener that never accepts: requests proxied to it hang (timeout tests).
my $blackhole = IO::Socket::INET->new(
    LocalAddr => '127.0.0.1',
    LocalPort => 0,
    Listen    => 16,
    Proto     => 'tcp',
) or die "cannot create the black hole listener: $!";
$ENV{TEST_NGINX_RUNNER_BLACKHOLE_PORT} = $blackhole->sockport;

# A custom TEST_NGINX_* variable, expanded in config and user_files.
$ENV{TEST_NGINX_RUNNER_VAR} = 'hello';

# One block checks TEST_NGINX_LOAD_MODULES with a module that does not exist
# (nginx must refuse to start); the others keep the caller's value.
my $orig_load_modules = $ENV{TEST_NGINX_LOAD_MODULES};
add_block_preprocessor(sub {
    my $block = shift;
    if ($block->name =~ /TEST_NGINX_LOAD_MODULES/) {
        $ENV{TEST_NGINX_LOAD_MODULES} = '/nonexistent/ngx_runner_test_module.so';
    } elsif (defined $orig_load_modules) {
        $ENV{TEST_NGINX_LOAD_MODULES} = $orig_load_modules;
    } else {
        delete $ENV{TEST_NGINX_LOAD_MODULES};
    }
});

our ($main_config_log_seen, $post_main_config_seen);

run_tests();

# restore for the subprocesses below
if (defined $orig_load_modules) {
    $ENV{TEST_NGINX_LOAD_MODULES} = $orig_load_modules;
} else {
    delete $ENV{TEST_NGINX_LOAD_MODULES};
}

ok($main_config_log_seen, 'main_config: the extra error_log file was created');
ok($post_main_config_seen, 'post_main_config is placed after the http block');

run_meta_tests();

#===========================================================================
# Part 2: test files run in subprocesses
#===========================================================================

sub run_meta_tests {
    my $lib = Cwd::abs_path(File::Spec->catdir('t', 'lib'))
        // die "run me from the project root (t/lib not found)\n";
    my $dir = File::Temp::tempdir('runner-selftest-XXXXXX', TMPDIR => 1,
                                  CLEANUP => !$ENV{TEST_NGINX_NO_CLEAN});

    # run one test file; returns (exit code, combined output)
    my $run = sub {
        my ($file, $src, %env) = @_;
        my $path = "$dir/$file";
        open my $out, '>', $path or die "cannot write $path: $!";
        print $out $src;
        close $out;
        local %ENV = %ENV;
        delete $ENV{$_} for grep {
            /^TEST_NGINX_/
                && !/^TEST_NGINX_(?:BINARY|NO_CLEAN|VERBOSE|RUNNER_\w+)$/
        } keys %ENV;
        delete $ENV{TEST_NGINX_SERVER_PORT};
        $ENV{$_} = $env{$_} for keys %env;
        my $cmd = $env{__PROVE}
            ? "cd '$dir' && prove -I'$lib' '$file' 2>&1"
            : "cd '$dir' && '$^X' -I'$lib' '$file' 2>&1";
        my $output = `$cmd`;
        return ($? >> 8, $output);
    };

    my $head = "use Test::Nginx::Socket 'no_plan';\nno_shuffle();\n";

    #--- deliberate failures are reported ---------------------------------
    {
        my ($rc, $out) = $run->('fail_basic.t', $head . <<'_EOT_');
run_tests();
__DATA__

=== TEST 1: wrong body
--- config
    location = /t { return 200 "one\ntwo\nthree\n"; }
--- request
GET /t
--- response_body
one
TWO
three

=== TEST 2: wrong status
--- config
    location = /t { return 404; }
--- request
GET /t
--- error_code: 200

=== TEST 3: missing error_log line
--- config
    location = /t { return 200 "ok\n"; }
--- request
GET /t
--- error_log
this line is never logged

=== TEST 4: unwanted error_log line
--- config
    location /nf/ { root html; }
--- request
GET /nf/missing.txt
--- error_code: 404
--- no_error_log
[error]

=== TEST 5: wrong and unwanted headers
--- config
    location = /t { add_header X-Foo bar; add_header X-Bar 1; return 200 "ok\n"; }
--- request
GET /t
--- response_headers
X-Foo: baz
!X-Bar

=== TEST 6: body does not match response_body_like
--- config
    location = /t { return 200 "hello\n"; }
--- request
GET /t
--- response_body_like: ^bye

=== TEST 7: must_die but nginx starts fine
--- config
    location = /t { return 200 "ok\n"; }
--- must_die

=== TEST 8: broken config without must_die
--- config
    location = /t { return a b c; }
--- request
GET /t

=== TEST 9: client timeout without abort
--- config
    location = /t {
        proxy_read_timeout 2s;
        proxy_pass http://127.0.0.1:$TEST_NGINX_RUNNER_BLACKHOLE_PORT;
    }
--- request
GET /t
--- timeout: 200ms
--- ignore_response

=== TEST 10: several requests need array expectations
--- config
    location = /t { return 200 "ok\n"; }
--- request eval
["GET /t", "GET /t"]
--- response_body
ok

=== TEST 11: unknown TEST_NGINX variable in the config
--- config
    location = /t { return 200 "$TEST_NGINX_NO_SUCH_VARIABLE"; }
--- request
GET /t

=== TEST 12: Perl error in an eval section
--- config
    location = /t { return 200 "ok\n"; }
--- request eval
"GET /t" . (
--- response_body
ok

=== TEST 13: nginx killed during the test
--- config
    location = /t { return 200 "ok\n"; }
--- init
    open my $fh, '<', "$ENV{TEST_NGINX_SERVER_ROOT}/logs/nginx.pid" or die;
    my $pid = <$fh>;
    kill 'KILL', $pid;
    select undef, undef, undef, 0.1;
--- request
GET /t

=== TEST 14: the run continues after failures
--- config
    location = /t { return 200 "still fine\n"; }
--- request
GET /t
--- response_body
still fine
_EOT_

        isnt($rc, 0, 'failing file: non-zero exit status');
        my @expect_fail = (
            'TEST 1: wrong body - response_body - response is expected',
            'TEST 2: wrong status - status code ok',
            'TEST 3: missing error_log line - pattern "this line is never logged" should match',
            'TEST 4: unwanted error_log line - pattern "[error]" should not match any line',
            'TEST 5: wrong and unwanted headers - header X-Foo ok',
            'TEST 5: wrong and unwanted headers - header X-Bar not present',
            'TEST 6: body does not match response_body_like - response_body_like',
            'TEST 7: must_die but nginx starts fine - die as expected',
            'TEST 8: broken config without must_die - nginx failed to start',
            'ERROR: client socket timed out - ',
            'TEST 10: several requests need array expectations - You asked for many requests',
            'TEST 11: unknown TEST_NGINX variable in the config - cannot set up the server root: No environment TEST_NGINX_NO_SUCH_VARIABLE',
            'TEST 12: Perl error in an eval section - Perl error in "--- request eval"',
            'TEST 13: nginx killed during the test - Can\'t connect',
            'TEST 13: nginx killed during the test - nginx exited prematurely (signal 9)',
        );
        for my $f (@expect_fail) {
            like($out, qr/^not ok \d+ - .*\Q$f\E/m, "failure reported: $f");
        }
        like($out, qr/^ok \d+ - .*TEST 14: the run continues after failures - response_body/m,
             'tests after failures still run');
        like($out, qr/^#\s+-TWO$/m, 'body mismatch shows a unified diff (-expected)');
        like($out, qr/^#\s+\+two$/m, 'body mismatch shows a unified diff (+got)');
        like($out, qr/invalid number of arguments in "return" directive/,
             'start failure shows what nginx printed');
        unlike($out, qr/^ok \d+ - .*TEST 7: must_die/m, 'must_die failure is not a pass');
    }

    #--- prove itself reports the failure --------------------------------
    {
        my ($rc, $out) = $run->('fail_prove.t', $head . <<'_EOT_', __PROVE => 1);
run_tests();
__DATA__

=== TEST 1: deliberately wrong expectation
--- config
    location = /t { return 200 "right\n"; }
--- request
GET /t
--- response_body
wrong
_EOT_
        isnt($rc, 0, 'prove exits non-zero on a failing expectation');
        like($out, qr/Result: FAIL/, 'prove prints Result: FAIL');
        like($out, qr/Failed 1\/2 subtests|Failed tests:\s+2/, 'prove counts the failed subtest');
    }

    #--- a passing file passes under prove -------------------------------
    {
        my ($rc, $out) = $run->('pass_prove.t', $head . <<'_EOT_', __PROVE => 1);
run_tests();
__DATA__

=== TEST 1: fine
--- config
    location = /t { return 200 "right\n"; }
--- request
GET /t
--- response_body
right
_EOT_
        is($rc, 0, 'prove exits 0 on a passing file') or diag($out);
        like($out, qr/Result: PASS/, 'prove prints Result: PASS');
    }

    #--- crashed workers (master process) ---------------------------------
    {
        my ($rc, $out) = $run->('fail_worker_crash.t', <<'_EOT_');
use Test::Nginx::Socket 'no_plan';
master_on();
workers(2);
no_shuffle();
run_tests();
__DATA__

=== TEST 1: a worker process gets killed
--- config
    location = /t { return 200 "ok\n"; }
--- init
    # kill the worker processes of the nginx master (found in /proc)
    open my $fh, '<', "$ENV{TEST_NGINX_SERVER_ROOT}/logs/nginx.pid" or die;
    chomp(my $master = <$fh>);
    for (1 .. 200) {
        my @kids;
        for my $stat (glob '/proc/[0-9]*/stat') {
            open my $s, '<', $stat or next;
            my $line = <$s> // next;
            push @kids, $1 if $line =~ /^(\d+) \(.*\) \S (\d+) / && $2 == $master;
        }
        if (@kids >= 2) { kill 'KILL', @kids; last }
        select undef, undef, undef, 0.01;
    }
    select undef, undef, undef, 0.1;
--- request
GET /t
--- response_body
ok

=== TEST 2: the next block is fine
--- config
    location = /t { return 200 "ok\n"; }
--- request
GET /t
--- response_body
ok
_EOT_
        isnt($rc, 0, 'worker crash: non-zero exit status');
        like($out, qr/^not ok \d+ - .*TEST 1: a worker process gets killed - no nginx process crashed/m,
             'worker crash: "exited on signal" fails the block');
        like($out, qr/exited on signal 9/, 'worker crash: the log line is shown');
        like($out, qr/^ok \d+ - .*TEST 2: the next block is fine - response_body/m,
             'worker crash: the next block passes');
        unlike($out, qr/^not ok \d+ - .*TEST 2/m, 'worker crash: next block not blamed');
    }

    #--- sanitizer reports (TEST_NGINX_CHECK_SANITIZER) -------------------
    {
        my $src = $head . <<'_EOT_';
run_tests();
__DATA__

=== TEST 1: an ASan report on stderr
--- config
    location = /t { return 200 "ok\n"; }
--- init
    open my $fh, '>>', "$ENV{TEST_NGINX_SERVER_ROOT}/logs/stderr.log" or die;
    print $fh "=================================================================\n",
              "==4242==ERROR: AddressSanitizer: heap-use-after-free on address 0x602000000010\n",
              "    #0 0x4f1c2d in ngx_fake_function src/fake.c:42\n",
              "SUMMARY: AddressSanitizer: heap-use-after-free src/fake.c:42\n";
    close $fh;
--- request
GET /t

=== TEST 2: a UBSan report in error.log
--- config
    location = /t { return 200 "ok\n"; }
--- init
    open my $fh, '>>', "$ENV{TEST_NGINX_SERVER_ROOT}/logs/error.log" or die;
    print $fh "src/fake.c:7:5: runtime error: signed integer overflow\n";
    close $fh;
--- request
GET /t

=== TEST 3: clean (a report of another process is not ours)
--- config
    location = /t { return 200 "ok\n"; }
--- init
    my ($prefix) = ($ENV{ASAN_OPTIONS} // '') =~ /.*log_path=([^:]+)/;
    if ($prefix) {
        open my $fh, '>', "$prefix.1" or die;
        print $fh "==1==ERROR: AddressSanitizer: not from our nginx\n";
    }
--- request
GET /t

=== TEST 4: a report in an ASAN_OPTIONS log_path file
--- config
    location = /t { return 200 "ok\n"; }
--- init
    my ($prefix) = ($ENV{ASAN_OPTIONS} // '') =~ /.*log_path=([^:]+)/
        or return;
    open my $fh, '<', "$ENV{TEST_NGINX_SERVER_ROOT}/logs/nginx.pid" or die;
    chomp(my $pid = <$fh>);
    open my $out, '>', "$prefix.$pid" or die;
    print $out "==$pid==ERROR: AddressSanitizer: stack-buffer-overflow\n";
--- request
GET /t
_EOT_
        my $asan = join ':', grep { length } $ENV{ASAN_OPTIONS} // '',
                                             "log_path=$dir/asanlog";
        my ($rc, $out) = $run->('fail_sanitizer.t', $src,
                                TEST_NGINX_CHECK_SANITIZER => 1,
                                ASAN_OPTIONS => $asan);
        isnt($rc, 0, 'sanitizer: non-zero exit status');
        like($out, qr/^not ok \d+ - .*TEST 1: an ASan report on stderr - no sanitizer report/m,
             'sanitizer: ASan report fails the block');
        like($out, qr/^not ok \d+ - .*TEST 2: a UBSan report in error.log - no sanitizer report/m,
             'sanitizer: UBSan report fails the block');
        like($out, qr/heap-use-after-free/, 'sanitizer: report is shown');
        unlike($out, qr/^not ok \d+ - .*TEST 3/m, 'sanitizer: clean block passes');
        like($out, qr/^not ok \d+ - .*TEST 4: a report in an ASAN_OPTIONS log_path file - no sanitizer report/m,
             'sanitizer: report in a log_path file fails the block');
        like($out, qr/stack-buffer-overflow/, 'sanitizer: log_path report is shown');
        unlike($out, qr/not from our nginx/, 'sanitizer: other processes\' reports are ignored');

        # (the fake reports must not land in the caller's log_path)
        ($rc, $out) = $run->('pass_sanitizer_off.t', $src,
                             ASAN_OPTIONS => $asan);
        is($rc, 0, 'sanitizer reports are ignored without TEST_NGINX_CHECK_SANITIZER')
            or diag($out);
    }

    #--- plan tests => N counts assertions like upstream ------------------
    {
        my ($rc, $out) = $run->('plan.t', <<'_EOT_');
use Test::Nginx::Socket;
repeat_each(2);
plan tests => repeat_each() * (3 * blocks()) + 1;
no_shuffle();
run_tests();
ok(1, 'extra test after run_tests');
__DATA__

=== TEST 1: status + body + one no_error_log pattern
--- config
    location = /t { return 200 "ok\n"; }
--- request
GET /t
--- response_body
ok
--- no_error_log
[error]

=== TEST 2: status + two headers
--- config
    location = /t { add_header X-A a; return 200 "ok\n"; }
--- request
GET /t
--- response_headers
X-A: a
!X-B
_EOT_
        is($rc, 0, 'plan tests => N: passes with upstream-compatible counts')
            or diag($out);
        like($out, qr/^1\.\.13$/m, 'plan tests => N: plan printed first');

        ($rc, $out) = $run->('plan_noplan.t', <<'_EOT_');
use Test::Nginx::Socket;
plan 'no_plan';
run_tests();
__DATA__

=== TEST 1: sanity
--- config
    location = /t { return 200 "ok\n"; }
--- request
GET /t
--- response_body
ok
_EOT_
        is($rc, 0, "plan 'no_plan' works") or diag($out);
        like($out, qr/^1\.\.2$/m, "plan 'no_plan': 2 tests");
    }

    #--- ONLY and LAST ------------------------------------------------------
    {
        my $blocks = join '', map { <<"_EOB_" } 1 .. 4;

=== TEST $_: block $_
--- config
    location = /t { return 200 "$_\\n"; }
--- request
GET /t
--- response_body
$_
_EOB_
        (my $only = $blocks) =~ s/(=== TEST 3: block 3\n)/$1--- ONLY\n/;
        my ($rc, $out) = $run->('only.t', $head . "run_tests();\n__DATA__\n$only");
        is($rc, 0, 'ONLY: passes') or diag($out);
        like($out, qr/^1\.\.2$/m, 'ONLY: only one block ran');
        like($out, qr/TEST 3: block 3 - response_body/, 'ONLY: the right block ran');

        (my $last = $blocks) =~ s/(=== TEST 2: block 2\n)/$1--- LAST\n/;
        ($rc, $out) = $run->('last.t', $head . "run_tests();\n__DATA__\n$last");
        is($rc, 0, 'LAST: passes') or diag($out);
        like($out, qr/^1\.\.4$/m, 'LAST: blocks after LAST are not run');
    }

    #--- global settings: master process, workers, repeat_each, config reuse
    {
        my ($rc, $out) = $run->('settings.t', <<'_EOT_');
use Test::Nginx::Socket 'no_plan';
repeat_each(2);
workers(2);
master_on();
no_shuffle();
log_level('info');
worker_connections(128);
no_root_location();
check_accum_error_log();
env_to_nginx('RUNNER_ENV_A=1', 'RUNNER_ENV_B');
config_preamble("        add_header X-Preamble yes;\n");
our ($conf, $master_pid, $same_master);
run_tests();
like($conf, qr/^master_process on;$/m, 'master_on');
like($conf, qr/^worker_processes  2;$/m, 'workers(2)');
like($conf, qr/ info;$/m, 'log_level(info)');
like($conf, qr/worker_connections  128;/, 'worker_connections');
like($conf, qr/^env RUNNER_ENV_A=1;$/m, 'env_to_nginx with value');
like($conf, qr/^env RUNNER_ENV_B;$/m, 'env_to_nginx without value');
unlike($conf, qr/location \/ \{/, 'no_root_location');
ok($same_master, 'a block without --- config reuses the running nginx');
is(repeat_each(), 2, 'repeat_each() getter');
is(workers(), 2, 'workers() getter');
is(master_process_enabled(), 'on', 'master_process_enabled() getter');
like(server_port(), qr/^\d+$/, 'server_port() getter');
is($ServerPort, server_port(), '$ServerPort exported');
like(html_dir(), qr{/html$}, 'html_dir()');
like(server_root(), qr{servroot}, 'server_root()');
__DATA__

=== TEST 1: master process with two workers, repeated twice
--- config
    location = /t { return 200 "ok\n"; }
--- init
    open my $fh, '<', "$ENV{TEST_NGINX_SERVER_ROOT}/conf/nginx.conf" or die;
    $main::conf = do { local $/; <$fh> };
    open $fh, '<', "$ENV{TEST_NGINX_SERVER_ROOT}/logs/nginx.pid" or die;
    chomp($main::master_pid = <$fh>);
--- request
GET /t
--- response_headers
X-Preamble: yes
--- response_body
ok
--- error_log
start worker process
--- no_error_log
[debug]

=== TEST 2: no config section: same nginx, same config
--- init
    open my $fh, '<', "$ENV{TEST_NGINX_SERVER_ROOT}/logs/nginx.pid" or die;
    chomp(my $pid = <$fh>);
    $main::same_master = $pid eq $main::master_pid;
--- request
GET /t
--- response_body
ok
_EOT_
        is($rc, 0, 'settings file passes') or diag($out);
        my $n = () = $out =~ /^ok \d+ - .*TEST 1: .* - response_body - response is expected/mg;
        is($n, 2, 'repeat_each(2) runs the block twice');
        like($out, qr/\(repeated req 1, req 0\)/, 'repeated request index in names');
    }

    #--- shuffling --------------------------------------------------------
    {
        my $blocks = join '', map { <<"_EOB_" } 1 .. 12;

=== TEST $_: block $_
--- config
    location = /t { return 200 "$_\\n"; }
--- request
GET /t
--- response_body
$_
_EOB_
        my ($rc, $out) = $run->('shuffle.t',
            "use Test::Nginx::Socket 'no_plan';\nrun_tests();\n__DATA__\n$blocks");
        is($rc, 0, 'shuffled file passes') or diag($out);
        my @order = $out =~ /TEST (\d+): block \d+ - status/g;
        is(scalar @order, 12, 'shuffled: all blocks ran');
        my @sorted = sort { $a <=> $b } @order;
        # 1 in 12! chance of a false failure
        isnt("@order", "@sorted", 'blocks are shuffled by default');
    }

    #--- valgrind (optional, slow) -----------------------------------------
    SKIP: {
        skip 'set RUNNER_SELFTEST_VALGRIND=1 to test TEST_NGINX_USE_VALGRIND', 2
            unless $ENV{RUNNER_SELFTEST_VALGRIND};
        # stock nginx "leaks" a few start-up allocations at exit
        open my $supp, '>', "$dir/valgrind.supp" or die;
        print $supp <<'_EOS_';
{
   nginx-set-environment
   Memcheck:Leak
   match-leak-kinds: definite
   fun:malloc
   fun:ngx_alloc
   fun:ngx_set_environment
}
{
   nginx-single-process-init
   Memcheck:Leak
   match-leak-kinds: definite
   fun:malloc
   fun:ngx_alloc
   ...
   fun:ngx_single_process_cycle
}
_EOS_
        close $supp;
        my %vg_env = (TEST_NGINX_USE_VALGRIND  => 1,
                      TEST_NGINX_VALGRIND_SUPP => "$dir/valgrind.supp");
        my ($rc, $out) = $run->('valgrind.t', $head . <<'_EOT_', %vg_env);
run_tests();
__DATA__

=== TEST 1: under valgrind
--- config
    location = /t { return 200 "ok\n"; }
--- request
GET /t
--- response_body
ok
_EOT_
        is($rc, 0, 'valgrind: a clean block passes') or diag($out);
        like($out, qr/^ok \d+ - .*TEST 1: under valgrind - response_body/m,
             'valgrind: response checked');
    }
}

__DATA__

=== TEST 1: health answers
--- main_config
--- http_config
server_tokens off;
--- config
location = /t { return 200 "hi\n"; }
--- request
GET /t
--- more_headers
X-Foo: bar
--- error_code: 200
--- response_body
hi
--- no_error_log
[error]



=== TEST 2: http_config, more_headers and response_headers
--- http_config
    server_tokens off;
    map $http_x_who $greeting { default "stranger"; alice "friend"; }
--- config
    location = /hdr {
        add_header X-Greeting $greeting;
        add_header X-Multi a;
        add_header X-Multi b;
        return 200 "ok\n";
    }
--- request
GET /hdr
--- more_headers
X-Who: alice
# a comment line in more_headers
--- response_headers
Server: nginx
X-Greeting: friend
X-Multi: a, b
X-Absent:
!X-Powered-By
Content-Type: text/plain
--- response_body
ok



=== TEST 3: response_headers_like
--- config
    location = /hdr { add_header X-Num 12345; return 200 "ok\n"; }
--- request
GET /hdr
--- response_headers_like
Server: nginx/\d+\.\d+\.\d+
X-Num: \d+
Content-Length: \d



=== TEST 4: raw_response_headers_like and _unlike
--- config
    location = /t { return 200 "hi\n"; }
--- request
GET /t
--- raw_response_headers_like: ^HTTP/1\.1 200 OK\r\n.*Content-Length: 3\r\n
--- raw_response_headers_unlike: Transfer-Encoding



=== TEST 5: main_config, post_main_config and init
--- main_config
    worker_rlimit_nofile 1024;
    error_log logs/main_config.log notice;
--- post_main_config
    worker_shutdown_timeout 5s;
--- config
    location = /t { return 200 "main\n"; }
--- init
    $main::main_config_log_seen =
        -e "$ENV{TEST_NGINX_SERVER_ROOT}/logs/main_config.log";
    open my $fh, '<', "$ENV{TEST_NGINX_SERVER_ROOT}/conf/nginx.conf" or die;
    my $conf = do { local $/; <$fh> };
    $main::post_main_config_seen =
        index($conf, 'worker_shutdown_timeout 5s;') > index($conf, 'http {');
--- request
GET /t
--- response_body
main



=== TEST 6: $TEST_NGINX_* variables in config, http_config, request, more_headers
--- http_config
    server {
        listen 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        location / { return 200 "second server\n"; }
    }
--- config
    location = /env {
        return 200 "var=$TEST_NGINX_RUNNER_VAR port=$TEST_NGINX_SERVER_PORT html=$TEST_NGINX_HTML_DIR hdr=$http_x_port\n";
    }
    location = /second {
        proxy_pass http://127.0.0.1:$arg_p/;
    }
--- request eval
['GET /env', 'GET /second?p=$TEST_NGINX_RAND_PORT_1']
--- more_headers
X-Port: $TEST_NGINX_SERVER_PORT
--- response_body eval
["var=hello port=$ENV{TEST_NGINX_SERVER_PORT} html=$ENV{TEST_NGINX_HTML_DIR} hdr=$ENV{TEST_NGINX_SERVER_PORT}\n",
 "second server\n"]
--- error_code eval
[200, 200]



=== TEST 7: $ServerPort in the expected body
--- config
    location = /p { return 200 "port=$server_port\n"; }
--- request
GET /p
--- response_body
port=$ServerPort



=== TEST 8: user_files with sub directories, env expansion and mtime
--- user_files
>>> foo.txt
Hello, $TEST_NGINX_RUNNER_VAR!
>>> sub/dir/bar.txt 201109192000
bar
--- config
    location = /unused { return 204; }
--- request eval
["GET /foo.txt", "GET /sub/dir/bar.txt"]
--- response_body eval
["Hello, hello!\n", "bar\n"]
--- response_headers eval
["Content-Length: 14", "Last-Modified: Mon, 19 Sep 2011 20:00:00 GMT"]



=== TEST 9: user_files eval, a 1 MB response, response_body_filters per request
--- user_files eval
[["big.txt", "x" x 1_000_000], ["empty.txt", ""], ["stamp.txt", "s\n", "201109192000.30"]]
--- config
    location = /unused { return 204; }
--- request eval
["GET /big.txt", "GET /empty.txt", "GET /stamp.txt"]
--- response_body_filters eval
[["length"], [], ["uc"]]
--- response_body eval
["1000000", "", "S\n"]
--- response_headers eval
["Content-Length: 1000000", "Content-Length: 0", "Last-Modified: Mon, 19 Sep 2011 20:00:30 GMT"]



=== TEST 10: request body: Content-Length added, body stripped
--- config
    location = /echo_body {
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/sink;
        add_header X-Body "[$request_body]" always;
    }
    location = /sink { return 200 "len=$http_content_length method=$request_method\n"; }
--- request
POST /echo_body
   hello world
--- response_headers
X-Body: [hello world]
--- response_body
len=11 method=POST



=== TEST 11: Content-Length in more_headers: body sent as is
--- config
    location = /echo_len { proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/sink; }
    location = /sink { return 200 "len=$http_content_length\n"; }
--- more_headers
Content-Length: 12
--- request
POST /echo_len
hello world
--- response_body
len=12



=== TEST 12: chunked request body
--- config
    location = /echo_len { proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/sink; }
    location = /sink { return 200 "len=$http_content_length\n"; }
--- more_headers
Transfer-Encoding: chunked
--- request eval
"POST /echo_len
5\r
hello\r
0\r
\r
"
--- response_body
len=5



=== TEST 13: 200 KB request body (client body temp file in the server root)
--- config
    location = /echo_len { proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/sink; }
    location = /sink { return 200 "len=$http_content_length\n"; }
--- request eval
"POST /echo_len\n" . ("a" x 200_000)
--- response_body
len=200000
--- no_error_log
[crit]



=== TEST 14: comments before the request line, query string
--- config
    location = /args { return 200 "args=$args\n"; }
--- request
# a comment
  # another comment
GET /args?a=1&b=2
--- response_body
args=a=1&b=2



=== TEST 15: HTTP/1.0 request line
--- config
    location = /proto { return 200 "$server_protocol $http_host $http_connection\n"; }
--- request
GET /proto HTTP/1.0
--- response_body
HTTP/1.0 localhost close



=== TEST 16: HEAD request: no body
--- config
    location = /t { return 200 "hi\n"; }
--- request
HEAD /t
--- response_headers
Content-Length: 3
--- response_body



=== TEST 17: more_headers override Host and Connection (keep-alive)
--- config
    location = /proto { return 200 "$server_protocol $http_host $http_connection\n"; }
--- more_headers
Host: override.example
Connection: keep-alive
--- request
GET /proto
--- response_body
HTTP/1.1 override.example keep-alive



=== TEST 18: request eval returning a string
--- config
    location = /args { return 200 "args=$args\n"; }
--- request eval
"GET /args?a=" . ("x" x 3) . "&b=" . (6 * 7)
--- response_body
args=a=xxx&b=42



=== TEST 19: several requests with per-request expectations
--- config
    location = /a { add_header X-A $http_x_a; return 200 "a\n"; }
--- request eval
["GET /a", "GET /missing_dir/x"]
--- more_headers eval
["X-A: one", "X-A: two"]
--- error_code eval
[200, 404]
--- response_headers eval
["X-A: one", "!X-A"]
--- response_body_like eval
["^a\n\$", "404 Not Found"]
--- no_error_log
[alert]



=== TEST 20: requests split into packets, with delay_before
--- config
    location = /echo_body {
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/sink;
        add_header X-Body "[$request_body]" always;
    }
    location = /sink { return 200 "len=$http_content_length\n"; }
    location = /t { return 200 "hi\n"; }
--- request eval
[["POST /echo_body\nhel", {value => "lo", delay_before => 0.05}],
 ["GE", "T /t"]]
--- response_headers eval
["X-Body: [hello]", "!X-Body"]
--- response_body eval
["len=5\n", "hi\n"]



=== TEST 21: pipelined requests
--- config
    location = /proto { return 200 "$server_protocol $http_host $http_connection\n"; }
    location = /echo_len { proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/sink; }
    location = /sink { return 200 "len=$http_content_length\n"; }
    location /chunked/ { ssi on; root $TEST_NGINX_HTML_DIR; }
--- user_files
>>> chunked/x.html
<!--# echo var="uri" -->
--- pipelined_requests eval
["GET /proto", "POST /echo_len\nabc", "GET /chunked/x.html", "GET /proto"]
--- error_code eval
[200, 200, 200, 200]
--- raw_response_headers_like eval
["Content-Length", "Content-Length", "Transfer-Encoding: chunked", "Content-Length"]
--- response_body eval
["HTTP/1.1 localhost keep-alive\n", "len=3\n", "/chunked/x.html\n", "HTTP/1.1 localhost close\n"]



=== TEST 22: chunked response (SSI)
--- user_files
>>> ssi/page.html
A<!--# echo var="ssi_v" -->B
--- config
    location /ssi/ { ssi on; set $ssi_v 42; root $TEST_NGINX_HTML_DIR; }
--- request
GET /ssi/page.html
--- raw_response_headers_like: Transfer-Encoding: chunked\r\n
--- response_body
A42B



=== TEST 23: response delimited by connection close (HTTP/1.0, SSI)
--- user_files
>>> ssi/page.html
A<!--# echo var="ssi_v" -->B
--- config
    location /ssi/ { ssi on; set $ssi_v 42; root $TEST_NGINX_HTML_DIR; }
--- request
GET /ssi/page.html HTTP/1.0
--- raw_response_headers_unlike: (?i)Transfer-Encoding|Content-Length
--- response_body
A42B



=== TEST 24: raw_request sent as is
--- config
    location = /proto { return 200 "$server_protocol $http_host $http_connection\n"; }
--- raw_request eval
"GET /proto HTTP/1.0\r\nHost: raw.example\r\n\r\n"
--- response_body eval
"HTTP/1.0 raw.example \n"



=== TEST 25: raw_request packets with raw_request_middle_delay
--- config
    location = /proto { return 200 "$server_protocol $http_host $http_connection\n"; }
--- raw_request eval
["GET /proto HTTP/1.1\r\nHo", "st: split.example\r\nConnection: close\r\n\r\n"]
--- raw_request_middle_delay: 0.02
--- response_body
HTTP/1.1 split.example close



=== TEST 26: HTTP/0.9 response (http09)
--- config
    location = /t { return 200 "hi\n"; }
--- raw_request eval
"GET /t\r\n"
--- http09
--- response_body
hi



=== TEST 27: response_body_like: multi-line form, single-line form
--- config
    location = /t { return 200 "hi\n"; }
--- request
GET /t
--- response_body_like
^h.$



=== TEST 28: response_body_like eval qr// and error_code_like
--- config
    location = /t { return 200 "Hi there\n"; }
--- request
GET /t
--- error_code_like: ^(?:200|204)$
--- response_body_like eval
qr/^hi THERE$/i



=== TEST 29: response_body_unlike
--- config
    location = /t { return 200 "hi\n"; }
--- request
GET /t
--- response_body_unlike: bye



=== TEST 30: response_body eval with binary data
--- config
    location = /bin { return 200 "a\tb\x01"; }
--- request
GET /bin
--- response_body eval
"a\tb\\x01"



=== TEST 31: error_log lines (substrings)
--- config
    location /nf/ { root $TEST_NGINX_HTML_DIR; }
--- request
GET /nf/missing.txt
--- error_code: 404
--- error_log
open()
No such file or directory
--- no_error_log
[alert]
[emerg]



=== TEST 32: error_log eval qr// and no_error_log eval
--- config
    location /nf/ { root $TEST_NGINX_HTML_DIR; }
--- request
GET /nf/missing.txt
--- error_code: 404
--- error_log eval
qr/open\(\) "[^"]+missing\.txt" failed/
--- no_error_log eval
qr/\[alert\]/



=== TEST 33: error_log eval and no_error_log eval with arrays
--- config
    location /nf/ { root $TEST_NGINX_HTML_DIR; }
--- request
GET /nf/missing.txt
--- error_code: 404
--- error_log eval
["missing.txt", qr/\[error\]/]
--- no_error_log eval
[qr/\[emerg\]/, "[crit]"]



=== TEST 34: start-up messages count for error_log
--- config
    location = /t { return 200 "hi\n"; }
--- request
GET /t
--- error_log
using the "epoll" event method



=== TEST 35: log_level section
--- log_level: warn
--- config
    location /nf/ { root $TEST_NGINX_HTML_DIR; }
--- request
GET /nf/missing.txt
--- error_code: 404
--- error_log
[error]
--- no_error_log
[notice]
[info]



=== TEST 36: grep_error_log and grep_error_log_out
--- config
    location /nf/ { root $TEST_NGINX_HTML_DIR; }
--- request
GET /nf/missing.txt
--- error_code: 404
--- grep_error_log: (2: No such file or directory)
--- grep_error_log_out
(2: No such file or directory)



=== TEST 37: access_log and no_access_log
--- config
    location = /t { return 200 "hi\n"; }
--- request
GET /t
--- access_log
"GET /t HTTP/1.1" 200 3
--- no_access_log
GET /nothing



=== TEST 38: must_die (invalid directive arguments)
--- config
    location = /t { return a b c; }
--- must_die
--- error_log
invalid number of arguments in "return" directive
--- no_error_log
[alert]



=== TEST 39: must_die with the expected exit code
--- http_config
    no_such_directive on;
--- must_die: 1
--- error_log eval
qr/unknown directive "no_such_directive"/



=== TEST 40: TEST_NGINX_LOAD_MODULES emits load_module (missing module: must die)
--- config
--- must_die
--- error_log eval
qr{dlopen\(\) "/nonexistent/ngx_runner_test_module\.so" failed}



=== TEST 41: timeout with abort is not a failure
--- config
    location = /hang {
        proxy_read_timeout 2s;
        proxy_pass http://127.0.0.1:$TEST_NGINX_RUNNER_BLACKHOLE_PORT;
    }
--- request
GET /hang
--- timeout: 300ms
--- abort
--- ignore_response
--- access_log
"GET /hang HTTP/1.1" 499



=== TEST 42: wait and shutdown
--- config
    location = /t { return 200 "hi\n"; }
--- request
GET /t
--- wait: 0.05
--- shutdown
--- response_body
hi



=== TEST 43: SKIP removes a block
--- SKIP
--- config
    location = /t { return 500; }
--- request
GET /t
--- response_body
never checked



=== TEST 44: skip_nginx: condition false, block runs
--- config
    location = /t { return 200 "hi\n"; }
--- request
GET /t
--- skip_nginx: 2: < 1.0.0
--- response_body
hi



=== TEST 45: skip_nginx: condition true, block skipped
--- config
    location = /t { return 500; }
--- request
GET /t
--- skip_nginx
2: >= 0.1.0
--- response_body
never checked



=== TEST 46: skip_nginx with a two-part version and skip_nginx2
--- config
    location = /t { return 500; }
--- request
GET /t
--- skip_nginx2: 2: < 0.1 or > 1.0
--- response_body
never checked



=== TEST 47: skip_eval
--- config
    location = /t { return 500; }
--- request
GET /t
--- skip_eval: 2: 1 + 1 == 2
--- response_body
never checked



=== TEST 48: response_body_filters (names and code refs)
--- config
    location = /t { return 200 "Hi\n"; }
--- request
GET /t
--- response_body_filters eval
["uc", sub { $_[0] . "!" }]
--- response_body eval
"HI\n!"



=== TEST 49: server_name section
--- server_name: runner.example
--- config
    location = /sn { return 200 "$server_name\n"; }
--- request
GET /sn
--- response_body
runner.example



=== TEST 50: curl section (prints a curl command line)
--- config
    location = /t { return 200 "hi\n"; }
--- request
GET /t?x=1
--- more_headers
X-Curl: yes
--- curl
--- response_body
hi



=== TEST 51: default location / serves html/index.html
--- config
    location = /unused { return 204; }
--- request
GET /
--- response_body_like: It works!
