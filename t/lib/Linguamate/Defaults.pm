package Linguamate::Defaults;

# Shared defaults of the ngx_linguamate suites: every block's server gets
# the module switched on and the error pages routed to the envelope, and
# settings come only from the test (not from whoever runs it), unless the
# block gives its own "linguamate_env_from_process".
#
# Works with the repo's runner and with upstream Test::Nginx alike: it only
# uses add_block_preprocessor.

use strict;
use warnings;
use Test::Nginx::Socket ();

our $ErrorPages = <<'_EOC_';
    linguamate on;
    error_page 400 401 403 404 405 408 413 414 429 494 500 501 502 503
               504 505 /_linguamate/error;
    location = /_linguamate/error {
        internal;
        linguamate_endpoint error;
    }
_EOC_

sub import {
    # upstream Test::Nginx expands $TEST_NGINX_HTML_DIR from the environment
    # only (the repo's runner sets it itself); "eval" sections read it too
    $ENV{TEST_NGINX_HTML_DIR} //= Test::Nginx::Socket::html_dir();

    # the suites route "location /" themselves
    Test::Nginx::Socket::no_root_location();

    Test::Nginx::Socket::add_block_preprocessor(sub {
        my $block = shift;

        my $config = $block->config // '';
        unless ($block->no_error_pages) {
            $block->set_value('config', $ErrorPages . $config);
        }

        my $http = $block->http_config // '';
        if ($http !~ /linguamate_env_from_process/) {
            $block->set_value('http_config',
                              "linguamate_env_from_process off;\n" . $http);
        }
    });
}

1;
