package Linguamate::Build;

# What the module under test was built with: the header that
# scripts/build-info.sh wrote next to the .so in TEST_NGINX_LOAD_MODULES
# (upstream Test::Nginx's variable).  version() and commit().

use strict;
use warnings;
use File::Basename qw(dirname);

my %info;

sub load {
    return if %info;
    my $so = (split ' ', $ENV{TEST_NGINX_LOAD_MODULES} // '')[0]
        or die "TEST_NGINX_LOAD_MODULES is not set\n";
    my $h = dirname($so) . '/ngx_linguamate_build.h';
    open my $fh, '<', $h or die "$h: $!\n";
    while (<$fh>) {
        $info{lc $1} = $2
            if /^#define NGX_HTTP_LINGUAMATE_BUILD_(VERSION|COMMIT)\s+"(.*)"/;
    }
    die "$h: no build information\n" unless $info{version} && $info{commit};
}

sub version { load(); return $info{version} }
sub commit  { load(); return $info{commit} }

1;
