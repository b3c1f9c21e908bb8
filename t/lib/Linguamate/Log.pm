package Linguamate::Log;

# Reads pino-shaped JSON log lines with a real JSON parser and renders
# each as one comparable line, for "--- response_body_filters eval".

use strict;
use warnings;
use JSON::PP ();
use Exporter 'import';

our @EXPORT = qw(log_summary);

my $json = JSON::PP->new->canonical;

# one line per log line: "level evt msg | method path status | corr sess"
# plus "!" notes for anything not of the contract's shape
sub log_summary {
    my ($body) = @_;
    my @out;

    # only bodies that are log streams are summarised; others read ""
    return "" unless $body =~ /\A\{"level":/;

    for my $line (split /\n/, $body) {
        next if $line eq '';
        my $d = eval { $json->decode($line) };
        if (!$d) {
            push @out, "NOT JSON: $line";
            next;
        }

        my @notes;
        push @notes, "level" unless ($d->{level} // '') =~ /^(10|20|30|40|50|60)$/;
        push @notes, "time" unless ($d->{time} // '') =~ /^\d{13}$/;
        push @notes, "pid" unless ($d->{pid} // '') =~ /^\d+$/;
        push @notes, "hostname" unless defined $d->{hostname} && !ref $d->{hostname};
        push @notes, "env" unless ($d->{env} // '') =~ /^(development|test|staging|production)$/;

        # durations vary from run to run: "12ms" reads "Nms"
        (my $msg = $d->{msg} // '-') =~ s/ \d+ms$/ Nms/;
        my $s = join ' ', $d->{level} // '-', $d->{evt} // '-', $msg;
        if (my $r = $d->{req}) {
            push @notes, "duration" unless ($r->{duration} // '') =~ /^\d+$/;
            push @notes, "status" unless ($r->{status} // '') =~ /^\d+$/;
            $s .= " | $r->{method} $r->{path} $r->{status}";
        }
        if (my $c = $d->{corr}) {
            $s .= " | " . ($c->{correlationId} // '-') . " "
                  . ($c->{sessionId} // '-');
        }
        $s .= " !" . join(',', @notes) if @notes;
        push @out, $s;
    }

    return join("\n", @out) . "\n";
}

1;
