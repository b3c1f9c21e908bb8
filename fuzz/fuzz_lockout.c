/*
 * Copyright (C) ngx_linguamate developers
 *
 * libFuzzer harness for the account of a login body
 * (ngx_http_linguamate_lockout.c): the input is a cut size byte, then the
 * body, handed to find_email() as a request body of pieces of that size;
 * its yajl callbacks keep the "email" strings found where a login names
 * its account ({"email"}, {"json":{"email"}}, {"0":{"json":{"email"}}}).
 */

#include "fuzz_ngx.h"

#include "../ngx_linguamate/ngx_http_linguamate_lockout.c"


static ngx_http_linguamate_main_conf_t  fuzz_lmcf;


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ngx_uint_t                        i;
    ngx_http_request_t               *r;
    ngx_http_request_body_t           rb;
    ngx_http_linguamate_email_ctx_t  *ec;

    if (size < 1) {
        return 0;
    }

    r = fuzz_ngx_request(&fuzz_lmcf);

    ngx_memzero(&rb, sizeof(ngx_http_request_body_t));
    rb.bufs = fuzz_ngx_chain(r->pool, data + 1, size - 1, data[0] % 64);
    r->request_body = &rb;

    ec = ngx_pcalloc(r->pool, sizeof(ngx_http_linguamate_email_ctx_t));
    if (ec == NULL) {
        abort();
    }

    ngx_http_linguamate_find_email(r, ec);

    if (ec->n > 2 || ec->depth > NGX_HTTP_LINGUAMATE_JSON_DEPTH + 1) {
        abort();
    }

    for (i = 0; i < ec->n; i++) {
        if (ec->len[i] == 0 || ec->len[i] > NGX_HTTP_LINGUAMATE_EMAIL_MAX) {
            abort();
        }
    }

    fuzz_ngx_request_free(r);

    return 0;
}
