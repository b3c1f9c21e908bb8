/*
 * Copyright (C) ngx_linguamate developers
 *
 * Circuit breakers, one state per named downstream for all workers, in a
 * shared zone that keeps them across reloads (by name).
 *
 * CLOSED: calls pass; every upstream attempt is counted in a monitoring
 * period of ten buckets, and the breaker opens when the failures in the
 * period reach failure_threshold while the attempts reach
 * volume_threshold.  OPEN: calls fail at once (503 CIRCUIT_OPEN) until
 * reset_timeout has passed since the last failure.  HALF_OPEN: at most
 * "probes" calls across all workers go through, claimed under the zone's
 * lock; a probe that succeeds closes the breaker, one that fails re-opens
 * it; a probe that never reports (its worker died) is given up as soon
 * as that worker is gone, or after the probe timeout, so the breaker
 * cannot stick half-open.
 *
 * The gate runs in the ACCESS phase; the accounting in the LOG phase reads
 * r->upstream_states, so every attempt of a plain proxy_pass (nginx's own
 * retries to the next server included) is counted without any change to
 * the proxy.
 */


#include "ngx_http_linguamate_module.h"
#include "ngx_http_linguamate_json.h"
#include "ngx_http_linguamate_log.h"
#include "ngx_http_linguamate_shm.h"
#include "ngx_http_linguamate_breaker.h"


#define NGX_HTTP_LINGUAMATE_BREAKERS_MAX    64
#define NGX_HTTP_LINGUAMATE_BREAKER_NAME    32
#define NGX_HTTP_LINGUAMATE_BUCKETS_N       10
#define NGX_HTTP_LINGUAMATE_BREAKERS_SIZE   (256 * 1024)

#define NGX_HTTP_LINGUAMATE_CLOSED     0
#define NGX_HTTP_LINGUAMATE_OPEN       1
#define NGX_HTTP_LINGUAMATE_HALF_OPEN  2


typedef struct {
    ngx_msec_t                  start;
    uint32_t                    requests;
    uint32_t                    failures;
} ngx_http_linguamate_bucket_t;


typedef struct {
    u_char                      name[NGX_HTTP_LINGUAMATE_BREAKER_NAME];
    ngx_uint_t                  state;
    ngx_msec_t                  last_failure;       /* monotonic */
    ngx_msec_t                  last_failure_wall;  /* epoch ms, 0: none */
    ngx_uint_t                  probes;
    ngx_msec_t                  probe_since;
    ngx_pid_t                   probe_pid;          /* the last probe's */
    uint64_t                    total;
    ngx_uint_t                  period;             /* half-open periods */
    uint64_t                    transitions[3];     /* to closed/open/half */
    ngx_http_linguamate_bucket_t  buckets[NGX_HTTP_LINGUAMATE_BUCKETS_N];
} ngx_http_linguamate_breaker_state_t;


typedef struct {
    ngx_uint_t                  n;
    ngx_http_linguamate_breaker_state_t
                                b[NGX_HTTP_LINGUAMATE_BREAKERS_MAX];
} ngx_http_linguamate_breakers_t;


/* what a transition leaves to be logged once the lock is released */
typedef struct {
    ngx_uint_t                  to;
    ngx_uint_t                  from;
    uint32_t                    failures;
    uint32_t                    requests;
    unsigned                    reset:1;        /* by an operator */
} ngx_http_linguamate_transition_t;


static ngx_int_t ngx_http_linguamate_breakers_fresh(
    ngx_http_linguamate_zone_t *zone, ngx_log_t *log);
static ngx_int_t ngx_http_linguamate_breakers_map(
    ngx_http_linguamate_zone_t *zone, ngx_log_t *log);
static void ngx_http_linguamate_breaker_period(
    ngx_http_linguamate_breaker_conf_t *bc,
    ngx_http_linguamate_breaker_state_t *b, ngx_msec_t now,
    uint32_t *requests, uint32_t *failures);
static void ngx_http_linguamate_breaker_count(
    ngx_http_linguamate_breaker_conf_t *bc,
    ngx_http_linguamate_breaker_state_t *b, ngx_msec_t now,
    ngx_uint_t failed);
static void ngx_http_linguamate_breaker_to(
    ngx_http_linguamate_breaker_state_t *b, ngx_uint_t to,
    ngx_http_linguamate_transition_t *t);
static void ngx_http_linguamate_breaker_event(
    ngx_http_linguamate_main_conf_t *lmcf, ngx_str_t *name,
    ngx_http_linguamate_transition_t *t, ngx_str_t *corr);
static ngx_uint_t ngx_http_linguamate_breaker_failure(
    ngx_http_linguamate_breaker_conf_t *bc, ngx_uint_t status);


