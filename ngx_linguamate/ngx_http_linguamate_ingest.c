/*
 * Copyright (C) ngx_linguamate developers
 *
 * The app's own telemetry, two content handlers:
 *
 *   POST /api/ingest/logs        a signed batch of client log records;
 *                                each record becomes one pino line of
 *                                the server log, at its own level
 *   POST /api/analytics/events   a batch of analytics events, one JSON
 *                                line each in the event log
 *
 * Bodies are at most 1 MB, in memory, JSON.  They are checked for nesting
 * before yajl parses them (its tree is built and freed recursively), the
 * tree is freed by a pool cleanup whatever the outcome, and every problem
 * found (up to a bound) is answered in one 400 VALIDATION_ERROR.  What is
 * written is bounded: record fields are re-serialised from the tree into
 * a fixed budget, secrets redacted, and cut with a marker where they do
 * not fit, so that every line stays one valid JSON object.
 */


#include <yajl/yajl_tree.h>

#include "ngx_http_linguamate_module.h"
#include "ngx_http_linguamate_json.h"
#include "ngx_http_linguamate_log.h"
#include "ngx_http_linguamate_metrics.h"
#include "ngx_http_linguamate_ingest.h"
#include "ngx_http_linguamate_ingest_parse.h"


static void ngx_http_linguamate_ingest_body(ngx_http_request_t *r);
static ngx_int_t ngx_http_linguamate_ingest_read(ngx_http_request_t *r,
    ngx_uint_t ep, yajl_val *root, ngx_str_t *body, ngx_int_t *rc);
static ngx_int_t ngx_http_linguamate_json_type(ngx_http_request_t *r);
static ngx_int_t ngx_http_linguamate_ingest_logs(ngx_http_request_t *r,
    ngx_http_linguamate_ctx_t *ctx, yajl_val root, ngx_str_t *body,
    ngx_http_linguamate_problems_t *pb);
static ngx_int_t ngx_http_linguamate_analytics(ngx_http_request_t *r,
    ngx_http_linguamate_ctx_t *ctx, yajl_val root,
    ngx_http_linguamate_problems_t *pb);
static void ngx_http_linguamate_log_record(ngx_http_request_t *r,
    ngx_http_linguamate_ctx_t *ctx, yajl_val rec,
    ngx_http_linguamate_client_level_t *lv);
static ngx_int_t ngx_http_linguamate_write_event(ngx_http_request_t *r,
    ngx_http_linguamate_ctx_t *ctx, yajl_val ev);
static void ngx_http_linguamate_rejected(ngx_http_request_t *r,
    ngx_uint_t ep, ngx_uint_t reason);
static ngx_int_t ngx_http_linguamate_reject(ngx_http_request_t *r,
    ngx_uint_t ep, ngx_uint_t reason, ngx_uint_t status);
static ngx_int_t ngx_http_linguamate_send_problems(ngx_http_request_t *r,
    ngx_uint_t ep, ngx_http_linguamate_problems_t *pb);
static ngx_int_t ngx_http_linguamate_send_count(ngx_http_request_t *r,
    ngx_uint_t count);
static u_char *ngx_http_linguamate_put_user(u_char *p, u_char *end,
    ngx_http_linguamate_ctx_t *ctx, ngx_uint_t *cut);
static void ngx_http_linguamate_yajl_free(void *data);


/* the optional objects of a record, in the order they are written */
static const char  *ngx_http_linguamate_record_objects[] = {
    "user", "device", "req", "data", NULL
};


/* linguamate_event_log PATH | off */

