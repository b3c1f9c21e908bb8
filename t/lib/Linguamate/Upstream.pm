package Linguamate::Upstream;

# A small fake HTTP/1.1 upstream, forked, for the tests: it reads each
# request whole (Content-Length or chunked) and answers with what the
# handler returns: ($status, $body, \%headers).

use strict;
use warnings;
use IO::Socket::INET;
use POSIX qw(WNOHANG);

sub new {
    my ($class, $handler) = @_;
    my $listen = IO::Socket::INET->new(Listen => 128, LocalAddr => '127.0.0.1:0',
                                       ReuseAddr => 1) or die "listen: $!";
    my $self = bless { port => $listen->sockport, owner => $$ }, $class;

    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        $SIG{TERM} = sub { POSIX::_exit(0) };
        while (my $c = $listen->accept) {
            serve($c, $handler);
            close $c;
        }
        POSIX::_exit(0);
    }
    close $listen;
    $self->{pid} = $pid;
    return $self;
}

sub serve {
    my ($c, $handler) = @_;
    local $/ = "\r\n";
    while (1) {
        my $line = <$c> // return;
        my ($method, $uri) = $line =~ /^(\S+) (\S+)/ or return;
        my %h;
        while (my $l = <$c>) {
            last if $l eq "\r\n";
            $h{lc $1} = $2 if $l =~ /^([^:]+):\s*(.*?)\r\n$/;
        }
        my $body = '';
        if (defined $h{'content-length'}) {
            read $c, $body, $h{'content-length'};
        } elsif (($h{'transfer-encoding'} // '') =~ /chunked/i) {
            while (1) {
                my $size = hex(<$c> // 0);
                last if $size == 0;
                my $chunk;
                read $c, $chunk, $size;
                $body .= $chunk;
                <$c>;
            }
            <$c>;
        }
        my ($status, $out, $hdrs) = $handler->($method, $uri, \%h, $body);
        if ($status eq 'RAW') {
            # the handler writes the response itself, then we close
            $out->($c);
            return;
        }
        $hdrs //= {};
        my $resp = "HTTP/1.1 $status X\r\nContent-Length: " . length($out) . "\r\n";
        $resp .= "$_: $hdrs->{$_}\r\n" for keys %$hdrs;
        $resp .= "Content-Type: application/json\r\n" unless $hdrs->{'Content-Type'};
        $resp .= "\r\n$out";
        print $c $resp;
        return if ($h{connection} // '') =~ /close/i;
    }
}

sub port { $_[0]{port} }

sub stop {
    my ($self) = @_;
    return unless $self->{pid} && $$ == $self->{owner};
    kill 'TERM', $self->{pid};
    waitpid $self->{pid}, 0;
    delete $self->{pid};
}

sub DESTROY { $_[0]->stop }

1;