static const char  *ngx_http_linguamate_states[] = {
    "CLOSED", "OPEN", "HALF_OPEN"
};

static const char  *ngx_http_linguamate_states_low[] = {
    "closed", "open", "half_open"
};


/*
 * linguamate_breaker NAME [failure_threshold=N] [volume_threshold=N]
 *     [reset_timeout=TIME] [monitoring_period=TIME] [probes=N]
 *     [failure_statuses=500-599,429];
 */

char *
ngx_http_linguamate_breaker(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_linguamate_main_conf_t *lmcf = conf;

    u_char                              *p, *end;
    ngx_int_t                            n, lo, hi;
    ngx_str_t                           *value, s;
    ngx_uint_t                           i;
    ngx_http_linguamate_breaker_conf_t  *bc;

    value = cf->args->elts;

    if (value[1].len == 0 || value[1].len >= NGX_HTTP_LINGUAMATE_BREAKER_NAME)
    {
        return "needs a name of 1 to 31 characters";
    }

    for (i = 0; i < value[1].len; i++) {
        if (!isalnum(value[1].data[i]) && value[1].data[i] != '_'
            && value[1].data[i] != '-')
        {
            return "needs a name of letters, digits, \"_\" and \"-\"";
        }
    }

    if (ngx_http_linguamate_breaker_find(lmcf, &value[1])) {
        return "is duplicate";
    }

    if (lmcf->breakers.nelts == NGX_HTTP_LINGUAMATE_BREAKERS_MAX) {
        return "declares too many breakers";
    }

    bc = ngx_array_push(&lmcf->breakers);
    if (bc == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(bc, sizeof(ngx_http_linguamate_breaker_conf_t));
    bc->name = value[1];
    bc->index = lmcf->breakers.nelts - 1;
    bc->probes = 1;

    /* 0: from the CIRCUIT_BREAKER_* settings, resolved later */

    for (i = 2; i < cf->args->nelts; i++) {

        p = (u_char *) ngx_strchr(value[i].data, '=');
        if (p == NULL) {
            goto invalid;
        }

        s.data = p + 1;
        s.len = value[i].data + value[i].len - s.data;

        if (ngx_strncmp(value[i].data, "failure_threshold=", 18) == 0
            || ngx_strncmp(value[i].data, "volume_threshold=", 17) == 0
            || ngx_strncmp(value[i].data, "probes=", 7) == 0)
        {
            n = ngx_atoi(s.data, s.len);
            if (n < 1 || n > 1000000) {
                goto invalid;
            }

            if (value[i].data[0] == 'f') {
                bc->failure_threshold = n;

            } else if (value[i].data[0] == 'v') {
                bc->volume_threshold = n;

            } else {
                if (n > 100) {
                    goto invalid;
                }
                bc->probes = n;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "reset_timeout=", 14) == 0
            || ngx_strncmp(value[i].data, "monitoring_period=", 18) == 0)
        {
            n = ngx_parse_time(&s, 0);
            if (n == NGX_ERROR || n < 100 || n > 86400000) {
                goto invalid;
            }

            if (value[i].data[0] == 'r') {
                bc->reset_timeout = n;

            } else {
                bc->monitoring_period = n;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "failure_statuses=", 17) == 0) {
            p = s.data;
            end = s.data + s.len;

            while (p < end) {
                lo = 0;
                while (p < end && *p >= '0' && *p <= '9') {
                    lo = lo * 10 + (*p++ - '0');
                }

                hi = lo;

                if (p < end && *p == '-') {
                    p++;
                    hi = 0;
                    while (p < end && *p >= '0' && *p <= '9') {
                        hi = hi * 10 + (*p++ - '0');
                    }
                }

                if (lo < 100 || hi > 599 || hi < lo
                    || (p < end && *p != ','))
                {
                    goto invalid;
                }

                for (n = lo; n <= hi; n++) {
                    bc->statuses[n / 64] |= (uint64_t) 1 << (n % 64);
                }

                bc->statuses_set = 1;

                if (p < end) {
                    p++;
                }
            }

            continue;
        }

        goto invalid;
    }

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "linguamate: invalid parameter \"%V\" of breaker "
                       "\"%V\"", &value[i], &value[1]);
    return NGX_CONF_ERROR;
}


ngx_http_linguamate_breaker_conf_t *
ngx_http_linguamate_breaker_find(ngx_http_linguamate_main_conf_t *lmcf,
    ngx_str_t *name)
{
    ngx_uint_t                           i;
    ngx_http_linguamate_breaker_conf_t  *bc;

    bc = lmcf->breakers.elts;

    for (i = 0; i < lmcf->breakers.nelts; i++) {
        if (bc[i].name.len == name->len
            && ngx_strncmp(bc[i].name.data, name->data, name->len) == 0)
        {
            return &bc[i];
        }
    }

    return NULL;
}