char *
ngx_http_linguamate_event_log(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_linguamate_main_conf_t *lmcf = conf;

    ngx_str_t  *value;

    if (lmcf->event_log_path.data) {
        return "is duplicate";
    }

    value = cf->args->elts;
    lmcf->event_log_path = value[1];

    if (value[1].len == 3 && ngx_strncmp(value[1].data, "off", 3) == 0) {
        return NGX_CONF_OK;
    }

    if (value[1].len == 0) {
        return "needs a path or \"off\"";
    }

    /* opened (append) by the cycle, reopened on USR1 with the others */

    lmcf->event_log = ngx_conf_open_file(cf->cycle, &value[1]);
    if (lmcf->event_log == NULL) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/* both endpoints: method, type and size first, then the body is read */

ngx_int_t
ngx_http_linguamate_ingest_handler(ngx_http_request_t *r)
{
    ngx_int_t                        rc;
    ngx_uint_t                       ep;
    ngx_http_linguamate_loc_conf_t  *llcf;

    llcf = ngx_http_get_module_loc_conf(r, ngx_http_linguamate_module);

    ep = (llcf->endpoint == NGX_HTTP_LINGUAMATE_EP_INGEST_LOGS)
         ? NGX_HTTP_LINGUAMATE_CM_INGEST : NGX_HTTP_LINGUAMATE_CM_ANALYTICS;

    if (r->method != NGX_HTTP_POST) {
        return ngx_http_linguamate_send_not_allowed(r, "POST");
    }

    if (ngx_http_linguamate_json_type(r) != NGX_OK) {
        return ngx_http_linguamate_reject(r, ep,
                                          NGX_HTTP_LINGUAMATE_CM_VALIDATION,
                                          NGX_HTTP_UNSUPPORTED_MEDIA_TYPE);
    }

    if (r->headers_in.content_length_n > NGX_HTTP_LINGUAMATE_INGEST_BODY_MAX)
    {
        return ngx_http_linguamate_reject(r, ep,
                                          NGX_HTTP_LINGUAMATE_CM_TOO_LARGE,
                                          NGX_HTTP_REQUEST_ENTITY_TOO_LARGE);
    }

    rc = ngx_http_read_client_request_body(r,
                                           ngx_http_linguamate_ingest_body);

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        if (rc == NGX_HTTP_REQUEST_ENTITY_TOO_LARGE) {
            ngx_http_linguamate_rejected(r, ep,
                                         NGX_HTTP_LINGUAMATE_CM_TOO_LARGE);
        }

        return rc;
    }

    return NGX_DONE;
}


/* the body is in: parse it, then the endpoint checks and writes it */

static void
ngx_http_linguamate_ingest_body(ngx_http_request_t *r)
{
    yajl_val                         root;
    ngx_int_t                        rc;
    ngx_str_t                        body;
    ngx_uint_t                       ep;
    ngx_http_linguamate_ctx_t       *ctx;
    ngx_http_linguamate_problems_t   pb;
    ngx_http_linguamate_loc_conf_t  *llcf;

    llcf = ngx_http_get_module_loc_conf(r, ngx_http_linguamate_module);

    ep = (llcf->endpoint == NGX_HTTP_LINGUAMATE_EP_INGEST_LOGS)
         ? NGX_HTTP_LINGUAMATE_CM_INGEST : NGX_HTTP_LINGUAMATE_CM_ANALYTICS;

    ctx = ngx_http_linguamate_get_ctx(r);
    root = NULL;

    if (ctx == NULL
        || ngx_http_linguamate_problems_init(r->pool, &pb,
                                   ep == NGX_HTTP_LINGUAMATE_CM_INGEST
                                   ? "logs" : "events")
           != NGX_OK)
    {
        rc = NGX_HTTP_INTERNAL_SERVER_ERROR;

    } else if (ngx_http_linguamate_ingest_read(r, ep, &root, &body, &rc)
               != NGX_OK)
    {
        /* answered: rc */

    } else if (ep == NGX_HTTP_LINGUAMATE_CM_INGEST) {
        rc = ngx_http_linguamate_ingest_logs(r, ctx, root, &body, &pb);

    } else {
        rc = ngx_http_linguamate_analytics(r, ctx, root, &pb);
    }

    ngx_http_finalize_request(r, rc);
}


/* "application/json", any case, optionally followed by parameters */

static ngx_int_t
ngx_http_linguamate_json_type(ngx_http_request_t *r)
{
    size_t      n;
    u_char     *p;
    ngx_str_t  *ct;

    if (r->headers_in.content_type == NULL) {
        return NGX_DECLINED;
    }

    ct = &r->headers_in.content_type->value;
    n = sizeof("application/json") - 1;

    if (ct->len < n
        || ngx_strncasecmp(ct->data, (u_char *) "application/json", n) != 0)
    {
        return NGX_DECLINED;
    }

    for (p = ct->data + n; p < ct->data + ct->len; p++) {
        if (*p == ';') {
            return NGX_OK;
        }

        if (*p != ' ' && *p != '\t') {
            return NGX_DECLINED;
        }
    }

    return NGX_OK;
}


/*
 * The body as one NUL-terminated buffer and its tree.  NGX_OK, or
 * NGX_DECLINED with the answer already made in *rc.
 */

