/*
 * Copyright (C) ngx_linguamate developers
 *
 * libFuzzer harness for the settings (ngx_http_linguamate_settings.c):
 * the first byte picks a setting of ngx_http_linguamate_settings[], the
 * rest is its value, parsed by parse_value() as the env file and the
 * directives are: integers, booleans, durations, levels, URLs, paths,
 * origin lists, and the CIDR lists (RATE_LIMIT_ALLOWLIST,
 * ADMIN_ALLOWLIST) through nginx's own ngx_ptocidr().
 */

#include "fuzz_ngx.h"

#include "../ngx_linguamate/ngx_http_linguamate_settings.c"


static ngx_http_linguamate_main_conf_t  fuzz_lmcf;


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ngx_str_t                       value;
    ngx_uint_t                      n;
    ngx_conf_t                     *cf;
    ngx_http_request_t             *r;
    ngx_http_linguamate_setting_t  *s;

    if (size < 1) {
        return 0;
    }

    for (n = 0; ngx_http_linguamate_settings[n].env.len; n++) {
        /* void */
    }

    if (n == 0) {
        return 0;
    }

    s = &ngx_http_linguamate_settings[data[0] % n];

    r = fuzz_ngx_request(&fuzz_lmcf);
    cf = fuzz_ngx_conf(r);

    value.len = size - 1;
    value.data = ngx_pnalloc(r->pool, value.len ? value.len : 1);
    if (value.data == NULL) {
        abort();
    }

    ngx_memcpy(value.data, data + 1, value.len);

    ngx_memzero(&fuzz_lmcf, sizeof(fuzz_lmcf));
    (void) ngx_http_linguamate_parse_value(cf, &fuzz_lmcf, s, &value);

    fuzz_ngx_request_free(r);

    return 0;
}
