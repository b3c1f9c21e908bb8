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


#include <yajl/yajl_parse.h>

#include "ngx_http_linguamate_module.h"
#include "ngx_http_linguamate_json.h"
#include "ngx_http_linguamate_lockout.h"
#include "ngx_http_linguamate_flags.h"
#include "ngx_http_linguamate_trpc.h"


#define NGX_HTTP_LINGUAMATE_TRPC_SCAN    (1024 * 1024)


/* the state of the scan of a 207 answer */
typedef struct {
    yajl_handle                 yajl;
    ngx_uint_t                  depth;
    ngx_uint_t                  index;      /* element of the array */
    ngx_uint_t                  bytes;
    uint64_t                    failed;     /* bit per element */
    uint64_t                    succeeded;
    unsigned                    in_error:1;
    unsigned                    key_status:1;
    unsigned                    key_code:1;
    unsigned                    broken:1;
} ngx_http_linguamate_trpc_scan_t;


static void ngx_http_linguamate_trpc_scan_cleanup(void *data);
static int ngx_http_linguamate_trpc_start_map(void *data);
static int ngx_http_linguamate_trpc_start_array(void *data);
static int ngx_http_linguamate_trpc_end(void *data);
static int ngx_http_linguamate_trpc_key(void *data, const unsigned char *k,
    size_t len);
static int ngx_http_linguamate_trpc_string(void *data,
    const unsigned char *s, size_t len);
static int ngx_http_linguamate_trpc_number(void *data, const char *n,
    size_t len);
static int ngx_http_linguamate_trpc_scalar(void *data);
static int ngx_http_linguamate_trpc_bool(void *data, int b);
static void ngx_http_linguamate_trpc_fail(
    ngx_http_linguamate_trpc_scan_t *sc);


static yajl_callbacks  ngx_http_linguamate_trpc_callbacks = {
    ngx_http_linguamate_trpc_scalar,
    ngx_http_linguamate_trpc_bool,
    NULL,
    NULL,
    ngx_http_linguamate_trpc_number,
    ngx_http_linguamate_trpc_string,
    ngx_http_linguamate_trpc_start_map,
    ngx_http_linguamate_trpc_key,
    ngx_http_linguamate_trpc_end,
    ngx_http_linguamate_trpc_start_array,
    ngx_http_linguamate_trpc_end
};


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
    size_t                            size;
    uint64_t                          f, s;
    ngx_uint_t                        i, last;
    ngx_chain_t                      *cl;
    ngx_pool_cleanup_t               *cln;
    ngx_http_linguamate_trpc_scan_t  *sc;

    sc = ctx->trpc_scan;

    if (sc == NULL) {
        sc = ngx_pcalloc(r->pool, sizeof(ngx_http_linguamate_trpc_scan_t));
        if (sc == NULL) {
            return NGX_ERROR;
        }

        cln = ngx_pool_cleanup_add(r->pool, 0);
        if (cln == NULL) {
            return NGX_ERROR;
        }

        sc->yajl = yajl_alloc(&ngx_http_linguamate_trpc_callbacks, NULL, sc);
        if (sc->yajl == NULL) {
            return NGX_ERROR;
        }

        cln->handler = ngx_http_linguamate_trpc_scan_cleanup;
        cln->data = sc;

        ctx->trpc_scan = sc;
    }

    last = 0;

    for (cl = in; cl; cl = cl->next) {
        if (cl->buf->last_buf) {
            last = 1;
        }

        if (sc->broken) {
            continue;
        }

        if (cl->buf->in_file || !ngx_buf_in_memory(cl->buf)) {
            if (ngx_buf_size(cl->buf)) {
                sc->broken = 1;
            }

            continue;
        }

        size = cl->buf->last - cl->buf->pos;
        sc->bytes += size;

        if (sc->bytes > NGX_HTTP_LINGUAMATE_TRPC_SCAN
            || (size && yajl_parse(sc->yajl, cl->buf->pos, size)
                        != yajl_status_ok))
        {
            sc->broken = 1;
        }
    }

    if (!last) {
        return 0;
    }

    if (sc->broken || yajl_complete_parse(sc->yajl) != yajl_status_ok) {
        /* not read: every auth procedure counts as failed */
        *failed = ctx->trpc_auth_n;
        *succeeded = 0;
        return 1;
    }

    f = sc->failed & ctx->trpc_auth;
    s = sc->succeeded & ctx->trpc_auth;
    *failed = 0;
    *succeeded = 0;

    for (i = 0; i < NGX_HTTP_LINGUAMATE_TRPC_MAX; i++) {
        *failed += (f >> i) & 1;
        *succeeded += (s >> i) & 1;
    }

    return 1;
}


