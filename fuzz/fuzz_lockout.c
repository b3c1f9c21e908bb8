/*
 * Copyright (C) ngx_linguamate developers
 *
 * libFuzzer harness for the account of a login body, linked with its
 * parse layer (ngx_http_linguamate_login_parse.c): the input is a cut
 * size byte, then the body, cut into pieces of that size (each in its own
 * exact-size allocation) and fed to the streaming reader in turn, as
 * lockout.c feeds a request body's buffers; it checks the bytes
 * (byte-order mark, UTF-8, \u surrogates) and its yajl callbacks keep the
 * "email" strings found where a login names its account ({"email"},
 * {"json":{"email"}}, {"0":{"json":{"email"}}}), trimmed and lower-cased,
 * or say why the body cannot be read as the app reads it (superjson meta
 * on the email, too deep, not a string...).
 */

#include "fuzz_ngx.h"

#include "ngx_http_linguamate_login_parse.h"


static ngx_http_linguamate_main_conf_t  fuzz_lmcf;


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    u_char                              c;
    size_t                              j;
    ngx_str_t                          *e;
    ngx_uint_t                          i, unread;
    ngx_chain_t                        *in, *cl;
    ngx_http_request_t                 *r;
    ngx_http_linguamate_login_parse_t  *lp;

    if (size < 1) {
        return 0;
    }

    r = fuzz_ngx_request(&fuzz_lmcf);

    in = fuzz_ngx_chain(r->pool, data + 1, size - 1, data[0] % 64);

    lp = ngx_pcalloc(r->pool, sizeof(ngx_http_linguamate_login_parse_t));
    if (lp == NULL
        || ngx_http_linguamate_login_start(lp, r->pool) != NGX_OK)
    {
        abort();
    }

    for (cl = in; cl; cl = cl->next) {
        ngx_http_linguamate_login_feed(lp, cl->buf->pos, cl->buf->last);
    }

    unread = ngx_http_linguamate_login_end(lp);

    if (unread != lp->unread
        || lp->yajl != NULL
        || lp->n > NGX_HTTP_LINGUAMATE_ACCOUNTS
        || lp->depth > NGX_HTTP_LINGUAMATE_JSON_DEPTH + 1
        || lp->unread >= NGX_HTTP_LINGUAMATE_NUNREAD)
    {
        abort();
    }

    /* an account is trimmed, lower-cased, printable ASCII */

    for (i = 0; i < lp->n; i++) {
        e = &lp->email[i];

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
