/*
 * Copyright (C) ngx_linguamate developers
 *
 * Logging in pino's shape: one JSON object per line with a numeric level,
 * epoch-ms time, pid, hostname, env, evt and msg.  Request lines are made
 * by the $linguamate_log_line variable, so nginx's own buffered access_log
 * writes them; module events are written here, each line in one write().
 */


#include "ngx_http_linguamate_module.h"
#include "ngx_http_linguamate_json.h"
#include "ngx_http_linguamate_log.h"


#define NGX_HTTP_LINGUAMATE_EVENT_MAX  4096


static u_char *ngx_http_linguamate_log_head(u_char *p,
    ngx_http_linguamate_main_conf_t *lmcf, ngx_uint_t level,
    const char *evt, ngx_time_t *tp);
static ngx_uint_t ngx_http_linguamate_status_level(ngx_http_request_t *r);
static ngx_uint_t ngx_http_linguamate_log_threshold(
    ngx_http_linguamate_main_conf_t *lmcf);


/* a line's level as the pretty log names it: "TRACE" .. "FATAL" */

#define NGX_HTTP_LINGUAMATE_LEVEL_CASE(id, n, name, line)                    \
    case NGX_HTTP_LINGUAMATE_LOG_##id:                                       \
        return (line) ? #id : "LOG";

const char *
ngx_http_linguamate_level_name(ngx_uint_t level)
{
    switch (level) {
    NGX_HTTP_LINGUAMATE_LOG_LEVELS(NGX_HTTP_LINGUAMATE_LEVEL_CASE)
    }

    return "LOG";
}


/*
 * LOG_LEVEL in force: the live value the flags feature published in the
 * core's main conf (live_log_level, in the flags zone), else as configured.
 * The log writer reads no feature.
 */

static ngx_uint_t
ngx_http_linguamate_log_threshold(ngx_http_linguamate_main_conf_t *lmcf)
{
    if (lmcf->live_log_level) {
        return (ngx_uint_t) *lmcf->live_log_level;
    }

    return lmcf->log_level;
}


/* the fields every line starts with; the caller reserved room for them */

static u_char *
ngx_http_linguamate_log_head(u_char *p, ngx_http_linguamate_main_conf_t *lmcf,
    ngx_uint_t level, const char *evt, ngx_time_t *tp)
{
    p = ngx_sprintf(p, "{\"level\":%ui,\"time\":%T%03M,\"pid\":%P,"
                    "\"hostname\":\"", level, tp->sec, tp->msec, ngx_pid);
    p = ngx_http_linguamate_json_escape(p, lmcf->hostname.data,
                                        lmcf->hostname.len);
    return ngx_sprintf(p, "\",\"env\":\"%V\",\"evt\":\"%s\",\"msg\":\"",
                       &lmcf->env_name, evt);
}


/*
 * A module event about a request: the event line carries the request's
 * correlation id ("corr"), after the caller's fields, without the caller
 * formatting it.
 */

void
ngx_http_linguamate_log_request(ngx_http_request_t *r, ngx_uint_t level,
    const char *evt, ngx_str_t *msg, ngx_str_t *extra)
{
    u_char                           buf[3072], *p;
    ngx_str_t                        e;
    ngx_http_linguamate_ctx_t       *ctx;
    ngx_http_linguamate_main_conf_t *lmcf;

    lmcf = ngx_http_get_module_main_conf(r, ngx_http_linguamate_module);
    ctx = ngx_http_linguamate_get_ctx(r);

    if (ctx == NULL || ctx->corr_id.len == 0
        || extra->len + ctx->corr_id.len
           + sizeof(",\"corr\":{\"correlationId\":\"\"}") > sizeof(buf))
    {
        ngx_http_linguamate_log_event(lmcf, level, evt, msg, extra);
        return;
    }

    p = ngx_cpymem(buf, extra->data, extra->len);
    p = ngx_sprintf(p, ",\"corr\":{\"correlationId\":\"%V\"}",
                    &ctx->corr_id);

    e.data = buf;
    e.len = p - buf;

    ngx_http_linguamate_log_event(lmcf, level, evt, msg, &e);
}