static ngx_int_t
ngx_http_linguamate_ingest_read(ngx_http_request_t *r, ngx_uint_t ep,
    yajl_val *root, ngx_str_t *body, ngx_int_t *rc)
{
    ngx_pool_cleanup_t        *cln;
    ngx_http_core_loc_conf_t  *clcf;

    /*
     * the body is held in memory, up to client_body_buffer_size: a larger
     * one is refused whether or not it happened to arrive with the header
     */

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

    switch (ngx_http_linguamate_body(r,
                ngx_min(NGX_HTTP_LINGUAMATE_INGEST_BODY_MAX,
                        clcf->client_body_buffer_size), body))
    {
    case NGX_OK:
        break;

    case NGX_DECLINED:
        *rc = ngx_http_linguamate_reject(r, ep,
                                         NGX_HTTP_LINGUAMATE_CM_TOO_LARGE,
                                         NGX_HTTP_REQUEST_ENTITY_TOO_LARGE);
        return NGX_DECLINED;

    default:
        *rc = NGX_HTTP_INTERNAL_SERVER_ERROR;
        return NGX_DECLINED;
    }

    /* the tree is freed with the request, whatever happens next */

    cln = ngx_pool_cleanup_add(r->pool, sizeof(yajl_val));
    if (cln == NULL) {
        *rc = NGX_HTTP_INTERNAL_SERVER_ERROR;
        return NGX_DECLINED;
    }

    *(yajl_val *) cln->data = NULL;
    cln->handler = ngx_http_linguamate_yajl_free;

    if (body->len == 0) {
        *rc = ngx_http_linguamate_validation_error(r, "body",
                                                   "must not be empty");
        goto invalid;
    }

    if (ngx_strlen(body->data) != body->len
        || !ngx_http_linguamate_json_depth_ok(body->data, body->len,
                                          NGX_HTTP_LINGUAMATE_INGEST_DEPTH))
    {
        *rc = ngx_http_linguamate_validation_error(r, "body",
                  "must be JSON nested at most 32 deep, without NUL bytes");
        goto invalid;
    }

    *root = yajl_tree_parse((const char *) body->data, NULL, 0);
    *(yajl_val *) cln->data = *root;

    if (*root == NULL) {
        *rc = ngx_http_linguamate_validation_error(r, "body",
                                   "must be valid JSON in UTF-8");
        goto invalid;
    }

    if (!YAJL_IS_OBJECT(*root)) {
        *rc = ngx_http_linguamate_validation_error(r, "body",
                                                   "must be a JSON object");
        goto invalid;
    }

    if (ngx_http_linguamate_numbers_ok(*root) != NGX_OK) {
        *rc = ngx_http_linguamate_validation_error(r, "body",
                                   "holds a number out of range");
        goto invalid;
    }

    return NGX_OK;

invalid:

    ngx_http_linguamate_rejected(r, ep, NGX_HTTP_LINGUAMATE_CM_VALIDATION);
    return NGX_DECLINED;
}


static void
ngx_http_linguamate_yajl_free(void *data)
{
    yajl_val  *root = data;

    if (*root) {
        yajl_tree_free(*root);
        *root = NULL;
    }
}


/* POST /api/ingest/logs */

static ngx_int_t
ngx_http_linguamate_ingest_logs(ngx_http_request_t *r,
    ngx_http_linguamate_ctx_t *ctx, yajl_val root, ngx_str_t *body,
    ngx_http_linguamate_problems_t *pb)
{
    size_t                               i;
    yajl_val                             logs, rec, lvl, hmac;
    ngx_http_linguamate_main_conf_t     *lmcf;
    ngx_time_t                          *tp;
    ngx_http_linguamate_client_level_t  *lv;
    static const char                   *hmac_path[] = { "sig", "hmac",
                                                         NULL };

    lmcf = ngx_http_get_module_main_conf(r, ngx_http_linguamate_module);

    tp = ngx_timeofday();
    ngx_http_linguamate_check_logs(root, pb,
                                   (int64_t) tp->sec * 1000 + tp->msec);

    if (pb->count) {
        return ngx_http_linguamate_send_problems(r,
                                      NGX_HTTP_LINGUAMATE_CM_INGEST, pb);
    }

    /* without LOG_SIGNING_KEY the batch is taken unsigned */

    if (lmcf->log_signing_key.len) {
        hmac = yajl_tree_get(root, hmac_path, yajl_t_string);

        if (ngx_http_linguamate_signature_ok(r->pool,
                                             &lmcf->log_signing_key, body,
                                             hmac)
            != NGX_OK)
        {
            return ngx_http_linguamate_reject(r,
                                       NGX_HTTP_LINGUAMATE_CM_INGEST,
                                       NGX_HTTP_LINGUAMATE_CM_SIGNATURE,
                                       NGX_HTTP_UNAUTHORIZED);
        }
    }

    logs = ngx_http_linguamate_member(root, "logs", NULL);

    for (i = 0; i < logs->u.array.len; i++) {
        rec = logs->u.array.values[i];
        lvl = ngx_http_linguamate_member(rec, "lvl", NULL);
        lv = ngx_http_linguamate_client_level(lvl->u.string);

        ngx_http_linguamate_log_record(r, ctx, rec, lv);
        ngx_http_linguamate_metrics_client(r, lv->counter, 1);
    }

    return ngx_http_linguamate_send_count(r, logs->u.array.len);
}


