/*
 * Copyright (C) ngx_linguamate developers
 *
 * Per-request state: the correlation id (taken from a valid incoming
 * x-correlation-id or made as a UUID v4 from the kernel's CSPRNG), the
 * session id, the response headers every answer carries, and variables.
 */


#include <sys/random.h>

#include "ngx_http_linguamate_module.h"


#define NGX_HTTP_LINGUAMATE_RANDOM_POOL  4096


static void ngx_http_linguamate_ctx_cleanup(void *data);
static ngx_int_t ngx_http_linguamate_random(u_char *buf, size_t len);


/*
 * A per-worker buffer of random bytes: one getrandom() call serves 256
 * UUIDs.  It starts empty in every worker (see init_process), so no two
 * processes ever share bytes.
 */
static u_char      ngx_http_linguamate_pool[NGX_HTTP_LINGUAMATE_RANDOM_POOL];
static ngx_uint_t  ngx_http_linguamate_pool_pos =
    NGX_HTTP_LINGUAMATE_RANDOM_POOL;


static ngx_str_t  ngx_http_linguamate_corr_header =
    ngx_string("x-correlation-id");
static ngx_str_t  ngx_http_linguamate_session_header =
    ngx_string("x-session-id");


static ngx_keyval_t  ngx_http_linguamate_security_headers[] = {
    { ngx_string("X-Content-Type-Options"), ngx_string("nosniff") },
    { ngx_string("X-Frame-Options"), ngx_string("DENY") },
    { ngx_string("X-XSS-Protection"), ngx_string("1; mode=block") },
    { ngx_string("Referrer-Policy"),
      ngx_string("strict-origin-when-cross-origin") },
    { ngx_string("Permissions-Policy"),
      ngx_string("geolocation=(), microphone=(), camera=()") },
    { ngx_string("Strict-Transport-Security"),
      ngx_string("max-age=31536000; includeSubDomains") },
    { ngx_null_string, ngx_null_string }
};

#define NGX_HTTP_LINGUAMATE_HSTS_INDEX  5


static void
ngx_http_linguamate_ctx_cleanup(void *data)
{
    /* nothing to free: the cleanup only lets the ctx be found again */
}


/*
 * The ctx survives internal redirects (error_page, named locations),
 * which clear r->ctx: it is found again through its pool cleanup, the
 * way the realip module keeps its state.
 */

ngx_http_linguamate_ctx_t *
ngx_http_linguamate_find_ctx(ngx_http_request_t *r)
{
    ngx_pool_cleanup_t         *cln;
    ngx_http_linguamate_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r->main, ngx_http_linguamate_module);
    if (ctx) {
        return ctx;
    }

    for (cln = r->main->pool->cleanup; cln; cln = cln->next) {
        if (cln->handler == ngx_http_linguamate_ctx_cleanup) {
            ctx = cln->data;
            ngx_http_set_ctx(r->main, ctx, ngx_http_linguamate_module);
            return ctx;
        }
    }

    return NULL;
}


ngx_http_linguamate_ctx_t *
ngx_http_linguamate_get_ctx(ngx_http_request_t *r)
{
    u_char                     rnd[16];
    ngx_table_elt_t           *h;
    ngx_pool_cleanup_t        *cln;
    ngx_http_linguamate_ctx_t *ctx;

    ctx = ngx_http_linguamate_find_ctx(r);
    if (ctx) {
        return ctx;
    }

    cln = ngx_pool_cleanup_add(r->main->pool,
                               sizeof(ngx_http_linguamate_ctx_t));
    if (cln == NULL) {
        return NULL;
    }

    ctx = cln->data;
    ngx_memzero(ctx, sizeof(ngx_http_linguamate_ctx_t));
    cln->handler = ngx_http_linguamate_ctx_cleanup;

    h = ngx_http_linguamate_find_header(r->main,
                                        &ngx_http_linguamate_corr_header);

    if (h && ngx_http_linguamate_corr_id_valid(h->value.data,
                                               h->value.len))
    {
        ctx->corr_id = h->value;

    } else {
        if (ngx_http_linguamate_random(rnd, sizeof(rnd)) != NGX_OK) {
            return NULL;
        }

        ngx_http_linguamate_uuid4(rnd, ctx->corr_buf);
        ctx->corr_id.data = ctx->corr_buf;
        ctx->corr_id.len = NGX_HTTP_LINGUAMATE_UUID_LEN;
    }

    h = ngx_http_linguamate_find_header(r->main,
                                        &ngx_http_linguamate_session_header);

    if (h && ngx_http_linguamate_corr_id_valid(h->value.data,
                                               h->value.len))
    {
        ctx->session_id = h->value;
    }

    ngx_http_set_ctx(r->main, ctx, ngx_http_linguamate_module);

    return ctx;
}


