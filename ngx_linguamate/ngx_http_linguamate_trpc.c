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


#define NGX_HTTP_LINGUAMATE_TRPC_MAX     64
#define NGX_HTTP_LINGUAMATE_TRPC_SCAN    (1024 * 1024)


typedef struct {
    ngx_uint_t                  status;
    const char                 *code;
    ngx_int_t                   rpc;
} ngx_http_linguamate_trpc_code_t;


/* tRPC's codes (TRPC_ERROR_CODES_BY_KEY) by HTTP status */
static ngx_http_linguamate_trpc_code_t  ngx_http_linguamate_trpc_codes[] = {
    { 400, "BAD_REQUEST", -32600 },
    { 401, "UNAUTHORIZED", -32001 },
    { 402, "PAYMENT_REQUIRED", -32002 },
    { 403, "FORBIDDEN", -32003 },
    { 404, "NOT_FOUND", -32004 },
    { 405, "METHOD_NOT_SUPPORTED", -32005 },
    { 408, "TIMEOUT", -32008 },
    { 409, "CONFLICT", -32009 },
    { 412, "PRECONDITION_FAILED", -32012 },
    { 413, "PAYLOAD_TOO_LARGE", -32013 },
    { 415, "UNSUPPORTED_MEDIA_TYPE", -32015 },
    { 422, "UNPROCESSABLE_CONTENT", -32022 },
    { 429, "TOO_MANY_REQUESTS", -32029 },
    { 499, "CLIENT_CLOSED_REQUEST", -32099 },
    { 500, "INTERNAL_SERVER_ERROR", -32603 },
    { 501, "NOT_IMPLEMENTED", -32603 },
    { 502, "BAD_GATEWAY", -32603 },
    { 503, "SERVICE_UNAVAILABLE", -32603 },
    { 504, "GATEWAY_TIMEOUT", -32603 },
    { 0, NULL, 0 }
};


/* the auth procedures under the login limit and the lockout */
static ngx_str_t  ngx_http_linguamate_trpc_auth[] = {
    ngx_string("login"), ngx_string("signin"), ngx_string("signup"),
    ngx_string("refreshToken"), ngx_string("requestPasswordReset"),
    ngx_string("resetPassword"), ngx_string("verifyEmail"),
    ngx_null_string
};


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


static ngx_int_t ngx_http_linguamate_trpc_post_read(ngx_http_request_t *r);
static ngx_uint_t ngx_http_linguamate_trpc_under(ngx_http_request_t *r,
    ngx_http_linguamate_main_conf_t *lmcf);
static ngx_uint_t ngx_http_linguamate_form_equal(u_char *p, u_char *last,
    u_char *s, size_t len);
static u_char ngx_http_linguamate_form_byte(u_char **p, u_char *last);
static ngx_uint_t ngx_http_linguamate_trpc_batch(ngx_http_request_t *r);
static ngx_int_t ngx_http_linguamate_trpc_log(ngx_http_request_t *r);
static ngx_uint_t ngx_http_linguamate_trpc_is_auth(ngx_str_t *proc);
static ngx_http_linguamate_trpc_code_t *ngx_http_linguamate_trpc_code(
    ngx_uint_t status);
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