/* linguamate_circuit_breaker NAME | off; */

char *
ngx_http_linguamate_circuit_breaker(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_linguamate_loc_conf_t *llcf = conf;

    ngx_str_t                        *value;
    ngx_http_linguamate_main_conf_t  *lmcf;

    if (llcf->breaker != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "off") == 0) {
        llcf->breaker = NULL;
        return NGX_CONF_OK;
    }

    lmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_linguamate_module);

    llcf->breaker = ngx_http_linguamate_breaker_find(lmcf, &value[1]);

    if (llcf->breaker == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "linguamate: unknown breaker \"%V\" (declare it "
                           "first with linguamate_breaker)", &value[1]);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/* the zone, and the defaults from the settings; from init_main_conf */

ngx_int_t
ngx_http_linguamate_breakers_init(ngx_conf_t *cf,
    ngx_http_linguamate_main_conf_t *lmcf)
{
    ngx_str_t                            name, sig;
    ngx_uint_t                           i;
    ngx_http_linguamate_zone_t          *zone;
    ngx_http_linguamate_breaker_conf_t  *bc;

    bc = lmcf->breakers.elts;

    for (i = 0; i < lmcf->breakers.nelts; i++) {
        if (bc[i].failure_threshold == 0) {
            bc[i].failure_threshold = lmcf->cb_failure_threshold;
        }

        if (bc[i].volume_threshold == 0) {
            bc[i].volume_threshold = lmcf->cb_volume_threshold;
        }

        if (bc[i].reset_timeout == 0) {
            bc[i].reset_timeout = lmcf->cb_reset_timeout_ms;
        }

        if (bc[i].monitoring_period == 0) {
            bc[i].monitoring_period = lmcf->cb_monitoring_period_ms;
        }

        /*
         * a probe is given up only when no call could still be running:
         * a toolkit call makes up to three attempts within the request
         * timeout, each bounded by the proxy's own timeouts
         */

        bc[i].probe_timeout = ngx_max(4 * lmcf->request_timeout_ms,
                                      (ngx_msec_t) 300000);
    }

    if (lmcf->breakers.nelts == 0) {
        return NGX_OK;
    }

    ngx_str_set(&name, "linguamate_breakers");
    ngx_str_set(&sig, "the circuit breakers zone");

    zone = ngx_http_linguamate_zone_add(cf, lmcf, &name,
                                        NGX_HTTP_LINGUAMATE_BREAKERS_SIZE,
                                        NGX_HTTP_LINGUAMATE_ZONE_BREAKERS,
                                        &sig);
    if (zone == NULL) {
        return NGX_ERROR;
    }

    zone->data = lmcf;
    zone->init_fresh = ngx_http_linguamate_breakers_fresh;
    zone->init_kept = ngx_http_linguamate_breakers_map;

    lmcf->breakers_zone = zone;

    return NGX_OK;
}


static ngx_int_t
ngx_http_linguamate_breakers_fresh(ngx_http_linguamate_zone_t *zone,
    ngx_log_t *log)
{
    ngx_http_linguamate_breakers_t  *bs;

    bs = ngx_slab_alloc(zone->shpool, sizeof(ngx_http_linguamate_breakers_t));
    if (bs == NULL) {
        return NGX_ERROR;
    }

    ngx_memzero(bs, sizeof(ngx_http_linguamate_breakers_t));
    zone->sh->data = bs;

    return ngx_http_linguamate_breakers_map(zone, log);
}


/* each configured breaker keeps its state by name across reloads */

static ngx_int_t
ngx_http_linguamate_breakers_map(ngx_http_linguamate_zone_t *zone,
    ngx_log_t *log)
{
    ngx_uint_t                           i, j;
    ngx_http_linguamate_breakers_t      *bs;
    ngx_http_linguamate_main_conf_t     *lmcf;
    ngx_http_linguamate_breaker_conf_t  *bc;

    lmcf = zone->data;
    bs = zone->sh->data;
    bc = lmcf->breakers.elts;

    ngx_shmtx_lock(&zone->shpool->mutex);

    for (i = 0; i < lmcf->breakers.nelts; i++) {

        for (j = 0; j < bs->n; j++) {
            if (ngx_strlen(bs->b[j].name) == bc[i].name.len
                && ngx_strncmp(bs->b[j].name, bc[i].name.data,
                               bc[i].name.len) == 0)
            {
                break;
            }
        }

        if (j == bs->n) {
            if (bs->n == NGX_HTTP_LINGUAMATE_BREAKERS_MAX) {
                ngx_shmtx_unlock(&zone->shpool->mutex);
                ngx_log_error(NGX_LOG_EMERG, log, 0,
                              "linguamate: too many breakers over reloads; "
                              "restart nginx");
                return NGX_ERROR;
            }

            ngx_memzero(&bs->b[j], sizeof(ngx_http_linguamate_breaker_state_t));
            ngx_memcpy(bs->b[j].name, bc[i].name.data, bc[i].name.len);
            bs->n++;
        }

        bc[i].slot = j;
    }

    ngx_shmtx_unlock(&zone->shpool->mutex);

    return NGX_OK;
}


