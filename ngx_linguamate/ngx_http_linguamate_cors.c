/*
 * Copyright (C) ngx_linguamate developers
 *
 * CORS, as the original backend answered it, with its wildcard bug fixed:
 * CORS_ALLOWED_ORIGINS (exact origins, "*", "*.example.com" on a label
 * boundary), CORS_ALLOW_CREDENTIALS, any origin echoed in development;
 * strict mode keeps the exact entries only.  Preflights are answered in
 * the REWRITE phase, before limits and authentication (a preflight
 * carries no credentials).  A disallowed origin gets no CORS header and
 * a cors_rejected line.
 */


#include "ngx_http_linguamate_module.h"
#include "ngx_http_linguamate_json.h"
#include "ngx_http_linguamate_log.h"
#include "ngx_http_linguamate_cors.h"
#include "ngx_http_linguamate_flags.h"


static ngx_table_elt_t *ngx_http_linguamate_cors_origin(ngx_http_request_t *r);
static ngx_uint_t ngx_http_linguamate_cors_allowed(ngx_http_request_t *r,
    ngx_str_t *origin);
static ngx_int_t ngx_http_linguamate_cors_origin_headers(
    ngx_http_request_t *r, ngx_str_t *origin, ngx_uint_t kind);
static void ngx_http_linguamate_cors_log(ngx_http_request_t *r,
    ngx_str_t *origin);


static ngx_str_t  ngx_http_linguamate_cors_origin_name =
    ngx_string("Origin");
static ngx_str_t  ngx_http_linguamate_cors_acrm_name =
    ngx_string("Access-Control-Request-Method");


#define NGX_HTTP_LINGUAMATE_CORS_METHODS                                     \
    "GET, POST, PUT, PATCH, DELETE, OPTIONS"
#define NGX_HTTP_LINGUAMATE_CORS_HEADERS                                     \
    "Content-Type, Authorization, x-correlation-id, x-session-id, "          \
    "x-request-id, x-client-version, x-device-id"
#define NGX_HTTP_LINGUAMATE_CORS_EXPOSE                                      \
    "x-correlation-id, X-RateLimit-Limit, X-RateLimit-Remaining, "           \
    "X-RateLimit-Reset, RateLimit, RateLimit-Policy, Retry-After"


/* production with no allowed origin is a configuration error */

ngx_int_t
ngx_http_linguamate_cors_check(ngx_conf_t *cf,
    ngx_http_linguamate_main_conf_t *lmcf)
{
    if (lmcf->node_env == NGX_HTTP_LINGUAMATE_ENV_PRODUCTION
        && (lmcf->cors_origins == NULL || lmcf->cors_origins->nelts == 0))
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "linguamate: CORS_ALLOWED_ORIGINS must name the "
                           "app's origins in production");
        return NGX_ERROR;
    }

    return NGX_OK;
}


static ngx_uint_t ngx_http_linguamate_cors_dev_origin(ngx_str_t *o);


static ngx_uint_t
ngx_http_linguamate_cors_allowed(ngx_http_request_t *r, ngx_str_t *origin)
{
    int                               m;
    ngx_str_t                        *o;
    ngx_uint_t                        i, wildcards;
    ngx_http_linguamate_main_conf_t  *lmcf;

    lmcf = ngx_http_get_module_main_conf(r, ngx_http_linguamate_module);

    wildcards = !ngx_http_linguamate_flag(lmcf, NGX_HTTP_LINGUAMATE_F_STRICT);

    /* development echoes any origin (the original), unless strict */

    if (wildcards && lmcf->node_env == NGX_HTTP_LINGUAMATE_ENV_DEVELOPMENT) {
        return 1;
    }

    if (lmcf->cors_origins == NULL) {
        return 0;
    }

    o = lmcf->cors_origins->elts;

    for (i = 0; i < lmcf->cors_origins->nelts; i++) {

        /* strict mode: no wildcard, and no development origin either */

        if (!wildcards && ngx_http_linguamate_cors_dev_origin(&o[i])) {
            continue;
        }

        m = ngx_http_linguamate_origin_match(o[i].data, o[i].len,
                                             origin->data, origin->len,
                                             wildcards);
        if (m) {
            return m;
        }
    }

    return 0;
}