void
ngx_http_linguamate_random_reset(void)
{
    ngx_http_linguamate_pool_pos = NGX_HTTP_LINGUAMATE_RANDOM_POOL;
}


static ngx_int_t
ngx_http_linguamate_random(u_char *buf, size_t len)
{
    ssize_t  n;
    size_t   got;

    if (ngx_http_linguamate_pool_pos + len > NGX_HTTP_LINGUAMATE_RANDOM_POOL)
    {
        for (got = 0; got < NGX_HTTP_LINGUAMATE_RANDOM_POOL; got += n) {
            n = getrandom(ngx_http_linguamate_pool + got,
                          NGX_HTTP_LINGUAMATE_RANDOM_POOL - got, 0);

            if (n <= 0) {
                if (n == -1 && ngx_errno == NGX_EINTR) {
                    n = 0;
                    continue;
                }

                ngx_log_error(NGX_LOG_ALERT, ngx_cycle->log, ngx_errno,
                              "linguamate: getrandom() failed");
                return NGX_ERROR;
            }
        }

        ngx_http_linguamate_pool_pos = 0;
    }

    ngx_memcpy(buf, ngx_http_linguamate_pool + ngx_http_linguamate_pool_pos,
               len);

    /* never hand out the same bytes twice */

    ngx_memzero(ngx_http_linguamate_pool + ngx_http_linguamate_pool_pos, len);
    ngx_http_linguamate_pool_pos += len;

    return NGX_OK;
}


/* a request header by name (case-insensitive), the first one */

ngx_table_elt_t *
ngx_http_linguamate_find_header(ngx_http_request_t *r, ngx_str_t *name)
{
    return ngx_http_linguamate_list_header(&r->headers_in.headers, name);
}


/* a header of a list (a removed output header has hash 0: skipped) */

ngx_table_elt_t *
ngx_http_linguamate_list_header(ngx_list_t *list, ngx_str_t *name)
{
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    part = &list->part;
    h = part->elts;

    for (i = 0; /* void */ ; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                return NULL;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].hash && h[i].key.len == name->len
            && ngx_strncasecmp(h[i].key.data, name->data, name->len) == 0)
        {
            return &h[i];
        }
    }
}


/*
 * The response headers every answer of a linguamate location carries,
 * first half: scan what an upstream set.  Our x-correlation-id is the
 * truth (an upstream's copy is dropped); CORS is answered by the edge
 * (an upstream's Access-Control-* are dropped: two ACAO headers break
 * browsers); an upstream's own security headers are kept, not doubled.
 * Returns the bit mask of the security headers already present.
 */