ngx_int_t
ngx_http_linguamate_trpc_init(ngx_conf_t *cf)
{
    if (ngx_http_linguamate_add_handler(cf, NGX_HTTP_POST_READ_PHASE,
                                        ngx_http_linguamate_trpc_post_read)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    return ngx_http_linguamate_add_handler(cf, NGX_HTTP_LOG_PHASE,
                                           ngx_http_linguamate_trpc_log);
}


/*
 * POST_READ: a call under the prefix is read before anything can refuse
 * it (a body over client_max_body_size is refused before any location
 * handler runs), so that its error is tRPC-shaped whatever refuses it.
 * A path that is not canonical is refused here, before any location is
 * chosen: it never reaches the app, and nginx never redirects it.
 */

static ngx_int_t
ngx_http_linguamate_trpc_post_read(ngx_http_request_t *r)
{
    ngx_http_linguamate_ctx_t        *ctx;
    ngx_http_linguamate_main_conf_t  *lmcf;

    lmcf = ngx_http_get_module_main_conf(r, ngx_http_linguamate_module);

    if (r != r->main || !ngx_http_linguamate_trpc_under(r, lmcf)) {
        return NGX_DECLINED;
    }

    ctx = ngx_http_linguamate_get_ctx(r);
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_http_linguamate_trpc_parse(r, ctx);

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
 * Under the prefix, its final "/" left out: "/api/trpc" and
 * "/api/trpcauth.login" are the app's too (tRPC's fetch adapter trims
 * slashes), and are refused as tRPC calls.
 */

static ngx_uint_t
ngx_http_linguamate_trpc_under(ngx_http_request_t *r,
    ngx_http_linguamate_main_conf_t *lmcf)
{
    size_t  stem;

    stem = lmcf->trpc_prefix.len;

    if (stem == 0) {
        return 0;
    }

    if (stem > 1 && lmcf->trpc_prefix.data[stem - 1] == '/') {
        stem--;
    }

    return r->uri.len >= stem
           && ngx_strncmp(r->uri.data, lmcf->trpc_prefix.data, stem) == 0;
}


/*
 * Read the procedures of a call under the tRPC prefix, once per request.
 * The adapters of tRPC disagree on how a URL names a procedure (fetch
 * trims slashes, Express reads the last segment, standalone slices a
 * length), so only one spelling passes: the raw request line, byte for
 * byte, is the prefix, then procedures of [A-Za-z0-9_-] segments joined
 * by '.', with ',' between them only when the call is a batch; the URI as
 * nginx normalised it must be the same bytes (no %-escape, no merged
 * slash, no dot segment).  Anything else sets trpc_bad: refused.  "batch"
 * is read as URLSearchParams.get("batch") === "1".
 */

void
ngx_http_linguamate_trpc_parse(ngx_http_request_t *r,
    ngx_http_linguamate_ctx_t *ctx)
{
    u_char                           *raw, *p, *q, *last, c;
    size_t                            seg;
    ngx_str_t                        *proc, *prefix, name;
    ngx_uint_t                        n, i;
    ngx_http_linguamate_main_conf_t  *lmcf;

    if (ctx->trpc_done) {
        return;
    }

    ctx->trpc_done = 1;

    /* after an internal redirect the URI is not the call's any more */

    if (r != r->main || r->internal) {
        return;
    }

    lmcf = ngx_http_get_module_main_conf(r, ngx_http_linguamate_module);

    if (!ngx_http_linguamate_trpc_under(r, lmcf)) {
        return;
    }

    ctx->trpc = 1;
    prefix = &lmcf->trpc_prefix;

    /* the raw path, up to the arguments; no fragment anywhere */

    raw = r->unparsed_uri.data;
    last = raw + r->unparsed_uri.len;
    q = ngx_strlchr(raw, last, '?');

    if (q == NULL) {
        q = last;
    }

    p = raw + ngx_min(prefix->len, (size_t) (q - raw));

    ctx->trpc_path.data = p;
    ctx->trpc_path.len = ngx_min((size_t) (q - p), 1024);

    if ((size_t) (q - raw) <= prefix->len
        || ngx_strncmp(raw, prefix->data, prefix->len) != 0
        || (size_t) (q - raw) != r->uri.len
        || ngx_strncmp(raw, r->uri.data, r->uri.len) != 0
        || ngx_strlchr(q, last, '#') != NULL)
    {
        ctx->trpc_bad = 1;
        return;
    }

    /* one pass: the grammar, and the number of procedures */

    n = 1;
    seg = 0;

    for (i = 0; p + i < q; i++) {
        c = p[i];

        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
            || (c >= '0' && c <= '9') || c == '_' || c == '-')
        {
            seg++;
            continue;
        }

        if ((c == '.' || c == ',') && seg) {
            seg = 0;
            n += (c == ',');
            continue;
        }

        break;
    }

    ctx->trpc_batch = ngx_http_linguamate_trpc_batch(r);

    if (p + i < q || seg == 0 || (n > 1 && !ctx->trpc_batch)) {
        ctx->trpc_bad = 1;
        ctx->trpc_batch = 0;
        return;
    }

    if (n > NGX_HTTP_LINGUAMATE_TRPC_MAX) {
        ctx->trpc_too_many = 1;
        n = NGX_HTTP_LINGUAMATE_TRPC_MAX;
    }

    proc = ngx_palloc(r->pool, n * sizeof(ngx_str_t));
    if (proc == NULL) {
        ctx->trpc_bad = 1;
        ctx->trpc_batch = 0;
        return;
    }

    ctx->trpc_procs = proc;

    for (i = 0; i < n; i++, p = name.data + name.len + 1) {
        name.data = p;
        p = ngx_strlchr(p, q, ',');
        name.len = (p ? p : q) - name.data;
        proc[i] = name;

        if (ngx_http_linguamate_trpc_is_auth(&name)) {
            ctx->trpc_auth |= (uint64_t) 1 << i;
            ctx->trpc_auth_n++;
        }

        if (name.len > 5 && ngx_strncmp(name.data, "chat.", 5) == 0) {
            ctx->trpc_chat = 1;
        }

        if (name.len > 10 && ngx_strncmp(name.data, "analytics.", 10) == 0) {
            ctx->trpc_analytics = 1;
        }
    }

    ctx->trpc_n = n;
}


