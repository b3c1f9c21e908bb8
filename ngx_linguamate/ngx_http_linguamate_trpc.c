/*
 * Copyright (C) ngx_linguamate developers
 *
 * The app's tRPC procedures at the edge (/api/trpc/<router>.<procedure>
 * [,...][?batch=1]): the procedures of a call are read from its path, so
 * that the login limit and the lockout count once per auth procedure,
 * features map onto procedures (chat.* is chat, analytics.* analytics),
 * and every error the edge produces under the prefix has the shape a tRPC
 * v11 server with the superjson transformer gives, one element per
 * procedure for a batch.  A 207 batch answer of the app is scanned for
 * the auth procedures' UNAUTHORIZED / BAD_REQUEST errors.
 */


#include "ngx_http_linguamate_module.h"
#include "ngx_http_linguamate_json.h"
#include "ngx_http_linguamate_lockout.h"
#include "ngx_http_linguamate_flags.h"
#include "ngx_http_linguamate_trpc.h"
#include "ngx_http_linguamate_trpc_parse.h"


#if (NGX_HTTP_LINGUAMATE_TRPC_MAX != NGX_HTTP_LINGUAMATE_TRPC_SCAN_BITS)
#error "the scan has one bit per procedure of a batch"
#endif


/*
 * POST_READ: a call under the prefix is read before anything can refuse
 * it (a body over client_max_body_size is refused before any location
 * handler runs), so that its error is tRPC-shaped whatever refuses it.
 * A path that is not canonical is refused here, before any location is
 * chosen: it never reaches the app, and nginx never redirects it.
 */

ngx_int_t
ngx_http_linguamate_trpc_refuse(ngx_http_request_t *r)
{
    ngx_http_linguamate_ctx_t  *ctx;

    if (r != r->main) {
        return NGX_DECLINED;
    }

    ctx = ngx_http_linguamate_get_ctx(r);
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (!ctx->trpc_bad) {
        return NGX_DECLINED;
    }

    return ngx_http_linguamate_phase_error(r, NGX_HTTP_NOT_FOUND, "NOT_FOUND",
               "No procedure found on this path: a call is the tRPC "
               "prefix, then <router>.<procedure>, with \",\" between the "
               "procedures of a ?batch=1 call, as the tRPC client sends it",
               NULL);
}


/*
 * LOG phase: a 207 whose elements could not be read to the end (the
 * client left, the answer went to a file or was too large) counts every
 * auth procedure of the call as failed
 */

ngx_int_t
ngx_http_linguamate_trpc_log(ngx_http_request_t *r)
{
    ngx_http_linguamate_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_linguamate_module);

    if (ctx && ctx->trpc_scanning) {
        ctx->trpc_scanning = 0;
        ngx_http_linguamate_lockout_scanned(r, ctx, ctx->trpc_auth_n, 0);
    }

    return NGX_OK;
}


/*
 * REWRITE phase, between maintenance and the feature: a batch too
 * large, no app configured ("linguamate_trpc on" without
 * APP_UPSTREAM_URL), or a procedure of a feature that is off.
 * NGX_DECLINED: go on.
 */