/* exp://..., or http(s):// on localhost, 127.0.0.1 or [::1] */

static ngx_uint_t
ngx_http_linguamate_cors_dev_origin(ngx_str_t *o)
{
    u_char      *p, *last;
    size_t       len;
    ngx_uint_t   i;
    static char *hosts[] = { "localhost", "127.0.0.1", "[::1]", NULL };

    if (o->len >= 6 && ngx_strncasecmp(o->data, (u_char *) "exp://", 6) == 0)
    {
        return 1;
    }

    p = ngx_strlchr(o->data, o->data + o->len, ':');
    if (p == NULL || o->data + o->len - p < 3 || p[1] != '/' || p[2] != '/') {
        p = o->data;           /* scheme-less */

    } else {
        p += 3;
    }

    last = o->data + o->len;

    for (i = 0; hosts[i]; i++) {
        len = ngx_strlen(hosts[i]);

        if ((size_t) (last - p) >= len
            && ngx_strncasecmp(p, (u_char *) hosts[i], len) == 0
            && (p + len == last || p[len] == ':'))
        {
            return 1;
        }
    }

    return 0;
}


static ngx_table_elt_t *
ngx_http_linguamate_cors_origin(ngx_http_request_t *r)
{
    return ngx_http_linguamate_find_header(r,
               &ngx_http_linguamate_cors_origin_name);
}


/* "kind" is 1 for an origin matched by name, 2 for one matched by "*" */