/*
 * The first argument named NAME, as URLSearchParams.get() finds it:
 * arguments split on '&', names compared once decoded ('+' a space, %XX
 * a byte), exactly; VALUE is left encoded.  NGX_DECLINED: none.
 */

ngx_int_t
ngx_http_linguamate_trpc_arg(ngx_http_request_t *r, const char *name,
    ngx_str_t *value)
{
    u_char  *p, *end, *eq, *last;
    size_t   len;

    if (r->args.len == 0) {
        return NGX_DECLINED;
    }

    len = ngx_strlen(name);
    p = r->args.data;
    last = p + r->args.len;

    for ( /* void */ ; p < last; p = end + 1) {
        end = ngx_strlchr(p, last, '&');
        if (end == NULL) {
            end = last;
        }

        eq = ngx_strlchr(p, end, '=');
        if (eq == NULL) {
            eq = end;
        }

        if (ngx_http_linguamate_form_equal(p, eq, (u_char *) name, len)) {
            value->data = (eq < end) ? eq + 1 : end;
            value->len = end - value->data;
            return NGX_OK;
        }
    }

    return NGX_DECLINED;
}


/* application/x-www-form-urlencoded decoding: '+' a space, %XX a byte */

size_t
ngx_http_linguamate_form_decode(u_char *dst, u_char *src, size_t len)
{
    u_char  *d, *last;

    d = dst;
    last = src + len;

    while (src < last) {
        *d++ = ngx_http_linguamate_form_byte(&src, last);
    }

    return d - dst;
}


/* an encoded name against a plain one, decoding as it goes */

static ngx_uint_t
ngx_http_linguamate_form_equal(u_char *p, u_char *last, u_char *s,
    size_t len)
{
    size_t  i;

    for (i = 0; p < last; i++) {
        if (i == len || ngx_http_linguamate_form_byte(&p, last) != s[i]) {
            return 0;
        }
    }

    return i == len;
}


/* one decoded byte; a '%' without two hex digits stands for itself */

static u_char
ngx_http_linguamate_form_byte(u_char **p, u_char *last)
{
    u_char     *s;
    ngx_int_t   b;

    s = *p;

    if (*s == '%' && last - s >= 3
        && (b = ngx_hextoi(s + 1, 2)) != NGX_ERROR)
    {
        *p = s + 3;
        return (u_char) b;
    }

    *p = s + 1;

    return (*s == '+') ? ' ' : *s;
}


/* "batch" as every adapter reads it: searchParams.get("batch") === "1" */

static ngx_uint_t
ngx_http_linguamate_trpc_batch(ngx_http_request_t *r)
{
    ngx_str_t  value;

    if (ngx_http_linguamate_trpc_arg(r, "batch", &value) != NGX_OK) {
        return 0;
    }

    return value.len == 1 ? value.data[0] == '1'
           : value.len == 3 && value.data[0] == '%' && value.data[1] == '3'
             && value.data[2] == '1';
}


/*
 * LOG phase: a 207 whose elements could not be read to the end (the
 * client left, the answer went to a file or was too large) counts every
 * auth procedure of the call as failed
 */

static ngx_int_t
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


static ngx_uint_t
ngx_http_linguamate_trpc_is_auth(ngx_str_t *proc)
{
    ngx_str_t   *a;
    ngx_uint_t   i;

    if (proc->len <= 5 || ngx_strncmp(proc->data, "auth.", 5) != 0) {
        return 0;
    }

    a = ngx_http_linguamate_trpc_auth;

    for (i = 0; a[i].len; i++) {
        if (a[i].len == proc->len - 5
            && ngx_strncmp(a[i].data, proc->data + 5, a[i].len) == 0)
        {
            return 1;
        }
    }

    return 0;
}


/*
 * REWRITE phase, from the gate: a batch too large, no app configured
 * ("linguamate_trpc on" without APP_UPSTREAM_URL), or a procedure of a
 * feature that is off.  NGX_DECLINED: go on.
 */

