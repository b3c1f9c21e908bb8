package Linguamate::Prom;

# Checks a Prometheus exposition with the real tool (promtool check
# metrics) and reads samples out of it.

use strict;
use warnings;
use Exporter 'import';
use File::Temp qw(tempfile);

our @EXPORT = qw(promtool_check prom_samples prom_value);

# "promtool ok" or what promtool said; for --- response_body_filters
sub promtool_check {
    my ($body) = @_;
    my ($fh, $file) = tempfile(UNLINK => 1);
    print $fh $body;
    close $fh;
    my $out = `promtool check metrics < '$file' 2>&1`;
    return $? == 0 ? "promtool ok\n" : "promtool failed: $out";
}

# { 'name{labels}' => value } of every sample
sub prom_samples {
    my ($body) = @_;
    my %s;
    for (split /\n/, $body) {
        next if /^#/ || !length;
        my ($k, $v) = /^(\S+(?:\{[^}]*\})?)\s+(\S+)$/ or next;
        $s{$k} = $v;
    }
    return \%s;
}

sub prom_value {
    my ($body, $key) = @_;
    return prom_samples($body)->{$key};
}

1;