static ngx_http_linguamate_breaker_state_t *
ngx_http_linguamate_breaker_state(ngx_http_linguamate_main_conf_t *lmcf,
    ngx_http_linguamate_breaker_conf_t *bc)
{
    ngx_http_linguamate_breakers_t  *bs;

    bs = lmcf->breakers_zone->sh->data;

    return &bs->b[bc->slot];
}


/* the attempts and failures of the monitoring period, old buckets aged out */

static void
ngx_http_linguamate_breaker_period(ngx_http_linguamate_breaker_conf_t *bc,
    ngx_http_linguamate_breaker_state_t *b, ngx_msec_t now,
    uint32_t *requests, uint32_t *failures)
{
    ngx_uint_t  i;

    *requests = 0;
    *failures = 0;

    for (i = 0; i < NGX_HTTP_LINGUAMATE_BUCKETS_N; i++) {
        if (b->buckets[i].start
            && (ngx_msec_int_t) (now - b->buckets[i].start)
               < (ngx_msec_int_t) bc->monitoring_period)
        {
            *requests += b->buckets[i].requests;
            *failures += b->buckets[i].failures;
        }
    }
}


static void
ngx_http_linguamate_breaker_count(ngx_http_linguamate_breaker_conf_t *bc,
    ngx_http_linguamate_breaker_state_t *b, ngx_msec_t now, ngx_uint_t failed)
{
    ngx_msec_t                     width, start;
    ngx_time_t                    *tp;
    ngx_http_linguamate_bucket_t  *k;

    width = bc->monitoring_period / NGX_HTTP_LINGUAMATE_BUCKETS_N;
    if (width == 0) {
        width = 1;
    }

    start = now - now % width;
    k = &b->buckets[(now / width) % NGX_HTTP_LINGUAMATE_BUCKETS_N];

    if (k->start != start) {
        k->start = start;
        k->requests = 0;
        k->failures = 0;
    }

    k->requests++;
    b->total++;

    if (failed) {
        k->failures++;
        b->last_failure = now;
        tp = ngx_timeofday();
        b->last_failure_wall = (ngx_msec_t) tp->sec * 1000 + tp->msec;
    }
}


static void
ngx_http_linguamate_breaker_to(ngx_http_linguamate_breaker_state_t *b,
    ngx_uint_t to, ngx_http_linguamate_transition_t *t)
{
    t->from = b->state;
    t->to = to;
    b->state = to;
    b->transitions[to]++;

    /* probes of an earlier half-open period no longer count */

    b->probes = 0;

    if (to == NGX_HTTP_LINGUAMATE_HALF_OPEN) {
        b->period++;
    }

    if (to == NGX_HTTP_LINGUAMATE_CLOSED) {
        ngx_memzero(b->buckets, sizeof(b->buckets));
    }
}


static ngx_uint_t
ngx_http_linguamate_breaker_failure(ngx_http_linguamate_breaker_conf_t *bc,
    ngx_uint_t status)
{
    if (bc->statuses_set) {
        return status < 600
               && (bc->statuses[status / 64] & ((uint64_t) 1 << (status % 64)));
    }

    return status >= 500 || status == NGX_HTTP_TOO_MANY_REQUESTS;
}


/* ACCESS: an open breaker answers at once, without the upstream */