ngx_uint_t
ngx_http_linguamate_headers_scan(ngx_http_request_t *r,
    ngx_http_linguamate_ctx_t *ctx, ngx_http_linguamate_loc_conf_t *llcf)
{
    ngx_uint_t        i, j, present;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    present = 0;
    part = &r->headers_out.headers.part;
    h = part->elts;

    for (i = 0; /* void */ ; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                break;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].hash == 0) {
            continue;
        }

        if (h[i].key.len == ngx_http_linguamate_corr_header.len
            && ngx_strncasecmp(h[i].key.data,
                               ngx_http_linguamate_corr_header.data,
                               h[i].key.len) == 0)
        {
            /* ours is the truth; drop an upstream's copy */
            h[i].hash = 0;
            continue;
        }

        if (llcf->cors && !ctx->cors_done
            && h[i].key.len > sizeof("Access-Control-") - 1
            && ngx_strncasecmp(h[i].key.data, (u_char *) "Access-Control-",
                               sizeof("Access-Control-") - 1) == 0)
        {
            /*
             * CORS is answered here (a preflight's own are already set):
             * two ACAO headers break browsers
             */
            h[i].hash = 0;
            continue;
        }

        for (j = 0; ngx_http_linguamate_security_headers[j].key.len; j++) {
            if (h[i].key.len == ngx_http_linguamate_security_headers[j].key.len
                && ngx_strncasecmp(h[i].key.data,
                                   ngx_http_linguamate_security_headers[j]
                                       .key.data, h[i].key.len) == 0)
            {
                present |= (ngx_uint_t) 1 << j;
            }
        }
    }

    return present;
}


/*
 * Second half, after the features' own headers: x-correlation-id, then
 * the security headers not present (HSTS in production only).
 */

ngx_int_t
ngx_http_linguamate_headers_add(ngx_http_request_t *r,
    ngx_http_linguamate_ctx_t *ctx, ngx_uint_t present)
{
    ngx_uint_t                        j, n;
    ngx_table_elt_t                  *h;
    ngx_http_linguamate_main_conf_t  *lmcf;

    lmcf = ngx_http_get_module_main_conf(r, ngx_http_linguamate_module);

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
    h->lowcase_key = NULL;
    h->key = ngx_http_linguamate_corr_header;
    h->value = ctx->corr_id;

    n = (lmcf->node_env == NGX_HTTP_LINGUAMATE_ENV_PRODUCTION)
        ? NGX_HTTP_LINGUAMATE_HSTS_INDEX + 1 : NGX_HTTP_LINGUAMATE_HSTS_INDEX;

    for (j = 0; j < n; j++) {
        if (present & ((ngx_uint_t) 1 << j)) {
            continue;
        }

        h = ngx_list_push(&r->headers_out.headers);
        if (h == NULL) {
            return NGX_ERROR;
        }

        h->hash = 1;
        h->lowcase_key = NULL;
        h->key = ngx_http_linguamate_security_headers[j].key;
        h->value = ngx_http_linguamate_security_headers[j].value;
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_linguamate_corr_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_http_linguamate_ctx_t  *ctx;

    ctx = ngx_http_linguamate_get_ctx(r);
    if (ctx == NULL) {
        return NGX_ERROR;
    }

    v->data = ctx->corr_id.data;
    v->len = ctx->corr_id.len;
    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;

    return NGX_OK;
}


ngx_int_t
ngx_http_linguamate_env_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_http_linguamate_main_conf_t  *lmcf;

    lmcf = ngx_http_get_module_main_conf(r, ngx_http_linguamate_module);

    v->data = lmcf->env_name.data;
    v->len = lmcf->env_name.len;
    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;

    return NGX_OK;
}


ngx_int_t
ngx_http_linguamate_add_header(ngx_http_request_t *r, const char *name,
    size_t name_len, u_char *value, size_t len)
{
    ngx_table_elt_t  *h;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
    h->lowcase_key = NULL;
    h->key.data = (u_char *) name;
    h->key.len = name_len;
    h->value.data = value;
    h->value.len = len;

    return NGX_OK;
}


ngx_int_t
ngx_http_linguamate_client_allowlisted(ngx_http_request_t *r,
    ngx_array_t *cidrs)
{
    if (cidrs == NULL || cidrs->nelts == 0) {
        return 0;
    }

    return ngx_cidr_match(r->connection->sockaddr, cidrs) == NGX_OK;
}


/* the route name of a location: linguamate_route, else its location name */

void
ngx_http_linguamate_route(ngx_http_request_t *r, ngx_str_t *route)
{
    ngx_http_core_loc_conf_t        *clcf;
    ngx_http_linguamate_loc_conf_t  *llcf;

    llcf = ngx_http_get_module_loc_conf(r, ngx_http_linguamate_module);

    if (llcf->route.len) {
        *route = llcf->route;
        return;
    }

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);
    *route = clcf->name;
}