/*
 * A module event.  "extra" is a JSON fragment starting with a comma; in
 * pretty mode it is printed as is after the message.
 */

void
ngx_http_linguamate_log_event(ngx_http_linguamate_main_conf_t *lmcf,
    ngx_uint_t level, const char *evt, ngx_str_t *msg, ngx_str_t *extra)
{
    u_char       buf[NGX_HTTP_LINGUAMATE_EVENT_MAX], *p, *last;
    size_t       room, mlen, elen;
    ngx_uint_t   audit;
    ngx_time_t  *tp;

    /* an audit line is written whatever the level */

    audit = level & NGX_HTTP_LINGUAMATE_LOG_AUDIT;
    level &= ~NGX_HTTP_LINGUAMATE_LOG_AUDIT;

    if ((!audit && level < ngx_http_linguamate_log_threshold(lmcf))
        || lmcf->log == NULL
        || lmcf->log->fd == NGX_INVALID_FILE)
    {
        return;
    }

    tp = ngx_timeofday();
    last = buf + sizeof(buf);
    elen = (extra && extra->len < 3072) ? extra->len : 0;

    if (lmcf->log_pretty) {
        p = ngx_sprintf(buf, "[");
        p = ngx_http_linguamate_iso_time(p, tp->sec, tp->msec);
        p = ngx_slprintf(p, last - elen - 2, "] %s (%P): %V evt=%s",
                         ngx_http_linguamate_level_name(level), ngx_pid,
                         msg, evt);
        if (elen) {
            *p++ = ' ';
            p = ngx_cpymem(p, extra->data + 1, elen - 1);
        }

        *p++ = '\n';

    } else {
        p = ngx_http_linguamate_log_head(buf, lmcf, level, evt, tp);

        /* a long hostname leaves less room: the extra fields must fit */

        if (elen + 64 > (size_t) (last - p)) {
            elen = 0;
        }

        /* cut a long message on a whole escaped character */

        room = (size_t) (last - p) - elen - sizeof("\"}\n");
        mlen = msg->len;

        while (mlen
               && ngx_http_linguamate_json_escape_len(msg->data, mlen) > room)
        {
            mlen = mlen > 64 ? mlen - 64 : 0;
        }

        p = ngx_http_linguamate_json_escape(p, msg->data, mlen);
        *p++ = '"';

        if (elen) {
            p = ngx_cpymem(p, extra->data, elen);
        }

        *p++ = '}';
        *p++ = '\n';
    }

    (void) ngx_write_fd(lmcf->log->fd, buf, p - buf);
}


static ngx_uint_t
ngx_http_linguamate_status_level(ngx_http_request_t *r)
{
    ngx_uint_t  status;

    status = r->err_status ? r->err_status : r->headers_out.status;

    if (status >= 500 || status == 0) {
        return NGX_HTTP_LINGUAMATE_LOG_ERROR;
    }

    if (status >= 400) {
        return NGX_HTTP_LINGUAMATE_LOG_WARN;
    }

    return NGX_HTTP_LINGUAMATE_LOG_INFO;
}


ngx_int_t
ngx_http_linguamate_log_enabled_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_http_linguamate_main_conf_t  *lmcf;

    lmcf = ngx_http_get_module_main_conf(r, ngx_http_linguamate_module);

    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;

    if (ngx_http_linguamate_status_level(r)
        >= ngx_http_linguamate_log_threshold(lmcf))
    {
        v->data = (u_char *) "1";
        v->len = 1;

    } else {
        v->data = (u_char *) "";
        v->len = 0;
    }

    return NGX_OK;
}


/*
 * The request line.  The path is the URI as the client sent it, without
 * the query string (which may carry secrets), escaped for JSON.
 */

