/*
 * Copyright (C) ngx_linguamate developers
 *
 * libFuzzer harness for tRPC calls (ngx_http_linguamate_call.c and the
 * parse layer's ngx_http_linguamate_trpc_parse.c, both linked): the
 * input is a cut size byte, then "URI[?ARGS]\nANSWER".  trpc_parse()
 * checks the raw URI under /api/trpc/ against the canonical grammar and
 * splits it into procedures (batch as URLSearchParams reads it, auth,
 * chat, analytics): what it accepts must be segments of [A-Za-z0-9_-]
 * joined by '.' and ','; the answer is then fed in pieces of the cut size
 * to the trpc_scan_*() scanner, the streaming yajl scan of a 207 batch
 * answer that counts the auth procedures that failed and succeeded: no
 * more outcomes than auth procedures, and the same counts as a scan fed
 * the whole answer at once.
 */

#include "fuzz_ngx.h"

#include "ngx_http_linguamate_trpc_parse.h"


static ngx_http_linguamate_main_conf_t  fuzz_lmcf;


/* [A-Za-z0-9_-]+ joined by '.' */

static int
fuzz_trpc_canonical(ngx_str_t *p)
{
    size_t  i, seg;

    seg = 0;

    for (i = 0; i < p->len; i++) {
        if ((p->data[i] >= 'a' && p->data[i] <= 'z')
            || (p->data[i] >= 'A' && p->data[i] <= 'Z')
            || (p->data[i] >= '0' && p->data[i] <= '9')
            || p->data[i] == '_' || p->data[i] == '-')
        {
            seg++;

        } else if (p->data[i] == '.' && seg) {
            seg = 0;

        } else {
            return 0;
        }
    }

    return seg > 0;
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    u_char                     *s, *nl, *q;
    size_t                      len;
    ngx_uint_t                        failed, succeeded, f1, s1, i;
    ngx_chain_t                      *in, *cl;
    ngx_http_request_t               *r;
    ngx_http_linguamate_ctx_t        *ctx;
    ngx_http_linguamate_trpc_scan_t  *sc, *one;

    if (size < 1) {
        return 0;
    }

    ngx_str_set(&fuzz_lmcf.trpc_prefix, "/api/trpc/");

    r = fuzz_ngx_request(&fuzz_lmcf);
    r->main = r;

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_linguamate_ctx_t));
    if (ctx == NULL) {
        abort();
    }

    len = size - 1;
    nl = memchr(data + 1, '\n', len);
    if (nl != NULL) {
        len = nl - (data + 1);
    }

    /* the URI and its arguments in exact-size pieces of the pool */

    s = ngx_pnalloc(r->pool, len ? len : 1);
    if (s == NULL) {
        abort();
    }

    ngx_memcpy(s, data + 1, len);
    q = ngx_strlchr(s, s + len, '?');

    r->unparsed_uri.data = s;
    r->unparsed_uri.len = len;
    r->uri.data = s;
    r->uri.len = q ? (size_t) (q - s) : len;

    if (q) {
        r->args.data = q + 1;
        r->args.len = s + len - q - 1;
    }

    ngx_http_linguamate_trpc_parse(r, ctx);

    if (ctx->trpc) {
        if (ctx->trpc_n > NGX_HTTP_LINGUAMATE_TRPC_MAX
            || ctx->trpc_auth_n > ctx->trpc_n)
        {
            abort();
        }

        if (ctx->trpc_bad && (ctx->trpc_n || ctx->trpc_batch)) {
            abort();    /* a refused path names no procedure */
        }

        for (i = 0; i < ctx->trpc_n; i++) {
            if (ctx->trpc_procs[i].data < s
                || ctx->trpc_procs[i].data + ctx->trpc_procs[i].len
                   > s + len
                || !fuzz_trpc_canonical(&ctx->trpc_procs[i]))
            {
                abort();
            }
        }
    }

    if (nl != NULL) {
        in = fuzz_ngx_chain(r->pool, nl + 1, data + size - nl - 1,
                            data[0] % 64);

        sc = ngx_http_linguamate_trpc_scan_create(r->pool);
        one = ngx_http_linguamate_trpc_scan_create(r->pool);
        if (sc == NULL || one == NULL) {
            abort();
        }

        for (cl = in; cl; cl = cl->next) {
            ngx_http_linguamate_trpc_scan_feed(sc, cl->buf->pos,
                                           cl->buf->last - cl->buf->pos);
        }

        ngx_http_linguamate_trpc_scan_feed(one, nl + 1, data + size - nl - 1);

        ngx_http_linguamate_trpc_scan_finish(sc, ctx->trpc_auth,
                                             ctx->trpc_auth_n, &failed,
                                             &succeeded);
        ngx_http_linguamate_trpc_scan_finish(one, ctx->trpc_auth,
                                             ctx->trpc_auth_n, &f1, &s1);

        if (failed + succeeded > ctx->trpc_auth_n) {
            abort();    /* more outcomes than auth procedures */
        }

        if (failed != f1 || succeeded != s1) {
            abort();    /* the pieces change what the scan finds */
        }
    }

    fuzz_ngx_request_free(r);

    return 0;
}