ngx_int_t
ngx_http_linguamate_trpc_gate(ngx_http_request_t *r)
{
    u_char                           *p;
    ngx_str_t                         extra, *name;
    ngx_http_linguamate_ctx_t        *ctx;
    ngx_http_linguamate_loc_conf_t   *llcf;
    ngx_http_linguamate_main_conf_t  *lmcf;

    if (r != r->main || r->internal) {
        return NGX_DECLINED;
    }

    llcf = ngx_http_get_module_loc_conf(r, ngx_http_linguamate_module);

    if (!llcf->enable) {
        return NGX_DECLINED;
    }

    ctx = ngx_http_linguamate_get_ctx(r);
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (!ctx->trpc) {
        return NGX_DECLINED;
    }

    lmcf = ngx_http_get_module_main_conf(r, ngx_http_linguamate_module);

    if (ctx->trpc_too_many) {
        return ngx_http_linguamate_phase_error(r, NGX_HTTP_BAD_REQUEST,
                   "VALIDATION_ERROR", "A batch may hold at most 64 calls",
                   NULL);
    }

    if (llcf->trpc == 1 && lmcf->app_upstream_url.len == 0) {
        /* tRPC's own message, for the first procedure */

        name = ctx->trpc_n ? &ctx->trpc_procs[0] : &lmcf->trpc_prefix;

        p = ngx_pnalloc(r->pool, sizeof("No procedure found on path \"\"")
                                 + name->len);
        if (p == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        ngx_sprintf(p, "No procedure found on path \"%V\"%Z", name);

        return ngx_http_linguamate_phase_error(r, NGX_HTTP_NOT_FOUND,
                                               "NOT_FOUND", (char *) p, NULL);
    }

    if ((ctx->trpc_chat
         && !ngx_http_linguamate_flag(lmcf, NGX_HTTP_LINGUAMATE_F_CHAT))
        || (ctx->trpc_analytics
            && !ngx_http_linguamate_flag(lmcf,
                                         NGX_HTTP_LINGUAMATE_F_ANALYTICS)))
    {
        if (ctx->trpc_chat
            && !ngx_http_linguamate_flag(lmcf, NGX_HTTP_LINGUAMATE_F_CHAT))
        {
            ngx_str_set(&extra, ",\"feature\":\"chat\"");

        } else {
            ngx_str_set(&extra, ",\"feature\":\"analytics\"");
        }

        return ngx_http_linguamate_phase_error(r,
                   NGX_HTTP_SERVICE_UNAVAILABLE, "FEATURE_DISABLED",
                   "This feature is switched off", &extra);
    }

    return NGX_DECLINED;
}


/*
 * Body filter of a 207 answer to a batch with auth procedures: find which
 * elements are errors with httpStatus 400/401 (or code UNAUTHORIZED /
 * BAD_REQUEST) and which are results.  Buffers in files and answers over
 * 1 MB are not scanned.  Returns 1 once the answer is complete and was
 * scanned, with the counts of failed and succeeded auth procedures.
 */

ngx_int_t
ngx_http_linguamate_trpc_scan(ngx_http_request_t *r,
    ngx_http_linguamate_ctx_t *ctx, ngx_chain_t *in, ngx_uint_t *failed,
    ngx_uint_t *succeeded)
{
    ngx_uint_t                        last;
    ngx_chain_t                      *cl;
    ngx_http_linguamate_trpc_scan_t  *sc;

    sc = ctx->trpc_scan;

    if (sc == NULL) {
        sc = ngx_http_linguamate_trpc_scan_create(r->pool);
        if (sc == NULL) {
            return NGX_ERROR;
        }

        ctx->trpc_scan = sc;
    }

    last = 0;

    for (cl = in; cl; cl = cl->next) {
        if (cl->buf->last_buf) {
            last = 1;
        }

        if (cl->buf->in_file || !ngx_buf_in_memory(cl->buf)) {
            if (ngx_buf_size(cl->buf)) {
                ngx_http_linguamate_trpc_scan_break(sc);
            }

            continue;
        }

        ngx_http_linguamate_trpc_scan_feed(sc, cl->buf->pos,
                                           cl->buf->last - cl->buf->pos);
    }

    if (!last) {
        return 0;
    }

    ngx_http_linguamate_trpc_scan_finish(sc, ctx->trpc_auth,
                                         ctx->trpc_auth_n, failed,
                                         succeeded);

    return 1;
}


/* $linguamate_app_upstream: APP_UPSTREAM_URL, for proxy_pass */

ngx_int_t
ngx_http_linguamate_app_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_http_linguamate_main_conf_t  *lmcf;

    lmcf = ngx_http_get_module_main_conf(r, ngx_http_linguamate_module);

    if (lmcf->app_upstream_url.len == 0) {
        v->not_found = 1;
        return NGX_OK;
    }

    v->data = lmcf->app_upstream_url.data;
    v->len = lmcf->app_upstream_url.len;
    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;

    return NGX_OK;
}