/*
 * One client record as one pino line at its level:
 * evt and msg are the record's; then "source":"client", its cat, lvl and
 * ts, the user of a verified token, its corr (or the request's
 * correlation id), and its user, device, req and data objects with
 * secrets redacted, cut to fit the line.
 */

static void
ngx_http_linguamate_log_record(ngx_http_request_t *r,
    ngx_http_linguamate_ctx_t *ctx, yajl_val rec,
    ngx_http_linguamate_client_level_t *lv)
{
    u_char                           *p, *q, *end, *evt, *s;
    u_char                            buf[NGX_HTTP_LINGUAMATE_INGEST_EXTRA];
    size_t                            len;
    yajl_val                          v;
    ngx_str_t                         msg, extra;
    ngx_uint_t                        k, cut;
    ngx_http_linguamate_main_conf_t  *lmcf;

    lmcf = ngx_http_get_module_main_conf(r, ngx_http_linguamate_module);

    /* the line's evt is printed as given: escape it (at most 6 x 128) */

    v = ngx_http_linguamate_member(rec, "evt", NULL);
    s = (u_char *) v->u.string;
    len = ngx_strlen(s);

    evt = ngx_pnalloc(r->pool,
                      ngx_http_linguamate_json_escape_len(s, len) + 1);
    if (evt == NULL) {
        return;
    }

    *ngx_http_linguamate_json_escape(evt, s, len) = '\0';

    v = ngx_http_linguamate_member(rec, "msg", NULL);
    s = (u_char *) v->u.string;
    len = ngx_strlen(s);

    if (ngx_http_linguamate_secret_value(s, len)) {
        ngx_str_set(&msg, "[REDACTED]");

    } else {
        msg.data = s;
        msg.len = ngx_http_linguamate_utf8_cut(s, len,
                                               NGX_HTTP_LINGUAMATE_INGEST_MSG);
    }

    /* room is kept for ',"truncated":true' */

    end = buf + sizeof(buf) - sizeof(",\"truncated\":true");
    cut = 0;

    p = ngx_cpymem(buf, ",\"source\":\"client\",\"cat\":",
                   sizeof(",\"source\":\"client\",\"cat\":") - 1);

    v = ngx_http_linguamate_member(rec, "cat", NULL);

    if (lv->security) {
        p = ngx_cpymem(p, "\"security\",\"security\":true,\"clientCat\":",
                  sizeof("\"security\",\"security\":true,\"clientCat\":") - 1);
    }

    /*
     * cat and ts are 64 bytes at most (6 each escaped), lvl 8: with the
     * fixed parts at most 870 bytes, always within the buffer
     */

    p = ngx_http_linguamate_put_value(p, end, v);
    p = ngx_sprintf(p, ",\"lvl\":\"%V\",\"clientTs\":", &lv->name);
    p = ngx_http_linguamate_put_value(p, end,
                                 ngx_http_linguamate_member(rec, "ts", NULL));

    p = ngx_http_linguamate_put_user(p, end, ctx, &cut);

    v = ngx_http_linguamate_member(rec, "corr", NULL);

    if (YAJL_IS_OBJECT(v)) {
        p = ngx_http_linguamate_put_member(p, end, "corr", v, &cut);

    } else if (p >= end
               || (size_t) (end - p)
                  < sizeof(",\"corr\":{\"correlationId\":}") + 2)
    {
        /* no room left after a long user id: the correlation id is cut */
        cut = 1;

    } else {
        q = ngx_cpymem(p, ",\"corr\":{\"correlationId\":",
                       sizeof(",\"corr\":{\"correlationId\":") - 1);
        q = ngx_http_linguamate_put_string(q, end - 1, ctx->corr_id.data,
                                           ctx->corr_id.len,
                                           NGX_HTTP_LINGUAMATE_CORR_ID_MAX);
        if (q) {
            *q++ = '}';
            p = q;

        } else {
            cut = 1;
        }
    }

    for (k = 0; ngx_http_linguamate_record_objects[k]; k++) {
        v = ngx_http_linguamate_member(rec,
                                       ngx_http_linguamate_record_objects[k],
                                       NULL);

        if (YAJL_IS_OBJECT(v)) {
            p = ngx_http_linguamate_put_member(p, end,
                                        ngx_http_linguamate_record_objects[k],
                                        v, &cut);
        }
    }

    if (cut) {
        p = ngx_cpymem(p, ",\"truncated\":true",
                       sizeof(",\"truncated\":true") - 1);
    }

    extra.data = buf;
    extra.len = p - buf;

    ngx_http_linguamate_log_event(lmcf, lv->level, (const char *) evt, &msg,
                                  &extra);
}


