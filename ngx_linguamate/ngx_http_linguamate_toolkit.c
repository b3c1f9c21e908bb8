/*
 * Copyright (C) ngx_linguamate developers
 *
 * The AI toolkit proxy: a content handler that reads the client's body,
 * then makes up to three attempts as subrequests to an internal proxy
 * location ("/_linguamate/toolkit", proxy_pass $linguamate_toolkit_target),
 * waiting 500 ms x 2^n between them on a timer, within REQUEST_TIMEOUT_MS.
 *
 * An attempt's answer is held back by the filters below while it may
 * still be retried (connect error, timeout, 429, 5xx); the first answer
 * that is final has its status and headers copied to the main request,
 * and its body streams through as it comes (proxy_buffering off: the
 * LLM's streamed answers are never held whole).  An unreachable upstream
 * after the retries is a 503 SERVICE_UNAVAILABLE envelope, a timeout a
 * 504 UPSTREAM_TIMEOUT; the breaker, when the location has one, counts
 * every attempt.
 */


#include "ngx_http_linguamate_module.h"
#include "ngx_http_linguamate_json.h"
#include "ngx_http_linguamate_breaker.h"
#include "ngx_http_linguamate_toolkit.h"


#define NGX_HTTP_LINGUAMATE_TK_ATTEMPTS   3
#define NGX_HTTP_LINGUAMATE_TK_BACKOFF    500

#define NGX_HTTP_LINGUAMATE_TK_NONE       0
#define NGX_HTTP_LINGUAMATE_TK_RETRY      1
#define NGX_HTTP_LINGUAMATE_TK_ENVELOPE   2
#define NGX_HTTP_LINGUAMATE_TK_PASSED     3


struct ngx_http_linguamate_toolkit_s {
    /* the attempts so far, for the breaker however the call ends */
    ngx_http_request_t         *sr;             /* the current attempt */
    ngx_uint_t                  attempt;        /* 1, 2, 3 */
    ngx_uint_t                  outcome;
    ngx_uint_t                  status;         /* of the current attempt */
    ngx_uint_t                  statuses[NGX_HTTP_LINGUAMATE_TK_ATTEMPTS];
    ngx_msec_t                  start;
    ngx_event_t                 backoff;
    ngx_str_t                   target;
    unsigned                    swallow:1;
    unsigned                    broken:1;
    unsigned                    complete:1;
};


static void ngx_http_linguamate_toolkit_body(ngx_http_request_t *r);
static ngx_int_t ngx_http_linguamate_toolkit_attempt(ngx_http_request_t *r);
static ngx_int_t ngx_http_linguamate_toolkit_done(ngx_http_request_t *sr,
    void *data, ngx_int_t rc);
static void ngx_http_linguamate_toolkit_next(ngx_http_request_t *r);
static void ngx_http_linguamate_toolkit_timer(ngx_event_t *ev);
static void ngx_http_linguamate_toolkit_cleanup(void *data);
static ngx_int_t ngx_http_linguamate_toolkit_pass(ngx_http_request_t *sr);
static ngx_uint_t ngx_http_linguamate_toolkit_may_retry(
    ngx_http_request_t *r, ngx_http_linguamate_toolkit_t *tk);


static ngx_str_t  ngx_http_linguamate_toolkit_uri =
    ngx_string("/_linguamate/toolkit");


/* linguamate_toolkit UPSTREAM_PATH [multipart]; */

char *
ngx_http_linguamate_toolkit(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_linguamate_loc_conf_t *llcf = conf;

    ngx_str_t                 *value;
    ngx_http_core_loc_conf_t  *clcf;

    if (llcf->toolkit_path.data) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (value[1].len == 0 || value[1].data[0] != '/') {
        return "needs an upstream path that starts with \"/\"";
    }

    llcf->toolkit_path = value[1];

    if (cf->args->nelts == 3) {
        if (ngx_strcmp(value[2].data, "multipart") != 0) {
            return "takes \"multipart\" as its second parameter";
        }

        llcf->toolkit_multipart = 1;
    }

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_linguamate_toolkit_handler;

    if (llcf->enable == NGX_CONF_UNSET) {
        llcf->enable = 1;
    }

    return NGX_CONF_OK;
}