static void
ngx_http_linguamate_trpc_scan_cleanup(void *data)
{
    ngx_http_linguamate_trpc_scan_t  *sc = data;

    if (sc->yajl) {
        yajl_free(sc->yajl);
        sc->yajl = NULL;
    }
}


/*
 * depth 1: the array; 2: an element ({"result":...} or {"error":...});
 * an element is an error when its key at depth 2 is "error"
 */

static int
ngx_http_linguamate_trpc_start_map(void *data)
{
    ngx_http_linguamate_trpc_scan_t  *sc = data;

    sc->depth++;
    sc->key_status = 0;
    sc->key_code = 0;

    return sc->depth < 64;
}


static int
ngx_http_linguamate_trpc_start_array(void *data)
{
    ngx_http_linguamate_trpc_scan_t  *sc = data;

    sc->depth++;
    sc->key_status = 0;
    sc->key_code = 0;

    return sc->depth < 64;
}


static int
ngx_http_linguamate_trpc_end(void *data)
{
    ngx_http_linguamate_trpc_scan_t  *sc = data;

    if (sc->depth == 2) {
        /* an element is over */

        if (!sc->in_error && sc->index < NGX_HTTP_LINGUAMATE_TRPC_MAX) {
            sc->succeeded |= (uint64_t) 1 << sc->index;
        }

        sc->in_error = 0;
        sc->index++;
    }

    if (sc->depth) {
        sc->depth--;
    }

    sc->key_status = 0;
    sc->key_code = 0;

    return 1;
}


static int
ngx_http_linguamate_trpc_key(void *data, const unsigned char *k, size_t len)
{
    ngx_http_linguamate_trpc_scan_t  *sc = data;

    sc->key_status = 0;
    sc->key_code = 0;

    if (sc->depth == 2 && len == 5 && ngx_strncmp(k, "error", 5) == 0) {
        sc->in_error = 1;
        return 1;
    }

    if (!sc->in_error) {
        return 1;
    }

    if (len == 10 && ngx_strncmp(k, "httpStatus", 10) == 0) {
        sc->key_status = 1;

    } else if (len == 4 && ngx_strncmp(k, "code", 4) == 0) {
        sc->key_code = 1;
    }

    return 1;
}


static void
ngx_http_linguamate_trpc_fail(ngx_http_linguamate_trpc_scan_t *sc)
{
    if (sc->index < NGX_HTTP_LINGUAMATE_TRPC_MAX) {
        sc->failed |= (uint64_t) 1 << sc->index;
    }
}


static int
ngx_http_linguamate_trpc_string(void *data, const unsigned char *s,
    size_t len)
{
    ngx_http_linguamate_trpc_scan_t  *sc = data;

    if (sc->in_error && sc->key_code
        && ((len == 12 && ngx_strncmp(s, "UNAUTHORIZED", 12) == 0)
            || (len == 11 && ngx_strncmp(s, "BAD_REQUEST", 11) == 0)))
    {
        ngx_http_linguamate_trpc_fail(sc);
    }

    sc->key_status = 0;
    sc->key_code = 0;

    return 1;
}


static int
ngx_http_linguamate_trpc_number(void *data, const char *n, size_t len)
{
    ngx_http_linguamate_trpc_scan_t  *sc = data;

    if (sc->in_error && sc->key_status && len == 3
        && (ngx_strncmp(n, "400", 3) == 0 || ngx_strncmp(n, "401", 3) == 0))
    {
        ngx_http_linguamate_trpc_fail(sc);
    }

    sc->key_status = 0;
    sc->key_code = 0;

    return 1;
}


static int
ngx_http_linguamate_trpc_scalar(void *data)
{
    ngx_http_linguamate_trpc_scan_t  *sc = data;

    sc->key_status = 0;
    sc->key_code = 0;

    return 1;
}


static int
ngx_http_linguamate_trpc_bool(void *data, int b)
{
    return ngx_http_linguamate_trpc_scalar(data);
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
