/*
 * Copyright (C) ngx_linguamate developers
 *
 * REQUEST_TIMEOUT_MS: the total time of a proxied call (the tRPC route,
 * the toolkit routes).  proxy_read_timeout bounds each read, not the
 * answer: an upstream that trickles, or answers after 3 s while each read
 * is allowed 30 s, is not stopped by it.  A timer per call, armed when
 * the call reaches its content handler, ends the upstream connection
 * when the budget is spent as if its read had timed out: nginx answers
 * 504 (the envelope UPSTREAM_TIMEOUT, or the tRPC shape under the
 * prefix), the attempt's status is 504 so the breaker counts a failure,
 * and the toolkit's retries, which start only within the budget, stop.
 * An answer already streaming to the client is cut off.
 */


#include "ngx_http_linguamate_module.h"
#include "ngx_http_linguamate_toolkit.h"
#include "ngx_http_linguamate_deadline.h"


/* how often to look again while the call has no upstream connection yet */
#define NGX_HTTP_LINGUAMATE_DEADLINE_POLL  50


static void ngx_http_linguamate_deadline_fire(ngx_event_t *ev);
static void ngx_http_linguamate_deadline_cleanup(void *data);


/* PRECONTENT: a proxied call starts; its budget with it */

ngx_int_t
ngx_http_linguamate_deadline_arm(ngx_http_request_t *r)
{
    ngx_event_t                      *ev;
    ngx_pool_cleanup_t               *cln;
    ngx_http_linguamate_ctx_t        *ctx;
    ngx_http_linguamate_loc_conf_t   *llcf;
    ngx_http_linguamate_main_conf_t  *lmcf;

    if (r != r->main) {
        return NGX_DECLINED;
    }

    llcf = ngx_http_get_module_loc_conf(r, ngx_http_linguamate_module);

    if (llcf->trpc != 1 && llcf->toolkit_path.len == 0) {
        return NGX_DECLINED;
    }

    ctx = ngx_http_linguamate_get_ctx(r);
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ctx->deadline) {
        return NGX_DECLINED;
    }

    ctx->deadline = 1;

    cln = ngx_pool_cleanup_add(r->pool, sizeof(ngx_event_t));
    if (cln == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ev = cln->data;
    ngx_memzero(ev, sizeof(ngx_event_t));

    ev->handler = ngx_http_linguamate_deadline_fire;
    ev->data = r;
    ev->log = r->connection->log;

    cln->handler = ngx_http_linguamate_deadline_cleanup;

    lmcf = ngx_http_get_module_main_conf(r, ngx_http_linguamate_module);

    ngx_add_timer(ev, lmcf->request_timeout_ms);

    return NGX_DECLINED;
}


static void
ngx_http_linguamate_deadline_cleanup(void *data)
{
    ngx_event_t *ev = data;

    if (ev->timer_set) {
        ngx_del_timer(ev);
    }
}


static void
ngx_http_linguamate_deadline_fire(ngx_event_t *ev)
{
    ngx_connection_t                 *pc;
    ngx_http_request_t               *r;
    ngx_http_upstream_t              *u;
    ngx_http_linguamate_ctx_t        *ctx;
    ngx_http_linguamate_main_conf_t  *lmcf;

    r = ev->data;

    ctx = ngx_http_get_module_ctx(r, ngx_http_linguamate_module);
    if (ctx == NULL) {
        return;
    }

    /* the upstream of the call: the request's own, or the toolkit attempt's */

    u = ctx->toolkit ? ngx_http_linguamate_toolkit_upstream(ctx->toolkit)
                     : r->upstream;

    /* u->cleanup is set from the start of the call until its end */

    if (u == NULL || u->cleanup == NULL || u->peer.connection == NULL) {

        if (r->header_sent) {
            /* answered (or answering) without an upstream in flight */
            return;
        }

        /* the body is being read, a name resolved, a retry waited for */

        ngx_add_timer(ev, NGX_HTTP_LINGUAMATE_DEADLINE_POLL);
        return;
    }

    lmcf = ngx_http_get_module_main_conf(r, ngx_http_linguamate_module);

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "linguamate: the call took REQUEST_TIMEOUT_MS (%ui ms); "
                  "ending its upstream", lmcf->request_timeout_ms);

    /*
     * as if the upstream had timed out (the write flag for a TLS
     * handshake in progress), without trying another server: nginx then
     * answers 504, or cuts off an answer already started, which the
     * breaker must count as a failure too
     */

    pc = u->peer.connection;
    u->peer.tries = 1;
    pc->read->timedout = 1;
    pc->write->timedout = 1;

    if (u->header_sent && u->state) {
        u->state->status = NGX_HTTP_GATEWAY_TIME_OUT;
    }

    pc->read->handler(pc->read);
}