static ngx_int_t
ngx_http_linguamate_cors_origin_headers(ngx_http_request_t *r,
    ngx_str_t *origin, ngx_uint_t kind)
{
    ngx_http_linguamate_main_conf_t  *lmcf;

    lmcf = ngx_http_get_module_main_conf(r, ngx_http_linguamate_module);

    if (kind == 2) {
        /* anyone: "*", which browsers never combine with credentials */
        return ngx_http_linguamate_add_header(r,
                   "Access-Control-Allow-Origin",
                   sizeof("Access-Control-Allow-Origin") - 1,
                   (u_char *) "*", 1);
    }

    if (ngx_http_linguamate_add_header(r, "Access-Control-Allow-Origin",
            sizeof("Access-Control-Allow-Origin") - 1, origin->data,
            origin->len) != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (lmcf->cors_allow_credentials
        && ngx_http_linguamate_add_header(r,
               "Access-Control-Allow-Credentials",
               sizeof("Access-Control-Allow-Credentials") - 1,
               (u_char *) "true", sizeof("true") - 1) != NGX_OK)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_linguamate_cors_vary(ngx_http_request_t *r)
{
    /* the answer depends on Origin, whatever it is: keep caches honest */

    return ngx_http_linguamate_add_header(r, "Vary", sizeof("Vary") - 1,
                                          (u_char *) "Origin",
                                          sizeof("Origin") - 1);
}


/* from the header filter: the CORS headers of an actual request */

ngx_int_t
ngx_http_linguamate_cors_headers(ngx_http_request_t *r)
{
    ngx_uint_t                       kind;
    ngx_table_elt_t                 *h;
    ngx_http_linguamate_ctx_t       *ctx;
    ngx_http_linguamate_loc_conf_t  *llcf;

    llcf = ngx_http_get_module_loc_conf(r, ngx_http_linguamate_module);
    ctx = ngx_http_linguamate_get_ctx(r);

    if (!llcf->cors || ctx == NULL || ctx->cors_done) {
        return NGX_OK;
    }

    if (ngx_http_linguamate_cors_vary(r) != NGX_OK) {
        return NGX_ERROR;
    }

    h = ngx_http_linguamate_cors_origin(r);
    if (h == NULL || h->value.len == 0) {
        return NGX_OK;
    }

    kind = ngx_http_linguamate_cors_allowed(r, &h->value);

    if (kind == 0) {
        ngx_http_linguamate_cors_log(r, &h->value);
        return NGX_OK;
    }

    if (ngx_http_linguamate_cors_origin_headers(r, &h->value, kind)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    return ngx_http_linguamate_add_header(r, "Access-Control-Expose-Headers",
               sizeof("Access-Control-Expose-Headers") - 1,
               (u_char *) NGX_HTTP_LINGUAMATE_CORS_EXPOSE,
               sizeof(NGX_HTTP_LINGUAMATE_CORS_EXPOSE) - 1);
}


/* OPTIONS with Origin and Access-Control-Request-Method: 204, in-process */

ngx_int_t
ngx_http_linguamate_cors_preflight(ngx_http_request_t *r)
{
    ngx_int_t                        rc;
    ngx_uint_t                       kind;
    ngx_table_elt_t                 *origin;
    ngx_http_linguamate_ctx_t       *ctx;
    ngx_http_linguamate_loc_conf_t  *llcf;

    if (r != r->main || r->method != NGX_HTTP_OPTIONS) {
        return NGX_DECLINED;
    }

    llcf = ngx_http_get_module_loc_conf(r, ngx_http_linguamate_module);

    if (!llcf->cors) {
        return NGX_DECLINED;
    }

    origin = ngx_http_linguamate_cors_origin(r);
    if (origin == NULL || origin->value.len == 0) {
        return NGX_DECLINED;
    }

    if (ngx_http_linguamate_find_header(r,
            &ngx_http_linguamate_cors_acrm_name) == NULL)
    {
        return NGX_DECLINED;
    }

    ctx = ngx_http_linguamate_get_ctx(r);
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->cors_done = 1;

    if (ngx_http_linguamate_cors_vary(r) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    kind = ngx_http_linguamate_cors_allowed(r, &origin->value);

    if (kind) {

        if (ngx_http_linguamate_cors_origin_headers(r, &origin->value, kind)
            != NGX_OK
            || ngx_http_linguamate_add_header(r,
                   "Access-Control-Allow-Methods",
                   sizeof("Access-Control-Allow-Methods") - 1,
                   (u_char *) NGX_HTTP_LINGUAMATE_CORS_METHODS,
                   sizeof(NGX_HTTP_LINGUAMATE_CORS_METHODS) - 1) != NGX_OK
            || ngx_http_linguamate_add_header(r,
                   "Access-Control-Allow-Headers",
                   sizeof("Access-Control-Allow-Headers") - 1,
                   (u_char *) NGX_HTTP_LINGUAMATE_CORS_HEADERS,
                   sizeof(NGX_HTTP_LINGUAMATE_CORS_HEADERS) - 1) != NGX_OK
            || ngx_http_linguamate_add_header(r, "Access-Control-Max-Age",
                   sizeof("Access-Control-Max-Age") - 1,
                   (u_char *) "86400", sizeof("86400") - 1) != NGX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

    } else {
        ngx_http_linguamate_cors_log(r, &origin->value);
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    r->headers_out.status = NGX_HTTP_NO_CONTENT;
    r->headers_out.content_length_n = 0;
    r->header_only = 1;

    rc = ngx_http_send_header(r);

    ngx_http_finalize_request(r, rc);

    return NGX_DONE;
}


static void
ngx_http_linguamate_cors_log(ngx_http_request_t *r, ngx_str_t *origin)
{
    u_char     *p, *last, buf[1024];
    ngx_str_t   msg, extra;

    static time_t      logged;
    static ngx_uint_t  suppressed;

    /*
     * preflights come before every limit: at most one line a second per
     * worker, the next one says how many were left out
     */

    if (ngx_time() == logged) {
        suppressed++;
        return;
    }

    logged = ngx_time();

    p = buf;
    last = buf + sizeof(buf);

    p = ngx_slprintf(p, last, ",\"cat\":\"cors\",\"origin\":\"");
    p = ngx_http_linguamate_json_escape(p, origin->data,
                                        ngx_min(origin->len, 64));
    *p++ = '"';

    if (suppressed) {
        p = ngx_slprintf(p, last, ",\"suppressed\":%ui", suppressed);
        suppressed = 0;
    }

    extra.data = buf;
    extra.len = p - buf;

    ngx_str_set(&msg, "Origin not allowed: no CORS headers");

    ngx_http_linguamate_log_request(r, NGX_HTTP_LINGUAMATE_LOG_WARN,
                                  "cors_rejected", &msg, &extra);
}
