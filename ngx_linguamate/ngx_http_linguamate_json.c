/*
 * Copyright (C) ngx_linguamate developers
 *
 * JSON output: string escaping that always yields valid UTF-8, ISO-8601
 * timestamps, and the contract's error envelope.
 */


#include "ngx_http_linguamate_module.h"
#include "ngx_http_linguamate_json.h"


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


static size_t ngx_http_linguamate_utf8_len(u_char *p, size_t size);
static void ngx_http_linguamate_json_headers(ngx_http_request_t *r,
    ngx_buf_t *b);
static ngx_buf_t *ngx_http_linguamate_envelope(ngx_http_request_t *r,
    ngx_http_linguamate_ctx_t *ctx, const char *code, const char *message,
    ngx_str_t *extra);
static ngx_buf_t *ngx_http_linguamate_trpc_shape(ngx_http_request_t *r,
    ngx_http_linguamate_ctx_t *ctx, ngx_uint_t status, const char *code,
    const char *message, ngx_str_t *extra);


static ngx_str_t  ngx_http_linguamate_json_type =
    ngx_string("application/json; charset=utf-8");


/*
 * The length of a valid UTF-8 sequence at p, or 0 when it is not one
 * (overlong forms, surrogates and code points past U+10FFFF included).
 */

static size_t
ngx_http_linguamate_utf8_len(u_char *p, size_t size)
{
    u_char  c;

    c = p[0];

    if (c >= 0xc2 && c <= 0xdf) {
        return (size >= 2 && (p[1] & 0xc0) == 0x80) ? 2 : 0;
    }

    if (c >= 0xe0 && c <= 0xef) {
        if (size < 3 || (p[1] & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80) {
            return 0;
        }

        if ((c == 0xe0 && p[1] < 0xa0) || (c == 0xed && p[1] > 0x9f)) {
            return 0;
        }

        return 3;
    }

    if (c >= 0xf0 && c <= 0xf4) {
        if (size < 4 || (p[1] & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80
            || (p[3] & 0xc0) != 0x80)
        {
            return 0;
        }

        if ((c == 0xf0 && p[1] < 0x90) || (c == 0xf4 && p[1] > 0x8f)) {
            return 0;
        }

        return 4;
    }

    return 0;
}


/* bytes needed for the escaped form of src, quotes not included */

size_t
ngx_http_linguamate_json_escape_len(u_char *src, size_t size)
{
    size_t  len, n;
    u_char  c;

    len = 0;

    while (size) {
        c = *src;

        if (c < 0x80) {
            if (c == '"' || c == '\\' || c == '\n' || c == '\r'
                || c == '\t' || c == '\b' || c == '\f')
            {
                len += 2;

            } else if (c < 0x20 || c == 0x7f) {
                len += 6;

            } else {
                len++;
            }

            src++;
            size--;
            continue;
        }

        n = ngx_http_linguamate_utf8_len(src, size);

        if (n == 0) {
            len += 6;           /* \ufffd for a byte that is not UTF-8 */
            src++;
            size--;
            continue;
        }

        len += n;
        src += n;
        size -= n;
    }

    return len;
}


u_char *
ngx_http_linguamate_json_escape(u_char *dst, u_char *src, size_t size)
{
    size_t         n;
    u_char         c;
    static u_char  hex[] = "0123456789abcdef";

    while (size) {
        c = *src;

        if (c < 0x80) {
            switch (c) {
            case '"': *dst++ = '\\'; *dst++ = '"'; break;
            case '\\': *dst++ = '\\'; *dst++ = '\\'; break;
            case '\n': *dst++ = '\\'; *dst++ = 'n'; break;
            case '\r': *dst++ = '\\'; *dst++ = 'r'; break;
            case '\t': *dst++ = '\\'; *dst++ = 't'; break;
            case '\b': *dst++ = '\\'; *dst++ = 'b'; break;
            case '\f': *dst++ = '\\'; *dst++ = 'f'; break;
            default:
                if (c < 0x20 || c == 0x7f) {
                    *dst++ = '\\'; *dst++ = 'u'; *dst++ = '0'; *dst++ = '0';
                    *dst++ = hex[c >> 4];
                    *dst++ = hex[c & 0xf];

                } else {
                    *dst++ = c;
                }
            }

            src++;
            size--;
            continue;
        }

        n = ngx_http_linguamate_utf8_len(src, size);

        if (n == 0) {
            dst = ngx_cpymem(dst, "\\ufffd", 6);
            src++;
            size--;
            continue;
        }

        dst = ngx_cpymem(dst, src, n);
        src += n;
        size -= n;
    }

    return dst;
}


/*
 * An account for the logs: "j***@example.com", escaped for JSON, never
 * past "last": enough to recognise, not enough to harvest.
 */

u_char *
ngx_http_linguamate_mask_email(u_char *p, u_char *last, u_char *v,
    size_t len)
{
    u_char  *at;
    size_t   n;

    if (last - p < 16) {
        return p;
    }

    at = ngx_strlchr(v, v + len, '@');

    if (len && v[0] != '@') {
        p = ngx_http_linguamate_json_escape(p, v, 1);

    } else {
        *p++ = '*';
    }

    p = ngx_cpymem(p, "***", 3);

    if (at == NULL) {
        return p;
    }

    /* each byte may take 6 when escaped */

    n = v + len - at;
    n = ngx_min(n, (size_t) (last - p) / 6);

    return ngx_http_linguamate_json_escape(p, at, n);
}


/* "2024-01-01T00:00:00.000Z"; buf holds NGX_HTTP_LINGUAMATE_ISO_LEN bytes */

u_char *
ngx_http_linguamate_iso_time(u_char *buf, time_t sec, ngx_msec_t msec)
{
    ngx_tm_t  tm;

    ngx_gmtime(sec, &tm);

    return ngx_sprintf(buf, "%4d-%02d-%02dT%02d:%02d:%02d.%03MZ",
                       tm.ngx_tm_year, tm.ngx_tm_mon, tm.ngx_tm_mday,
                       tm.ngx_tm_hour, tm.ngx_tm_min, tm.ngx_tm_sec, msec);
}


/* the type and length of a JSON answer held in one buffer */

static void
ngx_http_linguamate_json_headers(ngx_http_request_t *r, ngx_buf_t *b)
{
    r->headers_out.content_type = ngx_http_linguamate_json_type;
    r->headers_out.content_type_len = ngx_http_linguamate_json_type.len;
    r->headers_out.content_type_lowcase = NULL;
    r->headers_out.content_length_n = b->last - b->pos;

    if (r->headers_out.content_length) {
        r->headers_out.content_length->hash = 0;
        r->headers_out.content_length = NULL;
    }
}


ngx_int_t
ngx_http_linguamate_send_json(ngx_http_request_t *r, ngx_uint_t status,
    ngx_buf_t *b)
{
    ngx_int_t    rc;
    ngx_chain_t  out;

    r->headers_out.status = status;
    ngx_http_linguamate_json_headers(r, b);

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


/*
 * The contract's envelope:
 * {"error":{"code":..,"message":..,"timestamp":..,"requestId":..<extra>}}
 * "extra" is a JSON fragment that starts with a comma, or NULL.
 */

static ngx_buf_t *
ngx_http_linguamate_envelope(ngx_http_request_t *r,
    ngx_http_linguamate_ctx_t *ctx, const char *code, const char *message,
    ngx_str_t *extra)
{
    size_t       len, mlen;
    ngx_buf_t   *b;
    ngx_time_t  *tp;

    mlen = ngx_strlen(message);

    len = sizeof("{\"error\":{\"code\":\"\",\"message\":\"\","
                 "\"timestamp\":\"\",\"requestId\":\"\"}}\n") - 1
          + ngx_strlen(code)
          + ngx_http_linguamate_json_escape_len((u_char *) message, mlen)
          + NGX_HTTP_LINGUAMATE_ISO_LEN
          + ctx->corr_id.len
          + (extra ? extra->len : 0);

    b = ngx_create_temp_buf(r->pool, len);
    if (b == NULL) {
        return NULL;
    }

    tp = ngx_timeofday();

    b->last = ngx_sprintf(b->last, "{\"error\":{\"code\":\"%s\",\"message\":\"",
                          code);
    b->last = ngx_http_linguamate_json_escape(b->last, (u_char *) message,
                                              mlen);
    b->last = ngx_cpymem(b->last, "\",\"timestamp\":\"",
                         sizeof("\",\"timestamp\":\"") - 1);
    b->last = ngx_http_linguamate_iso_time(b->last, tp->sec, tp->msec);
    b->last = ngx_cpymem(b->last, "\",\"requestId\":\"",
                         sizeof("\",\"requestId\":\"") - 1);
    b->last = ngx_cpymem(b->last, ctx->corr_id.data, ctx->corr_id.len);
    *b->last++ = '"';

    if (extra) {
        b->last = ngx_cpymem(b->last, extra->data, extra->len);
    }

    b->last = ngx_cpymem(b->last, "}}\n", 3);

    return b;
}


/*
 * The body of a refusal: under the tRPC prefix (the call the core read at
 * POST_READ), the shape the app's tRPC client reads, else the envelope.
 */

ngx_buf_t *
ngx_http_linguamate_error_buf(ngx_http_request_t *r,
    ngx_http_linguamate_ctx_t *ctx, ngx_uint_t status, const char *code,
    const char *message, ngx_str_t *extra)
{
    if (ctx->trpc) {
        return ngx_http_linguamate_trpc_shape(r, ctx, status, code, message,
                                              extra);
    }

    return ngx_http_linguamate_envelope(r, ctx, code, message, extra);
}


ngx_int_t
ngx_http_linguamate_send_error(ngx_http_request_t *r, ngx_uint_t status,
    const char *code, const char *message, ngx_str_t *extra)
{
    ngx_buf_t                  *b;
    ngx_http_linguamate_ctx_t  *ctx;

    ctx = ngx_http_linguamate_get_ctx(r);
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b = ngx_http_linguamate_error_buf(r, ctx, status, code, message, extra);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* the request may carry a body nobody read; keep the connection sane */

    if (ngx_http_discard_request_body(r) != NGX_OK) {
        r->keepalive = 0;
    }

    return ngx_http_linguamate_send_json(r, status, b);
}


/* 405 with Allow, in the envelope */

ngx_int_t
ngx_http_linguamate_send_not_allowed(ngx_http_request_t *r, const char *allow)
{
    if (ngx_http_linguamate_add_header(r, "Allow", sizeof("Allow") - 1,
                                       (u_char *) allow, ngx_strlen(allow))
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_linguamate_send_error(r, NGX_HTTP_NOT_ALLOWED,
                                          "METHOD_NOT_ALLOWED",
                                          "Method not allowed", NULL);
}


/*
 * The request body, read in memory, as one NUL-terminated buffer of at
 * most "max" bytes.  NGX_DECLINED: too large (more than "max", or written
 * to a temporary file); NGX_ERROR: no memory.
 */

ngx_int_t
ngx_http_linguamate_body(ngx_http_request_t *r, size_t max, ngx_str_t *body)
{
    u_char       *p;
    size_t        len;
    ngx_chain_t  *cl;

    if (r->request_body == NULL || r->request_body->temp_file) {
        return NGX_DECLINED;
    }

    len = 0;

    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        len += ngx_buf_size(cl->buf);
    }

    if (len > max) {
        return NGX_DECLINED;
    }

    body->data = ngx_pnalloc(r->pool, len + 1);
    if (body->data == NULL) {
        return NGX_ERROR;
    }

    p = body->data;

    /* an empty body comes as a buffer without memory */

    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        if (!cl->buf->in_file && cl->buf->last > cl->buf->pos) {
            p = ngx_cpymem(p, cl->buf->pos, cl->buf->last - cl->buf->pos);
        }
    }

    *p = '\0';
    body->len = p - body->data;

    return NGX_OK;
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

static ngx_buf_t *
ngx_http_linguamate_trpc_shape(ngx_http_request_t *r,
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
        return NULL;
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

    return b;
}


/*
 * The one way to refuse, from a phase step: the refusal is recorded in
 * the ctx (which outlives internal redirects) and its status returned to
 * nginx, which finalizes the request with it.  So nginx's rules apply as
 * to any module's refusal: "satisfy any" may grant what ACCESS refused,
 * and an error_page for the status takes over.  The error endpoint
 * ("linguamate_endpoint error") renders the recorded refusal; with no
 * error_page, the header and body filters answer with it instead of
 * nginx's HTML page (ngx_http_linguamate_refusal_buf()).  Headers the step
 * set (Retry-After, X-RateLimit-*, WWW-Authenticate) stay in headers_out.
 */

ngx_int_t
ngx_http_linguamate_phase_error(ngx_http_request_t *r, ngx_uint_t status,
    const char *code, const char *message, ngx_str_t *extra)
{
    size_t                          len;
    ngx_http_linguamate_ctx_t      *ctx;
    ngx_http_linguamate_refusal_t  *rf;

    ctx = ngx_http_linguamate_get_ctx(r);
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rf = &ctx->refusal;

    /* the message and the fields may live on the step's stack */

    len = ngx_strlen(message);

    rf->message = ngx_pnalloc(r->pool, len + 1);
    if (rf->message == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_memcpy(rf->message, message, len + 1);

    rf->extra.len = 0;

    if (extra && extra->len) {
        rf->extra.data = ngx_pstrdup(r->pool, extra);
        if (rf->extra.data == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        rf->extra.len = extra->len;
    }

    rf->status = status;
    rf->code = code;
    rf->loc_conf = r->loc_conf;
    rf->uri_changes = r->uri_changes;
    rf->keepalive = r->keepalive;
    rf->set = 1;
    rf->sent = 0;
    rf->swap = 0;

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "linguamate refusal: %ui %s", status, code);

    return status;
}


/*
 * Is this answer the recorded refusal, unsent?  r->err_status is the
 * status nginx finalized the request with; an error_page redirect (to
 * any location) changes r->uri_changes.
 */

ngx_uint_t
ngx_http_linguamate_refusal_pending(ngx_http_request_t *r,
    ngx_http_linguamate_ctx_t *ctx)
{
    return ctx->refusal.set && !ctx->refusal.sent
           && r->err_status == ctx->refusal.status;
}


/* the error endpoint, after an error_page redirect: render the refusal */

ngx_int_t
ngx_http_linguamate_send_refusal(ngx_http_request_t *r,
    ngx_http_linguamate_ctx_t *ctx)
{
    ngx_http_linguamate_refusal_t  *rf;

    rf = &ctx->refusal;

    rf->sent = 1;
    rf->swap = 1;           /* its headers as in the refusing location */

    r->keepalive = rf->keepalive;

    return ngx_http_linguamate_send_error(r, rf->status, rf->code,
                                          (char *) rf->message,
                                          rf->extra.len ? &rf->extra : NULL);
}


/*
 * No error_page: nginx is sending its own page for the refusal's status
 * (the header filter asks).  The refusal's body instead, with its length
 * and type; the body filter sends it in place of nginx's page.
 */

ngx_buf_t *
ngx_http_linguamate_refusal_buf(ngx_http_request_t *r,
    ngx_http_linguamate_ctx_t *ctx)
{
    ngx_buf_t                      *b;
    ngx_http_linguamate_refusal_t  *rf;

    rf = &ctx->refusal;

    b = ngx_http_linguamate_error_buf(r, ctx, rf->status, rf->code,
                                      (char *) rf->message,
                                      rf->extra.len ? &rf->extra : NULL);
    if (b == NULL) {
        return NULL;
    }

    rf->sent = 1;

    /*
     * nginx closes after its own 400 and when it could not discard the
     * body (it has tried by now).  The edge's refusal keeps the
     * connection open only where no byte of a body can be left on it: a
     * request without one, or one the module read whole.  A body nginx
     * gave up on (a bad chunk) must never be read as the next request.
     */

    if (rf->keepalive
        && ((r->headers_in.content_length_n <= 0 && !r->headers_in.chunked)
            || ctx->body_read))
    {
        r->keepalive = 1;
    }

    ngx_http_linguamate_json_headers(r, b);

    b->last_buf = 1;
    b->last_in_chain = 1;

    return b;
}


typedef struct {
    ngx_uint_t   status;
    const char  *code;
    const char  *message;
} ngx_http_linguamate_error_t;


static ngx_http_linguamate_error_t  ngx_http_linguamate_errors[] = {
    { 400, "BAD_REQUEST", "Bad request" },
    { 401, "UNAUTHORIZED", "Authentication required" },
    { 403, "FORBIDDEN", "Forbidden" },
    { 404, "NOT_FOUND", "Resource not found" },
    { 405, "METHOD_NOT_ALLOWED", "Method not allowed" },
    { 408, "REQUEST_TIMEOUT", "Request timeout" },
    { 409, "CONFLICT", "Conflict" },
    { 411, "LENGTH_REQUIRED", "Length required" },
    { 412, "PRECONDITION_FAILED", "Precondition failed" },
    { 413, "PAYLOAD_TOO_LARGE", "Payload too large" },
    { 414, "URI_TOO_LONG", "URI too long" },
    { 415, "UNSUPPORTED_MEDIA_TYPE", "Unsupported media type" },
    { 416, "RANGE_NOT_SATISFIABLE", "Range not satisfiable" },
    { 429, "RATE_LIMIT_EXCEEDED", "Rate limit exceeded" },
    { 500, "INTERNAL_SERVER_ERROR", "Internal server error" },
    { 501, "NOT_IMPLEMENTED", "Not implemented" },
    { 502, "BAD_GATEWAY", "Bad gateway" },
    { 503, "SERVICE_UNAVAILABLE", "Service temporarily unavailable" },
    { 504, "UPSTREAM_TIMEOUT", "Upstream timed out" },
    { 505, "HTTP_VERSION_NOT_SUPPORTED", "HTTP version not supported" },
    { 507, "INSUFFICIENT_STORAGE", "Insufficient storage" },
    { 0, NULL, NULL }
};


/* the envelope's code and message of a status nginx or a step returned */

void
ngx_http_linguamate_status_error(ngx_uint_t status, const char **code,
    const char **message)
{
    ngx_http_linguamate_error_t  *e;

    for (e = ngx_http_linguamate_errors; e->status; e++) {
        if (e->status == status) {
            *code = e->code;
            *message = e->message;
            return;
        }
    }

    if (status < 500) {
        *code = "BAD_REQUEST";
        *message = "Bad request";
        return;
    }

    *code = "INTERNAL_SERVER_ERROR";
    *message = "Internal server error";
}


/* a step refuses with a status of nginx's (a body it could not read) */

ngx_int_t
ngx_http_linguamate_phase_status(ngx_http_request_t *r, ngx_uint_t status)
{
    const char  *code, *message;

    ngx_http_linguamate_status_error(status, &code, &message);

    return ngx_http_linguamate_phase_error(r, status, code, message, NULL);
}


ngx_int_t
ngx_http_linguamate_validation_error(ngx_http_request_t *r,
    const char *field, const char *message)
{
    u_char     *p;
    size_t      len;
    ngx_str_t   extra;

    len = sizeof(",\"details\":[{\"field\":\"\",\"message\":\"\"}]")
          + ngx_strlen(field) + ngx_strlen(message);

    p = ngx_pnalloc(r->pool, len);
    if (p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    extra.data = p;
    extra.len = ngx_sprintf(p, ",\"details\":[{\"field\":\"%s\","
                            "\"message\":\"%s\"}]", field, message) - p;

    return ngx_http_linguamate_send_error(r, NGX_HTTP_BAD_REQUEST,
                                          "VALIDATION_ERROR",
                                          "Invalid request body", &extra);
}
