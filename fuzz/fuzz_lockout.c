/*
 * Copyright (C) ngx_linguamate developers
 *
 * libFuzzer harness for the account of a login body
 * (ngx_http_linguamate_lockout.c): the input is a cut size byte, then the
 * body, handed to find_email() as a request body of pieces of that size;
 * it checks the bytes (byte-order mark, UTF-8, \u surrogates) and its
 * yajl callbacks keep the "email" strings found where a login names its
 * account ({"email"}, {"json":{"email"}}, {"0":{"json":{"email"}}}),
 * trimmed and lower-cased, or say why the body cannot be read as the app
 * reads it (superjson meta on the email, too deep, not a string...).
 */

#include "fuzz_ngx.h"

#include "../ngx_linguamate/ngx_http_linguamate_lockout.c"


static ngx_http_linguamate_main_conf_t  fuzz_lmcf;


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    u_char                            c;
    size_t                            j;
    ngx_str_t                        *e;
    ngx_uint_t                        i;
    ngx_chain_t                      *in;
    ngx_http_request_t               *r;
    ngx_http_linguamate_email_ctx_t  *ec;

    if (size < 1) {
        return 0;
    }

    r = fuzz_ngx_request(&fuzz_lmcf);

    in = fuzz_ngx_chain(r->pool, data + 1, size - 1, data[0] % 64);

    ec = ngx_pcalloc(r->pool, sizeof(ngx_http_linguamate_email_ctx_t));
    if (ec == NULL) {
        abort();
    }

    ec->pool = r->pool;

    if (ngx_http_linguamate_find_email(ec, in) != NGX_OK
        || ec->n > NGX_HTTP_LINGUAMATE_ACCOUNTS
        || ec->depth > NGX_HTTP_LINGUAMATE_JSON_DEPTH + 1
        || ec->unread >= sizeof(ngx_http_linguamate_unread)
                         / sizeof(ngx_http_linguamate_unread[0]))
    {
        abort();
    }

    /* an account is trimmed, lower-cased, printable ASCII */

    for (i = 0; i < ec->n; i++) {
        e = &ec->email[i];

        if (e->len == 0 || e->len > NGX_HTTP_LINGUAMATE_EMAIL_MAX
            || e->data[0] == ' ' || e->data[e->len - 1] == ' ')
        {
            abort();
        }

        for (j = 0; j < e->len; j++) {
            c = e->data[j];

            if (c < 0x20 || c >= 0x7f || (c >= 'A' && c <= 'Z')) {
                abort();
            }
        }
    }

    fuzz_ngx_request_free(r);

    return 0;
}