ngx_int_t
ngx_http_linguamate_breaker_gate(ngx_http_request_t *r)
{
    u_char                               *p, msg[96];
    ngx_str_t                             extra;
    ngx_msec_t                            now, retry;
    ngx_uint_t                            pass;
    ngx_http_linguamate_ctx_t            *ctx;
    ngx_http_linguamate_loc_conf_t       *llcf;
    ngx_http_linguamate_main_conf_t      *lmcf;
    ngx_http_linguamate_breaker_conf_t   *bc;
    ngx_http_linguamate_breaker_state_t  *b;
    ngx_http_linguamate_transition_t      t;

    if (r != r->main) {
        return NGX_DECLINED;
    }

    llcf = ngx_http_get_module_loc_conf(r, ngx_http_linguamate_module);
    bc = llcf->breaker;

    if (bc == NULL || bc == NGX_CONF_UNSET_PTR) {
        return NGX_DECLINED;
    }

    ctx = ngx_http_linguamate_get_ctx(r);
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ctx->breaker) {
        return NGX_DECLINED;
    }

    lmcf = ngx_http_get_module_main_conf(r, ngx_http_linguamate_module);
    b = ngx_http_linguamate_breaker_state(lmcf, bc);

    now = ngx_current_msec;
    pass = 1;
    retry = 0;
    t.to = t.from = 0;
    t.reset = 0;

    ngx_shmtx_lock(&lmcf->breakers_zone->shpool->mutex);

    if (b->state == NGX_HTTP_LINGUAMATE_OPEN) {
        if ((ngx_msec_int_t) (now - b->last_failure)
            >= (ngx_msec_int_t) bc->reset_timeout)
        {
            ngx_http_linguamate_breaker_to(b, NGX_HTTP_LINGUAMATE_HALF_OPEN,
                                           &t);
            b->probes = 0;

        } else {
            pass = 0;
            retry = bc->reset_timeout - (now - b->last_failure);
        }
    }

    if (b->state == NGX_HTTP_LINGUAMATE_HALF_OPEN) {

        /*
         * a probe whose worker died never reports: give it up at once
         * when that worker is gone (kill -9, a crash), else after the
         * probe timeout
         */

        if (b->probes
            && ((ngx_msec_int_t) (now - b->probe_since)
                > (ngx_msec_int_t) bc->probe_timeout
                || (b->probe_pid != ngx_pid
                    && kill(b->probe_pid, 0) == -1
                    && ngx_errno == NGX_ESRCH)))
        {
            b->probes = 0;
        }

        if (b->probes < bc->probes) {
            b->probes++;
            b->probe_since = now;
            b->probe_pid = ngx_pid;
            ctx->breaker_probe = 1;
            ctx->breaker_period = b->period;

        } else {
            pass = 0;
            retry = 1000;
        }
    }

    ngx_shmtx_unlock(&lmcf->breakers_zone->shpool->mutex);

    if (t.to) {
        ngx_http_linguamate_breaker_event(lmcf, &bc->name, &t, &ctx->corr_id);
    }

    if (pass) {
        ctx->breaker = bc;
        return NGX_DECLINED;
    }

    (void) ngx_snprintf(msg, sizeof(msg), "Circuit breaker is OPEN for %V%Z",
                        &bc->name);

    p = ngx_pnalloc(r->pool, sizeof(",\"retryAfter\":,\"breaker\":\"\"")
                             + NGX_INT_T_LEN + bc->name.len);
    if (p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    extra.data = p;
    extra.len = ngx_sprintf(p, ",\"retryAfter\":%M,\"breaker\":\"%V\"",
                            (retry + 999) / 1000, &bc->name) - p;

    p = ngx_pnalloc(r->pool, NGX_INT_T_LEN);
    if (p == NULL
        || ngx_http_linguamate_add_header(r, "Retry-After",
               sizeof("Retry-After") - 1, p,
               ngx_sprintf(p, "%M", (retry + 999) / 1000) - p) != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_linguamate_phase_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                           "CIRCUIT_OPEN", (const char *) msg,
                                           &extra);
}


/* LOG: every upstream attempt of a request the gate let through */

ngx_int_t
ngx_http_linguamate_breaker_log(ngx_http_request_t *r)
{
    ngx_uint_t                    i, n;
    ngx_uint_t                    statuses[16];
    ngx_http_upstream_state_t    *state;
    ngx_http_linguamate_ctx_t    *ctx;

    if (r != r->main) {
        return NGX_OK;
    }

    ctx = ngx_http_get_module_ctx(r, ngx_http_linguamate_module);

    if (ctx == NULL || ctx->breaker == NULL) {
        return NGX_OK;
    }

    if (ctx->toolkit) {
        /* the toolkit's own LOG step counts its attempts */
        return NGX_OK;
    }

    n = 0;

    if (r->upstream_states) {
        state = r->upstream_states->elts;

        for (i = 0; i < r->upstream_states->nelts && n < 16; i++) {
            statuses[n++] = state[i].status;
        }
    }

    ngx_http_linguamate_breaker_attempts(r, statuses, n);

    return NGX_OK;
}


/*
 * Count the attempts of a request that passed the gate (status 0: the
 * client went away first, not counted) and move the breaker on.  Called
 * once per request: from the LOG phase for plain proxy_pass, from the
 * toolkit proxy for its own attempts.
 */