ngx_int_t
ngx_http_linguamate_toolkit_handler(ngx_http_request_t *r)
{
    u_char                           *p;
    ngx_int_t                         rc;
    ngx_str_t                        *ct, base;
    ngx_pool_cleanup_t               *cln;
    ngx_http_linguamate_ctx_t        *ctx;
    ngx_http_linguamate_toolkit_t    *tk;
    ngx_http_linguamate_loc_conf_t   *llcf;
    ngx_http_linguamate_main_conf_t  *lmcf;

    if (r != r->main) {
        return NGX_HTTP_NOT_FOUND;
    }

    if (r->method != NGX_HTTP_POST) {
        return ngx_http_linguamate_send_not_allowed(r, "POST");
    }

    llcf = ngx_http_get_module_loc_conf(r, ngx_http_linguamate_module);
    lmcf = ngx_http_get_module_main_conf(r, ngx_http_linguamate_module);

    if (llcf->toolkit_multipart) {
        ct = r->headers_in.content_type ? &r->headers_in.content_type->value
                                        : NULL;

        if (ct == NULL || ct->len < sizeof("multipart/form-data") - 1
            || ngx_strncasecmp(ct->data, (u_char *) "multipart/form-data",
                               sizeof("multipart/form-data") - 1) != 0)
        {
            return ngx_http_linguamate_validation_error(r, "body",
                       "must be multipart/form-data");
        }
    }

    ctx = ngx_http_linguamate_get_ctx(r);
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln = ngx_pool_cleanup_add(r->pool, sizeof(ngx_http_linguamate_toolkit_t));
    if (cln == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    tk = cln->data;
    ngx_memzero(tk, sizeof(ngx_http_linguamate_toolkit_t));
    cln->handler = ngx_http_linguamate_toolkit_cleanup;

    /* the upstream URL: EXPO_PUBLIC_TOOLKIT_URL + the route's path */

    base = lmcf->toolkit_url;
    while (base.len && base.data[base.len - 1] == '/') {
        base.len--;
    }

    p = ngx_pnalloc(r->pool, base.len + llcf->toolkit_path.len);
    if (p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    tk->target.data = p;
    p = ngx_cpymem(p, base.data, base.len);
    p = ngx_cpymem(p, llcf->toolkit_path.data, llcf->toolkit_path.len);
    tk->target.len = p - tk->target.data;

    tk->start = ngx_current_msec;
    tk->backoff.handler = ngx_http_linguamate_toolkit_timer;
    tk->backoff.data = r;
    tk->backoff.log = r->connection->log;

    ctx->toolkit = tk;

    rc = ngx_http_read_client_request_body(r,
                                           ngx_http_linguamate_toolkit_body);

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return rc;
    }

    return NGX_DONE;
}


static void
ngx_http_linguamate_toolkit_cleanup(void *data)
{
    ngx_http_linguamate_toolkit_t *tk = data;

    if (tk->backoff.timer_set) {
        ngx_del_timer(&tk->backoff);
    }
}


static void
ngx_http_linguamate_toolkit_body(ngx_http_request_t *r)
{
    ngx_int_t  rc;

    rc = ngx_http_linguamate_toolkit_attempt(r);

    if (rc != NGX_OK) {
        ngx_http_finalize_request(r, rc);
    }
}


static ngx_int_t
ngx_http_linguamate_toolkit_attempt(ngx_http_request_t *r)
{
    ngx_http_request_t             *sr;
    ngx_http_post_subrequest_t     *ps;
    ngx_http_linguamate_ctx_t      *ctx;
    ngx_http_linguamate_toolkit_t  *tk;

    ctx = ngx_http_linguamate_get_ctx(r);
    if (ctx == NULL || ctx->toolkit == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    tk = ctx->toolkit;
    tk->attempt++;
    tk->outcome = NGX_HTTP_LINGUAMATE_TK_NONE;
    tk->status = 0;
    tk->swallow = 0;
    tk->complete = 0;

    ps = ngx_palloc(r->pool, sizeof(ngx_http_post_subrequest_t));
    if (ps == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ps->handler = ngx_http_linguamate_toolkit_done;
    ps->data = tk;

    if (ngx_http_subrequest(r, &ngx_http_linguamate_toolkit_uri, NULL, &sr,
                            ps, NGX_HTTP_SUBREQUEST_WAITED)
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* the client's method and body, not a GET */

    sr->method = r->method;
    sr->method_name = r->method_name;

    tk->sr = sr;

    return NGX_OK;
}


static ngx_uint_t
ngx_http_linguamate_toolkit_may_retry(ngx_http_request_t *r,
    ngx_http_linguamate_toolkit_t *tk)
{
    ngx_msec_t                        delay;
    ngx_http_linguamate_main_conf_t  *lmcf;

    if (tk->attempt >= NGX_HTTP_LINGUAMATE_TK_ATTEMPTS) {
        return 0;
    }

    lmcf = ngx_http_get_module_main_conf(r, ngx_http_linguamate_module);

    delay = NGX_HTTP_LINGUAMATE_TK_BACKOFF << (tk->attempt - 1);

    return ngx_current_msec - tk->start + delay < lmcf->request_timeout_ms;
}


/*
 * The header of an attempt (called from the header filter for the
 * subrequest): hold it back while the attempt may still be retried or
 * becomes an envelope, else hand it to the client.
 */

ngx_int_t
ngx_http_linguamate_toolkit_header(ngx_http_request_t *sr,
    ngx_http_linguamate_toolkit_t *tk)
{
    ngx_uint_t  status, generated, failed;

    status = sr->headers_out.status;
    generated = (sr->err_status != 0);

    tk->status = status;
    failed = (status >= 500 || status == NGX_HTTP_TOO_MANY_REQUESTS);

    if (failed && ngx_http_linguamate_toolkit_may_retry(sr->main, tk)) {
        tk->outcome = NGX_HTTP_LINGUAMATE_TK_RETRY;
        tk->swallow = 1;
        return NGX_OK;
    }

    if (generated && status >= 500) {
        /* nginx's own page for a connect error or a timeout */
        tk->outcome = NGX_HTTP_LINGUAMATE_TK_ENVELOPE;
        tk->swallow = 1;
        return NGX_OK;
    }

    tk->outcome = NGX_HTTP_LINGUAMATE_TK_PASSED;

    return ngx_http_linguamate_toolkit_pass(sr);
}


ngx_int_t
ngx_http_linguamate_toolkit_body_filter(ngx_http_request_t *sr,
    ngx_http_linguamate_toolkit_t *tk, ngx_chain_t *in)
{
    ngx_chain_t  *cl;

    if (!tk->swallow) {

        /* a clean end carries last_in_chain; an upstream error only flushes */

        for (cl = in; cl; cl = cl->next) {
            if (cl->buf->last_in_chain) {
                tk->complete = 1;
            }
        }

        return NGX_DECLINED;
    }

    /* consumed, not sent: the proxy may reuse its buffers */

    for (cl = in; cl; cl = cl->next) {
        cl->buf->pos = cl->buf->last;
        cl->buf->file_pos = cl->buf->file_last;
    }

    return NGX_OK;
}


/* the final attempt's status and headers become the client's */

static ngx_int_t
ngx_http_linguamate_toolkit_pass(ngx_http_request_t *sr)
{
    ngx_uint_t           i;
    ngx_list_part_t     *part;
    ngx_table_elt_t     *h, *nh;
    ngx_http_request_t  *r;

    r = sr->main;

    r->headers_out.status = sr->headers_out.status;
    r->headers_out.content_type = sr->headers_out.content_type;
    r->headers_out.content_type_len = sr->headers_out.content_type_len;
    r->headers_out.content_length_n = sr->headers_out.content_length_n;

    part = &sr->headers_out.headers.part;
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

        if (h[i].hash == 0
            || (h[i].key.len == 14
                && ngx_strncasecmp(h[i].key.data,
                                   (u_char *) "Content-Length", 14) == 0))
        {
            continue;
        }

        nh = ngx_list_push(&r->headers_out.headers);
        if (nh == NULL) {
            return NGX_ERROR;
        }

        *nh = h[i];

        /*
         * the filters of the main request read these from their own
         * fields: without them gzip would encode an encoded body again
         */

        if (&h[i] == sr->headers_out.content_encoding) {
            r->headers_out.content_encoding = nh;

        } else if (&h[i] == sr->headers_out.last_modified) {
            r->headers_out.last_modified = nh;

        } else if (&h[i] == sr->headers_out.location) {
            r->headers_out.location = nh;

        } else if (&h[i] == sr->headers_out.etag) {
            r->headers_out.etag = nh;
        }
    }

    r->headers_out.last_modified_time = sr->headers_out.last_modified_time;
    r->headers_out.charset = sr->headers_out.charset;

    return ngx_http_send_header(r);
}


/* an attempt ended: note it, and let the parent decide */

static ngx_int_t
ngx_http_linguamate_toolkit_done(ngx_http_request_t *sr, void *data,
    ngx_int_t rc)
{
    ngx_http_linguamate_toolkit_t *tk = data;

    if (tk->outcome == NGX_HTTP_LINGUAMATE_TK_NONE) {
        /* no header at all: the attempt failed before any answer */

        tk->status = NGX_HTTP_BAD_GATEWAY;
        tk->outcome = ngx_http_linguamate_toolkit_may_retry(sr->main, tk)
                      ? NGX_HTTP_LINGUAMATE_TK_RETRY
                      : NGX_HTTP_LINGUAMATE_TK_ENVELOPE;
    }

    if (tk->outcome == NGX_HTTP_LINGUAMATE_TK_PASSED
        && (!tk->complete || rc == NGX_ERROR
            || rc >= NGX_HTTP_SPECIAL_RESPONSE))
    {
        /*
         * the answer broke off after its header went out (a timeout in a
         * stream): the client must not see a clean end
         */
        tk->broken = 1;
        tk->status = (rc >= NGX_HTTP_SPECIAL_RESPONSE) ? (ngx_uint_t) rc
                                                     : NGX_HTTP_BAD_GATEWAY;
    }

    if (tk->attempt <= NGX_HTTP_LINGUAMATE_TK_ATTEMPTS) {
        tk->statuses[tk->attempt - 1] = tk->status;
    }

    sr->main->write_event_handler = ngx_http_linguamate_toolkit_next;

    return rc;
}


static void
ngx_http_linguamate_toolkit_next(ngx_http_request_t *r)
{
    ngx_int_t                       rc;
    ngx_msec_t                      delay;
    ngx_http_linguamate_ctx_t      *ctx;
    ngx_http_linguamate_toolkit_t  *tk;

    r->write_event_handler = ngx_http_request_empty_handler;

    ctx = ngx_http_linguamate_get_ctx(r);
    if (ctx == NULL || ctx->toolkit == NULL) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    tk = ctx->toolkit;

    switch (tk->outcome) {

    case NGX_HTTP_LINGUAMATE_TK_RETRY:
        delay = NGX_HTTP_LINGUAMATE_TK_BACKOFF << (tk->attempt - 1);

        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "linguamate: toolkit attempt %ui answered %ui; "
                      "retrying in %M ms", tk->attempt, tk->status, delay);

        /*
         * the request waits for the timer; a client that leaves meanwhile
         * ends it (test_reading), and the pool cleanup drops the timer
         */

        r->main->count++;
        r->read_event_handler = ngx_http_test_reading;
        ngx_add_timer(&tk->backoff, delay);
        return;

    case NGX_HTTP_LINGUAMATE_TK_ENVELOPE:
        ngx_http_linguamate_breaker_attempts(r, tk->statuses, tk->attempt);

        if (tk->status == NGX_HTTP_GATEWAY_TIME_OUT) {
            rc = ngx_http_linguamate_send_error(r, NGX_HTTP_GATEWAY_TIME_OUT,
                     "UPSTREAM_TIMEOUT", "Upstream timed out", NULL);

        } else {
            rc = ngx_http_linguamate_send_error(r,
                     NGX_HTTP_SERVICE_UNAVAILABLE, "SERVICE_UNAVAILABLE",
                     "Service temporarily unavailable", NULL);
        }

        ngx_http_finalize_request(r, rc);
        return;

    default:
        ngx_http_linguamate_breaker_attempts(r, tk->statuses, tk->attempt);

        if (tk->broken) {
            ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                          "linguamate: the toolkit's answer broke off "
                          "(%ui); closing the client connection", tk->status);
            r->connection->error = 1;
            ngx_http_finalize_request(r, NGX_ERROR);
            return;
        }

        ngx_http_finalize_request(r, ngx_http_send_special(r, NGX_HTTP_LAST));
        return;
    }
}


static void
ngx_http_linguamate_toolkit_timer(ngx_event_t *ev)
{
    ngx_int_t            rc;
    ngx_connection_t    *c;
    ngx_http_request_t  *r;

    r = ev->data;
    c = r->connection;

    r->read_event_handler = ngx_http_block_reading;

    rc = ngx_http_linguamate_toolkit_attempt(r);

    if (rc != NGX_OK) {
        /* drop the timer's hold, then answer the error */
        r->main->count--;
        ngx_http_finalize_request(r, rc);

    } else {
        /* the timer's hold on the request ends here */
        ngx_http_finalize_request(r, NGX_DONE);
    }

    ngx_http_run_posted_requests(c);
}


/* $linguamate_toolkit_target: the upstream URL of this request's attempt */

ngx_int_t
ngx_http_linguamate_toolkit_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_http_linguamate_ctx_t        *ctx;
    ngx_http_linguamate_main_conf_t  *lmcf;

    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;

    if (data) {
        /* $linguamate_toolkit_key: TOOLKIT_API_KEY, never logged */
        lmcf = ngx_http_get_module_main_conf(r, ngx_http_linguamate_module);
        v->data = lmcf->toolkit_api_key.data;
        v->len = lmcf->toolkit_api_key.len;
        return NGX_OK;
    }

    ctx = ngx_http_linguamate_get_ctx(r);

    if (ctx == NULL || ctx->toolkit == NULL) {
        v->not_found = 1;
        return NGX_OK;
    }

    v->data = ctx->toolkit->target.data;
    v->len = ctx->toolkit->target.len;

    return NGX_OK;
}


