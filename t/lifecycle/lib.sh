# shellcheck shell=bash
# Helpers of the lifecycle checks (t/lifecycle/*.sh, run by
# scripts/lifecycle.sh): TAP-like "ok"/"not ok" lines, a failure count.

# shellcheck disable=SC2034 # used by the checks that source this
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
failed=0
n=0

ok() {
    n=$((n + 1))
    echo "ok $n - $*"
}

not_ok() {
    n=$((n + 1))
    failed=$((failed + 1))
    echo "not ok $n - $*"
}

# check DESCRIPTION COMMAND...: ok when the command succeeds
check() {
    local what=$1
    shift
    if "$@"; then ok "$what"; else not_ok "$what"; fi
}

# poll SECONDS COMMAND...: until the command succeeds (never a bare sleep)
poll() {
    local end=$((SECONDS + $1))
    shift
    until "$@"; do
        [ $SECONDS -lt "$end" ] || return 1
        sleep 0.1
    done
}

free_port() {
    perl -MIO::Socket::INET -e \
        'print IO::Socket::INET->new(Listen => 1, LocalAddr => "127.0.0.1:0")->sockport'
}

# json FILE-OR-- PERL-EXPRESSION-ON-$j: prints the value (a JSON parser,
# never a regex on JSON)
json() {
    perl -MJSON::PP -e '
        my ($f, $e) = @ARGV; local $/;
        my $t = $f eq "-" ? <STDIN> : do { open my $h, "<", $f or die; <$h> };
        my $j = JSON::PP->new->decode($t);
        my $v = eval $e; die $@ if $@;
        print ref $v eq "JSON::PP::Boolean" ? ($v ? "true" : "false")
            : ref $v ? JSON::PP->new->canonical->encode($v) : $v // "null";
    ' "$1" "$2"
}

# wrk's summary: "requests non2xx connect read write timeout"
wrk_figures() {
    perl -ne '
        $r = $1 if /^\s*(\d+) requests in/;
        $x = $1 if /Non-2xx or 3xx responses: (\d+)/;
        @s = ($1, $2, $3, $4)
            if /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/;
        END { print join(" ", $r // 0, $x // 0, @s ? @s : (0, 0, 0, 0)), "\n" }' "$1"
}

finish() {
    echo "1..$n"
    if [ "$failed" -gt 0 ]; then
        echo "# $failed of $n failed"
        exit 1
    fi
    exit 0
}