void
ngx_http_linguamate_breaker_attempts(ngx_http_request_t *r,
    ngx_uint_t *statuses, ngx_uint_t nstatuses)
{
    ngx_msec_t                            now;
    ngx_uint_t                            i, n, failed, last_failed;
    uint32_t                              requests, failures;
    ngx_http_linguamate_ctx_t            *ctx;
    ngx_http_linguamate_main_conf_t      *lmcf;
    ngx_http_linguamate_breaker_conf_t   *bc;
    ngx_http_linguamate_breaker_state_t  *b;
    ngx_http_linguamate_transition_t      t;

    ctx = ngx_http_get_module_ctx(r->main, ngx_http_linguamate_module);

    if (ctx == NULL || ctx->breaker == NULL) {
        return;
    }

    bc = ctx->breaker;
    ctx->breaker = NULL;

    lmcf = ngx_http_get_module_main_conf(r, ngx_http_linguamate_module);

    if (lmcf->breakers_zone == NULL) {
        return;
    }

    b = ngx_http_linguamate_breaker_state(lmcf, bc);
    now = ngx_current_msec;
    t.to = t.from = 0;
    t.reset = 0;
    n = 0;
    last_failed = 0;
    requests = 0;
    failures = 0;

    ngx_shmtx_lock(&lmcf->breakers_zone->shpool->mutex);

    for (i = 0; i < nstatuses; i++) {
        if (statuses[i] == 0) {
            continue;
        }

        failed = ngx_http_linguamate_breaker_failure(bc, statuses[i]);
        ngx_http_linguamate_breaker_count(bc, b, now, failed);
        last_failed = failed;
        n++;
    }

    if (ctx->breaker_probe && ctx->breaker_period == b->period) {
        if (b->probes) {
            b->probes--;
        }

        if (b->state == NGX_HTTP_LINGUAMATE_HALF_OPEN && n) {
            ngx_http_linguamate_breaker_to(b, last_failed
                                           ? NGX_HTTP_LINGUAMATE_OPEN
                                           : NGX_HTTP_LINGUAMATE_CLOSED, &t);
        }

    } else if (b->state == NGX_HTTP_LINGUAMATE_CLOSED && n) {
        ngx_http_linguamate_breaker_period(bc, b, now, &requests, &failures);

        if (failures >= bc->failure_threshold
            && requests >= bc->volume_threshold)
        {
            ngx_http_linguamate_breaker_to(b, NGX_HTTP_LINGUAMATE_OPEN, &t);
        }
    }

    ngx_shmtx_unlock(&lmcf->breakers_zone->shpool->mutex);

    if (t.to != t.from) {
        t.failures = failures;
        t.requests = requests;

        ngx_http_linguamate_breaker_event(lmcf, &bc->name, &t, &ctx->corr_id);
    }
}


const char *
ngx_http_linguamate_breaker_state_name(ngx_http_linguamate_main_conf_t *lmcf,
    ngx_http_linguamate_breaker_conf_t *bc)
{
    if (lmcf->breakers_zone == NULL) {
        return "CLOSED";
    }

    return ngx_http_linguamate_states[
               ngx_http_linguamate_breaker_state(lmcf, bc)->state];
}


/* circuit_opened / circuit_half_open / circuit_closed / circuit_reset */