ngx_int_t
ngx_http_linguamate_log_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    u_char                           *p, *q, *line;
    size_t                            len, plen, hlen, mlen;
    ngx_str_t                         path, method;
    ngx_int_t                         ms;
    ngx_uint_t                        level, status;
    ngx_time_t                       *tp;
    ngx_http_linguamate_ctx_t        *ctx;
    ngx_http_linguamate_main_conf_t  *lmcf;

    lmcf = ngx_http_get_module_main_conf(r, ngx_http_linguamate_module);

    ctx = ngx_http_linguamate_get_ctx(r);
    if (ctx == NULL) {
        return NGX_ERROR;
    }

    tp = ngx_timeofday();
    ms = (ngx_int_t) ((tp->sec - r->start_sec) * 1000
                      + (tp->msec - r->start_msec));
    if (ms < 0) {
        ms = 0;
    }

    status = r->err_status ? r->err_status : r->headers_out.status;
    level = ngx_http_linguamate_status_level(r);

    path = r->unparsed_uri;
    q = ngx_strlchr(path.data, path.data + path.len, '?');
    if (q) {
        path.len = q - path.data;
    }

    if (path.len == 0) {
        ngx_str_set(&path, "-");
    }

    /*
     * the method as the client sent it: an error_page redirect rewrites
     * r->method_name to GET, the request line keeps the original
     */

    method.data = r->request_line.data;
    method.len = 0;

    if (method.data) {
        while (method.len < r->request_line.len
               && method.data[method.len] != ' ')
        {
            method.len++;
        }
    }

    if (method.len == 0) {
        ngx_str_set(&method, "-");
    }

    plen = ngx_http_linguamate_json_escape_len(path.data, path.len);
    mlen = ngx_http_linguamate_json_escape_len(method.data, method.len);
    hlen = ngx_http_linguamate_json_escape_len(lmcf->hostname.data,
                                               lmcf->hostname.len);

    len = sizeof("{\"level\":,\"time\":,\"pid\":,\"hostname\":\"\","
                 "\"env\":\"\",\"evt\":\"http_request\",\"msg\":\"  ms\","
                 "\"req\":{\"method\":\"\",\"path\":\"\",\"status\":,"
                 "\"duration\":},\"corr\":{\"correlationId\":\"\","
                 "\"sessionId\":\"\"}}")
          + NGX_INT_T_LEN * 6 + NGX_TIME_T_LEN + 3 + NGX_INT64_LEN
          + hlen + lmcf->env_name.len
          + 2 * (plen + mlen) + NGX_HTTP_LINGUAMATE_ISO_LEN
          + ctx->corr_id.len + ctx->session_id.len;

    line = ngx_pnalloc(r->pool, len);
    if (line == NULL) {
        return NGX_ERROR;
    }

    if (lmcf->log_pretty) {
        p = ngx_sprintf(line, "[");
        p = ngx_http_linguamate_iso_time(p, tp->sec, tp->msec);
        p = ngx_sprintf(p, "] %s (%P): ",
                        ngx_http_linguamate_level_name(level), ngx_pid);
        p = ngx_http_linguamate_json_escape(p, method.data, method.len);
        *p++ = ' ';
        p = ngx_http_linguamate_json_escape(p, path.data, path.len);
        p = ngx_sprintf(p, " %ui %ims corr=%V", status, ms, &ctx->corr_id);

        if (ctx->session_id.len) {
            p = ngx_sprintf(p, " session=%V", &ctx->session_id);
        }

    } else {
        p = ngx_http_linguamate_log_head(line, lmcf, level, "http_request",
                                         tp);
        p = ngx_http_linguamate_json_escape(p, method.data, method.len);
        *p++ = ' ';
        p = ngx_http_linguamate_json_escape(p, path.data, path.len);
        p = ngx_sprintf(p, " %ui %ims\",\"req\":{\"method\":\"", status, ms);
        p = ngx_http_linguamate_json_escape(p, method.data, method.len);
        p = ngx_cpymem(p, "\",\"path\":\"", sizeof("\",\"path\":\"") - 1);
        p = ngx_http_linguamate_json_escape(p, path.data, path.len);
        p = ngx_sprintf(p, "\",\"status\":%ui,\"duration\":%i},"
                        "\"corr\":{\"correlationId\":\"%V\"",
                        status, ms, &ctx->corr_id);

        if (ctx->session_id.len) {
            p = ngx_sprintf(p, ",\"sessionId\":\"%V\"", &ctx->session_id);
        }

        *p++ = '}';
        *p++ = '}';
    }

    v->data = line;
    v->len = p - line;
    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;

    return NGX_OK;
}
