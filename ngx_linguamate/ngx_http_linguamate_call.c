/*
 * Copyright (C) ngx_linguamate developers
 *
 * Core: the request line read once as a tRPC call (its procedures, batch,
 * auth procedures, features), from the one POST_READ handler, and the
 * form-encoded arguments.  Every feature reads the result from the ctx.
 */


#include "ngx_http_linguamate_module.h"


/* the auth procedures under the login limit and the lockout */
static ngx_str_t  ngx_http_linguamate_trpc_auth[] = {
    ngx_string("login"), ngx_string("signin"), ngx_string("signup"),
    ngx_string("refreshToken"), ngx_string("requestPasswordReset"),
    ngx_string("resetPassword"), ngx_string("verifyEmail"),
    ngx_null_string
};


static ngx_uint_t ngx_http_linguamate_form_equal(u_char *p, u_char *last,
    u_char *s, size_t len);
static u_char ngx_http_linguamate_form_byte(u_char **p, u_char *last);
static ngx_uint_t ngx_http_linguamate_trpc_batch(ngx_http_request_t *r);
static ngx_uint_t ngx_http_linguamate_trpc_is_auth(ngx_str_t *proc);


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
 * POST_READ, the core's first step: the request ctx is created here, once
 * per request (a request nginx refused before the phases gets it lazily,
 * from the first ngx_http_linguamate_get_ctx()), and the request line is
 * read as a tRPC call, once, before anything can refuse the request: so
 * that every refusal under the prefix has the tRPC shape.
 */

ngx_int_t
ngx_http_linguamate_call_read(ngx_http_request_t *r)
{
    ngx_http_linguamate_ctx_t        *ctx;
    ngx_http_linguamate_main_conf_t  *lmcf;

    if (r != r->main) {
        return NGX_DECLINED;
    }

    /*
     * A tRPC call gets its ctx here; any other request gets it at the
     * first phase table of a location with the module on (module.c), so
     * a location without it pays nothing
     */

    lmcf = ngx_http_get_module_main_conf(r, ngx_http_linguamate_module);

    if (!ngx_http_linguamate_trpc_under(r, lmcf)) {
        return NGX_DECLINED;
    }

    ctx = ngx_http_linguamate_get_ctx(r);
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_http_linguamate_trpc_parse(r, ctx);

    return NGX_DECLINED;
}