static void
ngx_http_linguamate_breaker_event(ngx_http_linguamate_main_conf_t *lmcf,
    ngx_str_t *name, ngx_http_linguamate_transition_t *t, ngx_str_t *corr)
{
    u_char      buf[512], *p, *last;
    ngx_str_t   msg, extra;
    ngx_uint_t  level;
    const char *evt;

    ngx_log_debug4(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                   "linguamate breaker \"%V\": %s -> %s%s", name,
                   ngx_http_linguamate_states_low[t->from],
                   ngx_http_linguamate_states_low[t->to],
                   t->reset ? " (reset)" : "");

    p = buf;
    last = buf + sizeof(buf);

    p = ngx_slprintf(p, last, ",\"cat\":\"circuit_breaker\",\"breaker\":\"%V\","
                     "\"from\":\"%s\",\"to\":\"%s\"", name,
                     ngx_http_linguamate_states_low[t->from],
                     ngx_http_linguamate_states_low[t->to]);

    switch (t->to) {

    case NGX_HTTP_LINGUAMATE_OPEN:
        evt = "circuit_opened";

        if (t->from == NGX_HTTP_LINGUAMATE_HALF_OPEN) {
            level = NGX_HTTP_LINGUAMATE_LOG_WARN;
            ngx_str_set(&msg, "Circuit breaker re-opened: the probe failed");

        } else {
            level = NGX_HTTP_LINGUAMATE_LOG_ERROR;
            ngx_str_set(&msg, "Circuit breaker opened due to failures");
            p = ngx_slprintf(p, last, ",\"failures\":%uD,"
                             "\"recentRequests\":%uD,\"failureRate\":%.2f",
                             t->failures, t->requests,
                             t->requests ? (double) t->failures / t->requests
                                         : 0.0);
        }
        break;

    case NGX_HTTP_LINGUAMATE_HALF_OPEN:
        evt = "circuit_half_open";
        level = NGX_HTTP_LINGUAMATE_LOG_INFO;
        ngx_str_set(&msg, "Circuit breaker half-open: letting a probe through");
        break;

    default:
        if (t->reset) {
            evt = "circuit_reset";
            ngx_str_set(&msg, "Circuit breaker reset by an operator");

        } else {
            evt = "circuit_closed";
            ngx_str_set(&msg, "Circuit breaker closed after a successful "
                        "probe");
        }

        level = NGX_HTTP_LINGUAMATE_LOG_INFO;
    }

    if (corr && corr->len && (size_t) (last - p) > corr->len + 40) {
        p = ngx_slprintf(p, last, ",\"corr\":{\"correlationId\":\"%V\"}",
                         corr);
    }

    extra.data = buf;
    extra.len = p - buf;

    ngx_http_linguamate_log_event(lmcf, level, evt, &msg, &extra);
}


/* operations: reset one breaker (name) or all (NULL); NGX_DECLINED: unknown */

ngx_int_t
ngx_http_linguamate_breaker_reset(ngx_http_linguamate_main_conf_t *lmcf,
    ngx_str_t *name)
{
    ngx_uint_t                            i, found;
    ngx_http_linguamate_breaker_conf_t   *bc;
    ngx_http_linguamate_breaker_state_t  *b;
    ngx_http_linguamate_transition_t      t;

    if (lmcf->breakers_zone == NULL) {
        return NGX_DECLINED;
    }

    bc = lmcf->breakers.elts;
    found = 0;

    for (i = 0; i < lmcf->breakers.nelts; i++) {
        if (name && (bc[i].name.len != name->len
                     || ngx_strncmp(bc[i].name.data, name->data, name->len)
                        != 0))
        {
            continue;
        }

        found = 1;
        b = ngx_http_linguamate_breaker_state(lmcf, &bc[i]);

        ngx_shmtx_lock(&lmcf->breakers_zone->shpool->mutex);

        /*
         * the log says the state it really left; a breaker that was
         * closed only has its counts cleared, without a transition
         */

        if (b->state == NGX_HTTP_LINGUAMATE_CLOSED) {
            t.from = NGX_HTTP_LINGUAMATE_CLOSED;
            t.to = NGX_HTTP_LINGUAMATE_CLOSED;
            b->probes = 0;
            ngx_memzero(b->buckets, sizeof(b->buckets));

        } else {
            ngx_http_linguamate_breaker_to(b, NGX_HTTP_LINGUAMATE_CLOSED, &t);
        }

        b->total = 0;
        b->last_failure = 0;
        b->last_failure_wall = 0;

        ngx_shmtx_unlock(&lmcf->breakers_zone->shpool->mutex);

        t.reset = 1;
        ngx_http_linguamate_breaker_event(lmcf, &bc[i].name, &t, NULL);
    }

    return found ? NGX_OK : NGX_DECLINED;
}


/*
 * {"total":N,"open":M,"circuits":{NAME:{...}}} for the detailed health
 * and the operations API; returns the end of what it wrote.  The caller
 * reserves ngx_http_linguamate_breakers_json_len() bytes.
 */

ngx_uint_t
ngx_http_linguamate_breakers_open(ngx_http_linguamate_main_conf_t *lmcf)
{
    ngx_uint_t                           i, open;
    ngx_http_linguamate_breaker_conf_t  *bc;

    bc = lmcf->breakers.elts;
    open = 0;

    for (i = 0; i < lmcf->breakers.nelts && lmcf->breakers_zone; i++) {
        if (ngx_http_linguamate_breaker_state(lmcf, &bc[i])->state
            == NGX_HTTP_LINGUAMATE_OPEN)
        {
            open++;
        }
    }

    return open;
}


size_t
ngx_http_linguamate_breakers_json_len(ngx_http_linguamate_main_conf_t *lmcf)
{
    return 64 + lmcf->breakers.nelts
                * (2 * NGX_HTTP_LINGUAMATE_BREAKER_NAME + 320
                   + 6 * NGX_INT64_LEN + NGX_HTTP_LINGUAMATE_ISO_LEN);
}


