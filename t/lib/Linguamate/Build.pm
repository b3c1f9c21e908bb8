package Linguamate::Build;

# What the module under test was built with: the source that
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
    my $h = dirname($so) . '/ngx_http_linguamate_build.c';
    open my $fh, '<', $h or die "$h: $!\n";
    while (<$fh>) {
        $info{lc $1} = $2
            if /^ngx_str_t\s+ngx_http_linguamate_build_(version|commit)\s*=\s*ngx_string\("(.*)"\);/;
    }
    die "$h: no build information\n" unless $info{version} && $info{commit};
}

sub version { load(); return $info{version} }
sub commit  { load(); return $info{commit} }

1;