/* GET /api/toolkit/health */

ngx_int_t
ngx_http_linguamate_toolkit_health(ngx_http_request_t *r)
{
    ngx_buf_t                           *b;
    ngx_str_t                            name;
    const char                          *state;
    ngx_http_linguamate_main_conf_t     *lmcf;
    ngx_http_linguamate_breaker_conf_t  *bc;

    lmcf = ngx_http_get_module_main_conf(r, ngx_http_linguamate_module);

    ngx_str_set(&name, "toolkit");
    bc = ngx_http_linguamate_breaker_find(lmcf, &name);
    state = bc ? ngx_http_linguamate_breaker_state_name(lmcf, bc) : "NONE";

    b = ngx_create_temp_buf(r->pool, 256 + 6 * lmcf->toolkit_url.len);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b->last = ngx_cpymem(b->last, "{\"ok\":true,\"base\":\"",
                         sizeof("{\"ok\":true,\"base\":\"") - 1);
    b->last = ngx_http_linguamate_json_escape(b->last, lmcf->toolkit_url.data,
                                              lmcf->toolkit_url.len);
    b->last = ngx_sprintf(b->last, "\",\"rate\":{\"windowMs\":%ui,\"max\":%ui},"
                          "\"breaker\":\"%s\"}\n",
                          lmcf->rate_limit_window_ms,
                          lmcf->rate_limit_max_requests, state);

    return ngx_http_linguamate_send_json(r, NGX_HTTP_OK, b);
}