u_char *
ngx_http_linguamate_breakers_json(ngx_http_linguamate_main_conf_t *lmcf,
    u_char *p, ngx_uint_t *open)
{
    ngx_msec_t                            now;
    ngx_uint_t                            i, n;
    uint32_t                              requests, failures;
    ngx_http_linguamate_breaker_conf_t   *bc;
    ngx_http_linguamate_breaker_state_t   b;

    bc = lmcf->breakers.elts;
    now = ngx_current_msec;
    n = 0;

    *open = ngx_http_linguamate_breakers_open(lmcf);

    p = ngx_sprintf(p, "{\"total\":%ui,\"open\":%ui,\"circuits\":{",
                    lmcf->breakers.nelts, *open);

    for (i = 0; i < lmcf->breakers.nelts && lmcf->breakers_zone; i++) {

        ngx_shmtx_lock(&lmcf->breakers_zone->shpool->mutex);
        b = *ngx_http_linguamate_breaker_state(lmcf, &bc[i]);
        ngx_shmtx_unlock(&lmcf->breakers_zone->shpool->mutex);

        ngx_http_linguamate_breaker_period(&bc[i], &b, now, &requests,
                                           &failures);

        p = ngx_sprintf(p, "%s\"%V\":{\"name\":\"%V\",\"state\":\"%s\","
                        "\"failures\":%uD,\"successes\":%uD,"
                        "\"totalRequests\":%uL,\"recentRequests\":%uD,"
                        "\"lastFailureTime\":",
                        n++ ? "," : "", &bc[i].name, &bc[i].name,
                        ngx_http_linguamate_states[b.state], failures,
                        requests - failures, b.total, requests);

        if (b.last_failure_wall) {
            *p++ = '"';
            p = ngx_http_linguamate_iso_time(p, b.last_failure_wall / 1000,
                                             b.last_failure_wall % 1000);
            p = ngx_sprintf(p, "\",\"timeSinceLastFailure\":%M}",
                            now - b.last_failure);

        } else {
            p = ngx_cpymem(p, "null,\"timeSinceLastFailure\":null}",
                           sizeof("null,\"timeSinceLastFailure\":null}") - 1);
        }
    }

    return ngx_cpymem(p, "}}", 2);
}


/* the breaker series of /api/metrics */

u_char *
ngx_http_linguamate_breakers_metrics(ngx_http_linguamate_main_conf_t *lmcf,
    u_char *p, u_char *end)
{
    ngx_uint_t                            i, k;
    ngx_http_linguamate_breaker_conf_t   *bc;
    ngx_http_linguamate_breaker_state_t  *b;

    if (lmcf->breakers_zone == NULL) {
        return p;
    }

    bc = lmcf->breakers.elts;

    p = ngx_slprintf(p, end,
        "# HELP linguamate_circuit_breaker_state 0 closed, 1 open, "
        "2 half-open.\n"
        "# TYPE linguamate_circuit_breaker_state gauge\n");

    for (i = 0; i < lmcf->breakers.nelts; i++) {
        b = ngx_http_linguamate_breaker_state(lmcf, &bc[i]);
        p = ngx_slprintf(p, end, "linguamate_circuit_breaker_state"
                         "{name=\"%V\"} %ui\n", &bc[i].name, b->state);
    }

    p = ngx_slprintf(p, end,
        "# HELP linguamate_circuit_breaker_open 1 while the breaker is "
        "open.\n"
        "# TYPE linguamate_circuit_breaker_open gauge\n");

    for (i = 0; i < lmcf->breakers.nelts; i++) {
        b = ngx_http_linguamate_breaker_state(lmcf, &bc[i]);
        p = ngx_slprintf(p, end, "linguamate_circuit_breaker_open"
                         "{name=\"%V\"} %d\n", &bc[i].name,
                         b->state == NGX_HTTP_LINGUAMATE_OPEN);
    }

    p = ngx_slprintf(p, end,
        "# HELP linguamate_circuit_breaker_transitions_total State "
        "changes, by the state entered.\n"
        "# TYPE linguamate_circuit_breaker_transitions_total counter\n");

    for (i = 0; i < lmcf->breakers.nelts; i++) {
        b = ngx_http_linguamate_breaker_state(lmcf, &bc[i]);

        for (k = 0; k < 3; k++) {
            p = ngx_slprintf(p, end, "linguamate_circuit_breaker_transitions"
                             "_total{name=\"%V\",to=\"%s\"} %uL\n",
                             &bc[i].name, ngx_http_linguamate_states_low[k],
                             b->transitions[k]);
        }
    }

    return p;
}