ngx_int_t
ngx_http_linguamate_trpc_gate(ngx_http_request_t *r,
    ngx_http_linguamate_ctx_t *ctx)
{
    u_char                           *p;
    ngx_str_t                         extra, *name;
    ngx_http_linguamate_loc_conf_t   *llcf;
    ngx_http_linguamate_main_conf_t  *lmcf;

    lmcf = ngx_http_get_module_main_conf(r, ngx_http_linguamate_module);
    llcf = ngx_http_get_module_loc_conf(r, ngx_http_linguamate_module);

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


static ngx_http_linguamate_trpc_code_t *
ngx_http_linguamate_trpc_code(ngx_uint_t status)
{
    ngx_uint_t                        i;
    ngx_http_linguamate_trpc_code_t  *c;

    c = ngx_http_linguamate_trpc_codes;

    for (i = 0; c[i].status; i++) {
        if (c[i].status == status) {
            return &c[i];
        }
    }

    /* BAD_REQUEST for another 4xx, INTERNAL_SERVER_ERROR otherwise */

    return (status >= 400 && status < 500) ? &c[0] : &c[14];
}


/*
 * The error in tRPC v11's superjson shape:
 *   {"error":{"json":{"message":M,"code":-32029,"data":{"code":
 *   "TOO_MANY_REQUESTS","httpStatus":429,"path":"auth.login",...}}}}
 * with the edge's own fields (retryAfter, reason, feature, details) and
 * the correlation id in "data"; for a batch, an array with one element
 * per procedure.  The HTTP status is the same.
 */

ngx_int_t
ngx_http_linguamate_trpc_error(ngx_http_request_t *r,
    ngx_http_linguamate_ctx_t *ctx, ngx_uint_t status, const char *code,
    const char *message, ngx_str_t *extra)
{
    size_t                            len, one, mlen, elen;
    ngx_buf_t                        *b;
    ngx_str_t                        *path, none;
    ngx_uint_t                        i, n;
    ngx_http_linguamate_trpc_code_t  *tc;

    tc = ngx_http_linguamate_trpc_code(status);

    mlen = ngx_strlen(message);
    elen = extra ? extra->len : 0;

    /* not a batch: one error, for the path as a whole */

    n = ctx->trpc_batch ? ctx->trpc_n : 1;
    ngx_str_null(&none);

    one = sizeof("{\"error\":{\"json\":{\"message\":\"\",\"code\":-32600,"
                 "\"data\":{\"code\":\"\",\"httpStatus\":600,"
                 "\"path\":\"\",\"correlationId\":\"\","
                 "\"edgeCode\":\"\"}}}},")
          + ngx_http_linguamate_json_escape_len((u_char *) message, mlen)
          + ngx_strlen(tc->code) + ngx_strlen(code) + elen
          + ctx->corr_id.len;

    len = 4 + n * one;

    for (i = 0; i < ctx->trpc_n; i++) {
        len += ngx_http_linguamate_json_escape_len(ctx->trpc_procs[i].data,
                                                   ctx->trpc_procs[i].len);
    }

    len += ngx_http_linguamate_json_escape_len(ctx->trpc_path.data,
                                               ctx->trpc_path.len);

    b = ngx_create_temp_buf(r->pool, len);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ctx->trpc_batch) {
        *b->last++ = '[';
    }

    for (i = 0; i < n; i++) {
        path = !ctx->trpc_batch ? &ctx->trpc_path
               : ctx->trpc_n ? &ctx->trpc_procs[i] : &none;

        b->last = ngx_cpymem(b->last, "{\"error\":{\"json\":{\"message\":\"",
                         sizeof("{\"error\":{\"json\":{\"message\":\"") - 1);
        b->last = ngx_http_linguamate_json_escape(b->last, (u_char *) message,
                                                  mlen);
        b->last = ngx_sprintf(b->last, "\",\"code\":%i,\"data\":{\"code\":"
                              "\"%s\",\"httpStatus\":%ui,\"path\":\"",
                              tc->rpc, tc->code, status);
        b->last = ngx_http_linguamate_json_escape(b->last, path->data,
                                                  path->len);
        *b->last++ = '"';

        if (elen) {
            b->last = ngx_cpymem(b->last, extra->data, elen);
        }

        b->last = ngx_sprintf(b->last, ",\"correlationId\":\"%V\","
                              "\"edgeCode\":\"%s\"}}}}", &ctx->corr_id,
                              code);

        if (ctx->trpc_batch && i + 1 < n) {
            *b->last++ = ',';
        }

        if (!ctx->trpc_batch) {
            break;
        }
    }

    if (ctx->trpc_batch) {
        *b->last++ = ']';
    }

    *b->last++ = '\n';

    if (ngx_http_discard_request_body(r) != NGX_OK) {
        r->keepalive = 0;
    }

    return ngx_http_linguamate_send_json(r, status, b);
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
