package Linguamate::Token;

# Tokens for the suites, made with the operator tool (scripts/jwt), and a
# few hand-made broken ones.

use strict;
use warnings;
use Exporter 'import';
use MIME::Base64 qw(encode_base64);
use Digest::SHA qw(hmac_sha256);

our @EXPORT = qw(token raw_token b64url session_status $SECRET $OTHER);

our $SECRET = 'test-secret-test-secret-test-secret-0001';
our $OTHER = 'another-secret-another-secret-another-02';

sub token {
    my (%o) = @_;
    my $secret = delete $o{secret} // $SECRET;
    my @args = ('--secret', $secret);
    for my $k (sort keys %o) {
        if (ref $o{$k} eq 'ARRAY') {
            push @args, map { ("--$k", $_) } @{ $o{$k} };
        } elsif (defined $o{$k}) {
            push @args, "--$k", $o{$k};
        } else {
            push @args, "--$k";
        }
    }
    my $root = $ENV{LINGUAMATE_REPO} // '.';
    open my $fh, '-|', "$root/scripts/jwt", 'sign', @args or die $!;
    my $t = <$fh>;
    close $fh or die "scripts/jwt sign @args failed";
    chomp $t;
    return $t;
}

# what GET /api/auth/session answers a token, on every worker (fresh
# connections, six times): the distinct "STATUS[ REASON]" seen, sorted
sub session_status {
    my ($srv, $token) = @_;
    require HTTP::Tiny;
    require JSON::PP;
    my $http = HTTP::Tiny->new(timeout => 10);
    my %seen;
    for (1 .. 6) {
        my $r = $http->get($srv->url('/api/auth/session'),
                           { headers => { Authorization => "Bearer $token" } });
        my $reason = eval { JSON::PP->new->decode($r->{content})->{error}{reason} };
        $seen{ $r->{status} . ($reason ? " $reason" : '') }++;
    }
    return join ',', sort keys %seen;
}

sub b64url {
    my $s = encode_base64(shift, '');
    $s =~ tr{+/}{-_};
    $s =~ s/=+$//;
    return $s;
}

# a token from raw header and payload text, signed with HS256
sub raw_token {
    my ($header, $payload, $secret) = @_;
    my $h = b64url($header);
    my $p = b64url($payload);
    return "$h.$p." . b64url(hmac_sha256("$h.$p", $secret // $SECRET));
}

1;