/* ',"userId":SUB' of a verified token, when there is one and it fits */

static u_char *
ngx_http_linguamate_put_user(u_char *p, u_char *end,
    ngx_http_linguamate_ctx_t *ctx, ngx_uint_t *cut)
{
    u_char  *q;

    if (!ctx->auth_ok || ctx->claims.sub.len == 0) {
        return p;
    }

    if (end - p < (ssize_t) sizeof(",\"userId\":")) {
        *cut = 1;
        return p;
    }

    q = ngx_cpymem(p, ",\"userId\":", sizeof(",\"userId\":") - 1);
    q = ngx_http_linguamate_put_string(q, end, ctx->claims.sub.data,
                                       ctx->claims.sub.len, 128);
    if (q == NULL) {
        *cut = 1;
        return p;
    }

    return q;
}


/* POST /api/analytics/events */

static ngx_int_t
ngx_http_linguamate_analytics(ngx_http_request_t *r,
    ngx_http_linguamate_ctx_t *ctx, yajl_val root,
    ngx_http_linguamate_problems_t *pb)
{
    size_t    i;
    yajl_val  events;

    events = ngx_http_linguamate_check_batch(root, pb,
                                             ngx_http_linguamate_check_event);

    if (pb->count) {
        return ngx_http_linguamate_send_problems(r,
                                      NGX_HTTP_LINGUAMATE_CM_ANALYTICS, pb);
    }

    for (i = 0; i < events->u.array.len; i++) {
        if (ngx_http_linguamate_write_event(r, ctx, events->u.array.values[i])
            != NGX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    ngx_http_linguamate_metrics_client(r, NGX_HTTP_LINGUAMATE_CM_ANALYTICS_N,
                                       events->u.array.len);

    return ngx_http_linguamate_send_count(r, events->u.array.len);
}


/*
 * One event: a line of its own in linguamate_event_log (one write(), so
 * lines of several workers never interleave), or else an
 * "analytics_event" line of the server log.
 */

static ngx_int_t
ngx_http_linguamate_write_event(ngx_http_request_t *r,
    ngx_http_linguamate_ctx_t *ctx, yajl_val ev)
{
    u_char                           *line, *p, *end;
    size_t                            size;
    int64_t                           ms;
    yajl_val                          name, props;
    ngx_str_t                         msg, extra;
    ngx_uint_t                        cut, file;
    ngx_time_t                       *tp;
    ngx_http_linguamate_main_conf_t  *lmcf;

    lmcf = ngx_http_get_module_main_conf(r, ngx_http_linguamate_module);

    file = (lmcf->event_log != NULL);
    size = file ? NGX_HTTP_LINGUAMATE_EVENT_LINE
                : NGX_HTTP_LINGUAMATE_INGEST_EXTRA;

    line = ngx_pnalloc(r->pool, size);
    if (line == NULL) {
        return NGX_ERROR;
    }

    end = line + size - sizeof(",\"truncated\":true}\n");
    tp = ngx_timeofday();
    ms = 0;

    name = ngx_http_linguamate_member(ev, "name", NULL);
    props = ngx_http_linguamate_member(ev, "properties", NULL);
    (void) ngx_http_linguamate_event_time(
               ngx_http_linguamate_member(ev, "time", NULL), &ms);

    /* name: 128 bytes of [A-Za-z0-9_.:-]; corr id: at most 128 */

    if (file) {
        p = ngx_sprintf(line, "{\"time\":%T%03M,\"evt\":\"analytics_event\","
                        "\"name\":\"%s\",", tp->sec, tp->msec,
                        name->u.string);

    } else {
        p = ngx_sprintf(line, ",\"cat\":\"analytics\",\"name\":\"%s\",",
                        name->u.string);
    }

    p = ngx_cpymem(p, "\"eventTime\":\"", sizeof("\"eventTime\":\"") - 1);
    p = ngx_http_linguamate_iso_time(p, (time_t) (ms / 1000),
                                     (ngx_msec_t) (ms % 1000));

    if (file) {
        p = ngx_sprintf(p, "\",\"correlationId\":\"%V\"", &ctx->corr_id);

    } else {
        p = ngx_sprintf(p, "\",\"corr\":{\"correlationId\":\"%V\"}",
                        &ctx->corr_id);
    }

    cut = 0;
    p = ngx_http_linguamate_put_user(p, end, ctx, &cut);

    if (YAJL_IS_OBJECT(props)) {
        p = ngx_http_linguamate_put_member(p, end, "properties", props, &cut);
    }

    if (cut) {
        p = ngx_cpymem(p, ",\"truncated\":true",
                       sizeof(",\"truncated\":true") - 1);
    }

    if (!file) {
        msg.data = (u_char *) name->u.string;
        msg.len = ngx_strlen(msg.data);
        extra.data = line;
        extra.len = p - line;

        ngx_http_linguamate_log_event(lmcf, NGX_HTTP_LINGUAMATE_LOG_INFO,
                                      "analytics_event", &msg, &extra);
        return NGX_OK;
    }

    *p++ = '}';
    *p++ = '\n';

    if (lmcf->event_log->fd == NGX_INVALID_FILE) {
        return NGX_OK;
    }

    if (ngx_write_fd(lmcf->event_log->fd, line, p - line) != p - line) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, ngx_errno,
                      "linguamate: could not write an event to \"%V\"",
                      &lmcf->event_log->name);
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_linguamate_send_problems(ngx_http_request_t *r, ngx_uint_t ep,
    ngx_http_linguamate_problems_t *pb)
{
    ngx_uint_t  reason;
    ngx_str_t   extra;

    reason = (pb->count == pb->skew) ? NGX_HTTP_LINGUAMATE_CM_SKEW
                                     : NGX_HTTP_LINGUAMATE_CM_VALIDATION;

    ngx_http_linguamate_rejected(r, ep, reason);

    *pb->pos++ = ']';

    extra.data = pb->start;
    extra.len = pb->pos - pb->start;

    return ngx_http_linguamate_send_error(r, NGX_HTTP_BAD_REQUEST,
                                          "VALIDATION_ERROR",
                                          "Invalid request body", &extra);
}


static void
ngx_http_linguamate_rejected(ngx_http_request_t *r, ngx_uint_t ep,
    ngx_uint_t reason)
{
    ngx_http_linguamate_metrics_client(r, NGX_HTTP_LINGUAMATE_CM_REJECTED
                                          + ep * NGX_HTTP_LINGUAMATE_CM_REASONS
                                          + reason, 1);
}


/* a refused batch: 401 (signature), 413 or 415, counted */

static ngx_int_t
ngx_http_linguamate_reject(ngx_http_request_t *r, ngx_uint_t ep,
    ngx_uint_t reason, ngx_uint_t status)
{
    ngx_str_t  extra;

    ngx_http_linguamate_rejected(r, ep, reason);

    switch (status) {

    case NGX_HTTP_UNAUTHORIZED:
        ngx_str_set(&extra, ",\"reason\":\"BAD_SIGNATURE\"");
        return ngx_http_linguamate_send_error(r, status, "UNAUTHORIZED",
                                              "Invalid signature", &extra);

    case NGX_HTTP_UNSUPPORTED_MEDIA_TYPE:
        return ngx_http_linguamate_send_error(r, status,
                                              "UNSUPPORTED_MEDIA_TYPE",
                                              "Content-Type must be "
                                              "application/json", NULL);

    default:
        return ngx_http_linguamate_send_error(r, status, "PAYLOAD_TOO_LARGE",
                                              "Payload too large", NULL);
    }
}


static ngx_int_t
ngx_http_linguamate_send_count(ngx_http_request_t *r, ngx_uint_t count)
{
    ngx_buf_t  *b;

    b = ngx_create_temp_buf(r->pool, sizeof("{\"success\":true,\"count\":}\n")
                                     + NGX_INT_T_LEN);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b->last = ngx_sprintf(b->last, "{\"success\":true,\"count\":%ui}\n",
                          count);

    return ngx_http_linguamate_send_json(r, NGX_HTTP_OK, b);
}
