/*
 * Copyright (C) ngx_linguamate developers
 *
 * Content handlers: /api, /api/health (and live, ready, detailed),
 * /api/info, the 404 of unknown routes, and the error page that turns
 * every error nginx itself produces into the contract's envelope.
 */


#include "ngx_http_linguamate_module.h"
#include "ngx_http_linguamate_json.h"
#include "ngx_http_linguamate_shm.h"
#include "ngx_http_linguamate_auth.h"
#include "ngx_http_linguamate_metrics.h"
#include "ngx_http_linguamate_breaker.h"
#include "ngx_http_linguamate_cluster.h"
#include "ngx_http_linguamate_toolkit.h"
#include "ngx_http_linguamate_flags.h"
#include "ngx_http_linguamate_ingest.h"
#include "ngx_http_linguamate_health.h"
#include "ngx_http_linguamate_admin.h"


/* an endpoint of NGX_HTTP_LINGUAMATE_ENDPOINTS */
typedef struct {
    ngx_http_handler_pt   handler;
    ngx_uint_t            methods;      /* 0: the handler checks */
    const char           *allow;        /* of a 405 */
} ngx_http_linguamate_endpoint_t;


static ngx_int_t ngx_http_linguamate_root(ngx_http_request_t *r);
static ngx_int_t ngx_http_linguamate_health(ngx_http_request_t *r);
static ngx_int_t ngx_http_linguamate_health_detailed(ngx_http_request_t *r);
static ngx_int_t ngx_http_linguamate_health_answer(ngx_http_request_t *r,
    ngx_uint_t detailed);
static ngx_int_t ngx_http_linguamate_health_live(ngx_http_request_t *r);
static ngx_int_t ngx_http_linguamate_health_ready(ngx_http_request_t *r);
static ngx_int_t ngx_http_linguamate_info(ngx_http_request_t *r);
static ngx_int_t ngx_http_linguamate_not_found(ngx_http_request_t *r);
static ngx_int_t ngx_http_linguamate_error_page(ngx_http_request_t *r);
static ngx_int_t ngx_http_linguamate_send_literal(ngx_http_request_t *r,
    ngx_uint_t status, ngx_str_t *body);
static ngx_uint_t ngx_http_linguamate_uptime(
    ngx_http_linguamate_main_conf_t *lmcf);
static const char *ngx_http_linguamate_not_ready(
    ngx_http_linguamate_main_conf_t *lmcf);



static ngx_str_t  ngx_http_linguamate_live_body =
    ngx_string("{\"status\":\"alive\"}\n");
static ngx_str_t  ngx_http_linguamate_ready_body =
    ngx_string("{\"status\":\"ready\"}\n");


/* linguamate_endpoint: the handlers of NGX_HTTP_LINGUAMATE_ENDPOINTS */