/* is sr the current attempt of its main request's toolkit call? */

ngx_int_t
ngx_http_linguamate_toolkit_owns(ngx_http_request_t *sr,
    ngx_http_linguamate_toolkit_t **tk)
{
    ngx_http_linguamate_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(sr->main, ngx_http_linguamate_module);

    if (ctx == NULL || ctx->toolkit == NULL || ctx->toolkit->sr != sr) {
        return 0;
    }

    *tk = ctx->toolkit;

    return 1;
}


/*
 * LOG phase, in the breaker's place: a toolkit call that ended early
 * counts its attempts so far (once: breaker_attempts clears ctx->breaker)
 */

ngx_int_t
ngx_http_linguamate_toolkit_log(ngx_http_request_t *r)
{
    ngx_uint_t                      n;
    ngx_http_linguamate_ctx_t      *ctx;
    ngx_http_linguamate_toolkit_t  *tk;

    if (r != r->main) {
        return NGX_OK;
    }

    ctx = ngx_http_get_module_ctx(r, ngx_http_linguamate_module);

    if (ctx == NULL || ctx->breaker == NULL || ctx->toolkit == NULL) {
        return NGX_OK;
    }

    tk = ctx->toolkit;
    n = ngx_min(tk->attempt, NGX_HTTP_LINGUAMATE_TK_ATTEMPTS);

    ngx_http_linguamate_breaker_attempts(r, tk->statuses, n);

    return NGX_OK;
}


/* the upstream of the attempt in flight, if any, for REQUEST_TIMEOUT_MS */

ngx_http_upstream_t *
ngx_http_linguamate_toolkit_upstream(ngx_http_linguamate_toolkit_t *tk)
{
    return tk->sr ? tk->sr->upstream : NULL;
}