#define NGX_HTTP_LINGUAMATE_EP_ENTRY(id, name, h, m, probe, cache, maint)    \
    [NGX_HTTP_LINGUAMATE_EP_##id] = { ngx_http_linguamate_##h,               \
                                      NGX_HTTP_LINGUAMATE_M_##m,             \
                                      NGX_HTTP_LINGUAMATE_M_##m##_ALLOW },

static ngx_http_linguamate_endpoint_t  ngx_http_linguamate_endpoint_table[] = {
    [NGX_HTTP_LINGUAMATE_EP_NONE] = { NULL, 0, NULL },
    NGX_HTTP_LINGUAMATE_ENDPOINTS(NGX_HTTP_LINGUAMATE_EP_ENTRY)
};

_Static_assert(sizeof(ngx_http_linguamate_endpoint_table)
               / sizeof(ngx_http_linguamate_endpoint_t)
               == NGX_HTTP_LINGUAMATE_NENDPOINTS,
               "an entry per endpoint");


ngx_int_t
ngx_http_linguamate_endpoint_handler(ngx_http_request_t *r)
{
    ngx_http_linguamate_endpoint_t  *ep;
    ngx_http_linguamate_loc_conf_t  *llcf;

    llcf = ngx_http_get_module_loc_conf(r, ngx_http_linguamate_module);

    if (llcf->endpoint == NGX_HTTP_LINGUAMATE_EP_NONE
        || llcf->endpoint >= NGX_HTTP_LINGUAMATE_NENDPOINTS)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ep = &ngx_http_linguamate_endpoint_table[llcf->endpoint];

    /*
     * the methods of the list: anything else gets a 405 envelope with
     * Allow; a GET or HEAD endpoint discards a body, as stub_status does
     */

    if (ep->methods) {
        if (!(r->method & ep->methods)) {
            return ngx_http_linguamate_send_not_allowed(r, ep->allow);
        }

        if (!(ep->methods & (NGX_HTTP_POST|NGX_HTTP_PUT|NGX_HTTP_PATCH))
            && ngx_http_discard_request_body(r) != NGX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    return ep->handler(r);
}


static ngx_int_t
ngx_http_linguamate_send_literal(ngx_http_request_t *r, ngx_uint_t status,
    ngx_str_t *body)
{
    ngx_buf_t  *b;

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b->pos = body->data;
    b->last = body->data + body->len;
    b->memory = 1;

    return ngx_http_linguamate_send_json(r, status, b);
}


static ngx_uint_t
ngx_http_linguamate_uptime(ngx_http_linguamate_main_conf_t *lmcf)
{
    ngx_time_t  *tp;
    ngx_msec_t   now;

    tp = ngx_timeofday();
    now = (ngx_msec_t) tp->sec * 1000 + tp->msec;

    return now > lmcf->master_start ? (now - lmcf->master_start) / 1000 : 0;
}


static ngx_int_t
ngx_http_linguamate_root(ngx_http_request_t *r)
{
    ngx_buf_t   *b;
    ngx_time_t  *tp;

    b = ngx_create_temp_buf(r->pool, 160);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    tp = ngx_timeofday();

    b->last = ngx_cpymem(b->last, "{\"status\":\"ok\",\"message\":"
                         "\"Language Learning API is running\","
                         "\"timestamp\":\"",
                         sizeof("{\"status\":\"ok\",\"message\":"
                                "\"Language Learning API is running\","
                                "\"timestamp\":\"") - 1);
    b->last = ngx_http_linguamate_iso_time(b->last, tp->sec, tp->msec);
    b->last = ngx_cpymem(b->last, "\",\"version\":\""
                         NGX_HTTP_LINGUAMATE_VERSION "\"}\n",
                         sizeof("\",\"version\":\""
                                NGX_HTTP_LINGUAMATE_VERSION "\"}\n") - 1);

    return ngx_http_linguamate_send_json(r, NGX_HTTP_OK, b);
}


static const char *
ngx_http_linguamate_not_ready(ngx_http_linguamate_main_conf_t *lmcf)
{
    if (ngx_exiting || ngx_quit || ngx_terminate) {
        return "shutting down";
    }

    if (lmcf->not_ready.len) {
        return (const char *) lmcf->not_ready.data;
    }

    /* load balancers drain a deployment in maintenance */

    if (ngx_http_linguamate_maintenance_on(lmcf)) {
        return "maintenance";
    }

    return NULL;
}


static ngx_int_t
ngx_http_linguamate_health_live(ngx_http_request_t *r)
{
    return ngx_http_linguamate_send_literal(r, NGX_HTTP_OK,
                                            &ngx_http_linguamate_live_body);
}


static ngx_int_t
ngx_http_linguamate_health_ready(ngx_http_request_t *r)
{
    size_t                            len;
    ngx_buf_t                        *b;
    const char                       *reason;
    ngx_http_linguamate_main_conf_t  *lmcf;

    lmcf = ngx_http_get_module_main_conf(r, ngx_http_linguamate_module);

    reason = ngx_http_linguamate_not_ready(lmcf);

    if (reason == NULL) {
        return ngx_http_linguamate_send_literal(r, NGX_HTTP_OK,
                                             &ngx_http_linguamate_ready_body);
    }

    len = ngx_strlen(reason);

    b = ngx_create_temp_buf(r->pool, sizeof("{\"status\":\"not ready\","
                            "\"reason\":\"\"}\n")
                            + ngx_http_linguamate_json_escape_len(
                                  (u_char *) reason, len));
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b->last = ngx_sprintf(b->last, "{\"status\":\"not ready\",\"reason\":\"");
    b->last = ngx_http_linguamate_json_escape(b->last, (u_char *) reason, len);
    b->last = ngx_cpymem(b->last, "\"}\n", 3);

    return ngx_http_linguamate_send_json(r, NGX_HTTP_SERVICE_UNAVAILABLE, b);
}


static const char *
ngx_http_linguamate_worst(const char *a, const char *b)
{
    if (a[0] == 'u' || b[0] == 'u') {
        return "unhealthy";
    }

    if (a[0] == 'd' || b[0] == 'd') {
        return "degraded";
    }

    return "healthy";
}


static ngx_int_t
ngx_http_linguamate_health(ngx_http_request_t *r)
{
    return ngx_http_linguamate_health_answer(r, 0);
}


static ngx_int_t
ngx_http_linguamate_health_detailed(ngx_http_request_t *r)
{
    return ngx_http_linguamate_health_answer(r, 1);
}


static ngx_int_t
ngx_http_linguamate_health_answer(ngx_http_request_t *r, ngx_uint_t detailed)
{
    size_t                            len;
    ngx_str_t                         version;
    uint64_t                          rss, limit, pct, zpct, used;
    ngx_buf_t                        *b;
    ngx_time_t                       *tp;
    ngx_uint_t                        status, i;
    const char                       *overall, *env_status, *reason;
    const char                       *source, *mem_status, *shm_status;
    const char                       *cb_status, *redis_status;
    ngx_http_linguamate_cluster_status_t  cs;
    ngx_uint_t                        open;
    ngx_http_linguamate_zone_t      **zp;
    ngx_http_linguamate_main_conf_t  *lmcf;

    lmcf = ngx_http_get_module_main_conf(r, ngx_http_linguamate_module);

    tp = ngx_timeofday();

    /* GIT_COMMIT_SHA when it is set, else the commit compiled in */

    version = lmcf->git_commit_sha;

    if (version.len == 0
        || (version.len == sizeof("unknown") - 1
            && ngx_strncmp(version.data, "unknown", version.len) == 0))
    {
        version = ngx_http_linguamate_build_commit;
    }

    len = sizeof("{\"status\":\"ok\",\"timestamp\":\"\",\"uptime\":,"
                 "\"env\":\"\",\"version\":\"\"}\n")
          + NGX_HTTP_LINGUAMATE_ISO_LEN + NGX_INT_T_LEN
          + lmcf->env_name.len + version.len;

    if (detailed) {
        len += 1024 + 512 + NGX_INT_T_LEN * 8 + lmcf->not_ready.len * 6
               + lmcf->zones.nelts * (256 + 5 * NGX_INT64_LEN)
               + ngx_http_linguamate_breakers_json_len(lmcf);

        zp = lmcf->zones.elts;

        for (i = 0; i < lmcf->zones.nelts; i++) {
            len += zp[i]->name.len;
        }
    }

    b = ngx_create_temp_buf(r->pool, len);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    status = NGX_HTTP_OK;
    env_status = "healthy";
    mem_status = "healthy";
    shm_status = "healthy";
    cb_status = "healthy";
    redis_status = "healthy";
    open = 0;
    reason = NULL;
    rss = 0;
    limit = 0;
    pct = 0;
    source = "system";

    if (!detailed) {
        overall = "ok";

    } else {
        /*
         * environment: unhealthy while the deployment is not ready for a
         * configuration reason, degraded while it runs on warnings
         */

        reason = ngx_http_linguamate_not_ready(lmcf);

        if (lmcf->not_ready.len) {
            env_status = "unhealthy";

        } else if (lmcf->warnings.nelts) {
            env_status = "degraded";
        }

        /* memory: every nginx process against the limit */

        (void) ngx_http_linguamate_process_memory(&rss);
        limit = ngx_http_linguamate_memory_limit(lmcf, &source);
        pct = limit ? rss * 100 / limit : 0;

        if (pct > 90) {
            mem_status = "unhealthy";

        } else if (pct > 75) {
            mem_status = "degraded";
        }

        /* shared memory: a zone that is full evicts; say so */

        zp = lmcf->zones.elts;

        for (i = 0; i < lmcf->zones.nelts; i++) {
            used = zp[i]->shm_zone->shm.size
                   - zp[i]->shpool->pfree * ngx_pagesize;

            if (used * 100 / zp[i]->shm_zone->shm.size >= 95
                && (zp[i]->sh->evicted
                    || zp[i]->kind == NGX_HTTP_LINGUAMATE_ZONE_SESSION))
            {
                shm_status = "degraded";
            }
        }

        /* an open breaker: degraded (200), the guide's jq path */

        if (ngx_http_linguamate_breakers_open(lmcf)) {
            cb_status = "degraded";
        }

        /* Redis away: every replica serves from its own state (degraded) */

        ngx_http_linguamate_cluster_status(lmcf, &cs);

        if (ngx_http_linguamate_cluster_on(lmcf) && (!cs.up || cs.refused)) {
            redis_status = "degraded";
        }

        overall = ngx_http_linguamate_worst(env_status,
                      ngx_http_linguamate_worst(mem_status,
                          ngx_http_linguamate_worst(shm_status,
                              ngx_http_linguamate_worst(cb_status,
                                                        redis_status))));

        if (reason && !lmcf->not_ready.len) {
            /* draining is unhealthy; maintenance is a choice: degraded */

            overall = ngx_strcmp(reason, "maintenance") == 0
                      ? ngx_http_linguamate_worst(overall, "degraded")
                      : "unhealthy";
        }

        if (overall[0] == 'u') {
            status = NGX_HTTP_SERVICE_UNAVAILABLE;
        }
    }

    b->last = ngx_sprintf(b->last, "{\"status\":\"%s\",\"timestamp\":\"",
                          overall);
    b->last = ngx_http_linguamate_iso_time(b->last, tp->sec, tp->msec);
    b->last = ngx_sprintf(b->last, "\",\"uptime\":%ui,\"env\":\"%V\","
                          "\"version\":\"%V\"",
                          ngx_http_linguamate_uptime(lmcf), &lmcf->env_name,
                          &version);

    if (detailed) {
        b->last = ngx_sprintf(b->last, ",\"checks\":{\"memory\":{"
                              "\"status\":\"%s\",\"details\":{"
                              "\"rssMB\":%uL.%uL,\"limitMB\":%uL,"
                              "\"usedPercent\":%uL,\"limitSource\":\"%s\","
                              "\"degradedAbovePercent\":75,"
                              "\"unhealthyAbovePercent\":90}},"
                              "\"sharedMemory\":{\"status\":\"%s\","
                              "\"details\":{\"zones\":{",
                              mem_status, rss / (1024 * 1024),
                              (rss % (1024 * 1024)) * 10 / (1024 * 1024),
                              limit / (1024 * 1024), pct, source,
                              shm_status);

        zp = lmcf->zones.elts;

        for (i = 0; i < lmcf->zones.nelts; i++) {
            used = zp[i]->shm_zone->shm.size
                   - zp[i]->shpool->pfree * ngx_pagesize;
            zpct = used * 100 / zp[i]->shm_zone->shm.size;

            b->last = ngx_sprintf(b->last, "%s\"%V\":{\"sizeBytes\":%uz,"
                                  "\"usedBytes\":%uL,\"usedPercent\":%uL,"
                                  "\"entries\":%uA,\"evicted\":%uA}",
                                  i ? "," : "", &zp[i]->name,
                                  zp[i]->shm_zone->shm.size, used, zpct,
                                  zp[i]->sh->nodes, zp[i]->sh->evicted);
        }

        b->last = ngx_sprintf(b->last, "}}},\"circuitBreakers\":{"
                              "\"status\":\"%s\",\"details\":", cb_status);
        b->last = ngx_http_linguamate_breakers_json(lmcf, b->last, &open);
        if (ngx_http_linguamate_cluster_on(lmcf)) {
            b->last = ngx_sprintf(b->last, "},\"redis\":{\"status\":\"%s\","
                                  "\"details\":{\"connected\":%s,"
                                  "\"server\":\"", redis_status,
                                  cs.up ? "true" : "false");
            b->last = ngx_http_linguamate_cluster_where(lmcf, b->last,
                                                        b->last + 300);
            b->last = ngx_sprintf(b->last, "\",\"syncLagSeconds\":%M.%03M,"
                                  "\"unsyncedUpdates\":%ui,"
                                  "\"appliedFromOthers\":%ui,"
                                  "\"reconnects\":%ui,"
                                  "\"writesRefused\":%s,"
                                  "\"syncIntervalMs\":%ui}",
                                  cs.lag / 1000, cs.lag % 1000, cs.unsynced,
                                  cs.applied, cs.reconnects,
                                  cs.refused ? "true" : "false",
                                  lmcf->cluster_sync_ms);
        }

        b->last = ngx_sprintf(b->last, "},\"environment\":{"
                              "\"status\":\"%s\",\"details\":{"
                              "\"nodeEnv\":\"%V\",\"jwtSecret\":\"%s\","
                              "\"warnings\":%ui,\"ready\":%s",
                              env_status, &lmcf->env_name,
                              lmcf->secret_is_default ? "development-default"
                              : "configured",
                              lmcf->warnings.nelts,
                              reason ? "false" : "true");

        if (reason) {
            b->last = ngx_cpymem(b->last, ",\"reason\":\"",
                                 sizeof(",\"reason\":\"") - 1);
            b->last = ngx_http_linguamate_json_escape(b->last,
                                                      (u_char *) reason,
                                                      ngx_strlen(reason));
            *b->last++ = '"';
        }

        b->last = ngx_cpymem(b->last, "}}}", 3);
    }

    b->last = ngx_cpymem(b->last, "}\n", 2);

    return ngx_http_linguamate_send_json(r, status, b);
}


static ngx_int_t
ngx_http_linguamate_info(ngx_http_request_t *r)
{
    ngx_buf_t                        *b;
    ngx_http_linguamate_main_conf_t  *lmcf;

    lmcf = ngx_http_get_module_main_conf(r, ngx_http_linguamate_module);

    b = ngx_create_temp_buf(r->pool, 1024 + lmcf->env_name.len
                            + ngx_http_linguamate_build_json.len
                            + lmcf->jwt_expires_in.text.len
                            + lmcf->jwt_refresh_expires_in.text.len);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b->last = ngx_sprintf(b->last,
        "{\"name\":\"" NGX_HTTP_LINGUAMATE_NAME "\","
        "\"version\":\"" NGX_HTTP_LINGUAMATE_VERSION "\","
        "\"env\":\"%V\","
        "%V,"
        "\"endpoints\":{\"trpc\":\"/api/trpc\",\"health\":\"/api\","
        "\"healthCheck\":\"/api/health\","
        "\"healthDetailed\":\"/api/health/detailed\","
        "\"live\":\"/api/health/live\",\"ready\":\"/api/health/ready\","
        "\"info\":\"/api/info\",\"metrics\":\"/api/metrics\","
        "\"ingestLogs\":\"/api/ingest/logs\","
        "\"analytics\":\"/api/analytics/events\","
        "\"auth\":\"/api/auth\",\"toolkit\":\"/api/toolkit\"},"
        "\"auth\":{\"accessTokenExpiresIn\":\"%V\","
        "\"refreshTokenExpiresIn\":\"%V\","
        "\"accessTokenExpiresInSeconds\":%T,"
        "\"refreshTokenExpiresInSeconds\":%T,"
        "\"leewaySeconds\":%ui},"
        "\"rateLimit\":{\"windowMs\":%ui,\"maxRequests\":%ui,"
        "\"maxLoginAttempts\":%ui}}\n",
        &lmcf->env_name, &ngx_http_linguamate_build_json,
        &lmcf->jwt_expires_in.text, &lmcf->jwt_refresh_expires_in.text,
        lmcf->jwt_expires_in.seconds, lmcf->jwt_refresh_expires_in.seconds,
        lmcf->jwt_leeway,
        lmcf->rate_limit_window_ms, lmcf->rate_limit_max_requests,
        lmcf->rate_limit_max_login_attempts);

    return ngx_http_linguamate_send_json(r, NGX_HTTP_OK, b);
}


/*
 * "error_page 400 404 ... @linguamate_error" lands here with the status
 * nginx was about to answer in r->err_status.
 */

static ngx_int_t
ngx_http_linguamate_not_found(ngx_http_request_t *r)
{
    return ngx_http_linguamate_send_error(r, NGX_HTTP_NOT_FOUND, "NOT_FOUND",
                                          "Resource not found", NULL);
}


static ngx_int_t
ngx_http_linguamate_error_page(ngx_http_request_t *r)
{
    const char                 *code, *message;
    ngx_uint_t                  status;
    ngx_http_linguamate_ctx_t  *ctx;

    /* a refusal of the edge's own: as the step that refused recorded it */

    ctx = ngx_http_linguamate_get_ctx(r);

    if (ctx && ngx_http_linguamate_refusal_pending(r, ctx)) {
        return ngx_http_linguamate_send_refusal(r, ctx);
    }

    status = r->err_status;

    if (status < 400 || status > 599) {
        status = NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_http_linguamate_status_error(status, &code, &message);

    return ngx_http_linguamate_send_error(r, status, code, message, NULL);
}
