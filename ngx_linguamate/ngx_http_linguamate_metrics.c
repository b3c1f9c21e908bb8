/*
 * Copyright (C) ngx_linguamate developers
 *
 * Prometheus metrics.  Counting happens in the LOG phase with atomic
 * adds on counters in a shared zone (no mutex on the request path), so
 * one scrape of any worker sees the sum of all of them.  Series are
 * bounded by the configuration: a route is a configured name
 * (linguamate_route), everything else is "other"; statuses and methods
 * map onto fixed lists.  The zone keeps its counters across reloads; a
 * route keeps its slot by name.
 */


#include <nginx.h>
#include <dirent.h>

#include "ngx_http_linguamate_module.h"
#include "ngx_http_linguamate_shm.h"
#include "ngx_http_linguamate_metrics.h"
#include "ngx_http_linguamate_cluster.h"
#include "ngx_http_linguamate_breaker.h"
#include "ngx_http_linguamate_flags.h"


#define NGX_HTTP_LINGUAMATE_ROUTES_MAX     256
#define NGX_HTTP_LINGUAMATE_ROUTE_LEN      64
#define NGX_HTTP_LINGUAMATE_METHODS        8
#define NGX_HTTP_LINGUAMATE_STATUSES       32
#define NGX_HTTP_LINGUAMATE_BUCKETS        15
#define NGX_HTTP_LINGUAMATE_METRICS_SIZE   (2 * 1024 * 1024)


typedef struct {
    u_char        names[NGX_HTTP_LINGUAMATE_ROUTES_MAX]
                       [NGX_HTTP_LINGUAMATE_ROUTE_LEN];
    ngx_uint_t    nroutes;
    ngx_atomic_t  requests[NGX_HTTP_LINGUAMATE_ROUTES_MAX]
                          [NGX_HTTP_LINGUAMATE_METHODS]
                          [NGX_HTTP_LINGUAMATE_STATUSES];
    ngx_atomic_t  buckets[NGX_HTTP_LINGUAMATE_ROUTES_MAX]
                         [NGX_HTTP_LINGUAMATE_BUCKETS];
    ngx_atomic_t  sum_us[NGX_HTTP_LINGUAMATE_ROUTES_MAX];
    ngx_atomic_t  count[NGX_HTTP_LINGUAMATE_ROUTES_MAX];
    ngx_atomic_t  auth_failures[NGX_HTTP_LINGUAMATE_NAUTH_REASONS];
    ngx_atomic_t  client[NGX_HTTP_LINGUAMATE_CM_N];
    ngx_atomic_t  cpu_ticks;    /* the highest reported, kept on reloads */
} ngx_http_linguamate_metrics_t;


typedef struct {
    ngx_http_linguamate_main_conf_t  *lmcf;
    ngx_http_linguamate_metrics_t    *m;
    ngx_uint_t                       *slot;     /* config index -> slot */
} ngx_http_linguamate_metrics_zone_t;


static ngx_int_t ngx_http_linguamate_metrics_fresh(
    ngx_http_linguamate_zone_t *zone, ngx_log_t *log);
static ngx_int_t ngx_http_linguamate_metrics_kept(
    ngx_http_linguamate_zone_t *zone, ngx_log_t *log);
static ngx_int_t ngx_http_linguamate_metrics_map(
    ngx_http_linguamate_zone_t *zone, ngx_log_t *log);
static ngx_uint_t ngx_http_linguamate_method_index(ngx_http_request_t *r);
static void ngx_http_linguamate_proc_totals(uint64_t *rss, uint64_t *ticks);
static void ngx_http_linguamate_proc_walk(uint64_t *rss, uint64_t *ticks);
static ngx_int_t ngx_http_linguamate_proc_stat(ngx_pid_t pid,
    ngx_pid_t *ppid, uint64_t *ticks, uint64_t *reaped, uint64_t *rss);


/* 5 ms to 10 s: a 200 ms p95 target falls between 150, 200 and 250 ms */
static ngx_msec_t  ngx_http_linguamate_bucket_ms[] = {
    5, 10, 25, 50, 100, 150, 200, 250, 300, 500, 1000, 2500, 5000, 10000
};

static const char  *ngx_http_linguamate_bucket_le[] = {
    "0.005", "0.01", "0.025", "0.05", "0.1", "0.15", "0.2", "0.25", "0.3",
    "0.5", "1", "2.5", "5", "10", "+Inf"
};

static ngx_str_t  ngx_http_linguamate_methods[] = {
    ngx_string("GET"), ngx_string("HEAD"), ngx_string("POST"),
    ngx_string("PUT"), ngx_string("PATCH"), ngx_string("DELETE"),
    ngx_string("OPTIONS"), ngx_string("OTHER")
};

/* the statuses with a series of their own; others count as their class */
static ngx_uint_t  ngx_http_linguamate_statuses[] = {
    200, 201, 202, 204, 206, 301, 302, 304, 400, 401, 403, 404, 405, 408,
    409, 413, 414, 415, 422, 429, 444, 499, 500, 502, 503, 504,
    1, 2, 3, 4, 5, 0
};

#define NGX_HTTP_LINGUAMATE_REASON_LABEL(id, name, message)                  \
    [NGX_HTTP_LINGUAMATE_AUTH_##id] = (name),
#define NGX_HTTP_LINGUAMATE_CLIENT_LABEL(id, level, label, security)  label,

/* linguamate_auth_failures_total{reason}: from 1, AUTH_OK is no failure */
static const char  *ngx_http_linguamate_reason_names[] = {
    [NGX_HTTP_LINGUAMATE_AUTH_OK] = "OK",
    NGX_HTTP_LINGUAMATE_AUTH_REASONS(NGX_HTTP_LINGUAMATE_REASON_LABEL)
};

/* linguamate_client_logs_total{level}: counters CM_LEVELS + level */
static const char  *ngx_http_linguamate_client_levels[] = {
    NGX_HTTP_LINGUAMATE_CLIENT_LEVELS(NGX_HTTP_LINGUAMATE_CLIENT_LABEL)
};

_Static_assert(NGX_HTTP_LINGUAMATE_CM_ANALYTICS_N
               == NGX_HTTP_LINGUAMATE_CM_LEVELS
                  + NGX_HTTP_LINGUAMATE_NCLIENT_LEVELS,
               "a client log counter per client level");

static const char  *ngx_http_linguamate_client_endpoints[] = {
    "ingest", "analytics"
};

static const char  *ngx_http_linguamate_client_reasons[] = {
    "validation", "signature", "skew", "too_large"
};

static u_char  ngx_http_linguamate_status_index[600];


/* create the metrics zone; called once per configuration */

ngx_int_t
ngx_http_linguamate_metrics_init(ngx_conf_t *cf,
    ngx_http_linguamate_main_conf_t *lmcf)
{
    ngx_uint_t                           i, code;
    ngx_str_t                            name, sig;
    ngx_http_linguamate_zone_t          *zone;
    ngx_http_linguamate_metrics_zone_t  *mz;

    for (i = 0; i < 600; i++) {
        ngx_http_linguamate_status_index[i] = NGX_HTTP_LINGUAMATE_STATUSES - 1;
    }

    for (i = 0; ngx_http_linguamate_statuses[i]; i++) {
        code = ngx_http_linguamate_statuses[i];

        if (code < 10) {
            continue;
        }

        ngx_http_linguamate_status_index[code] = (u_char) i;
    }

    for (code = 100; code < 600; code++) {
        if (ngx_http_linguamate_status_index[code]
            == NGX_HTTP_LINGUAMATE_STATUSES - 1)
        {
            /* its class: 1xx .. 5xx are entries 26 .. 30 */
            ngx_http_linguamate_status_index[code] = (u_char) (26 + code / 100
                                                                - 1);
        }
    }

    mz = ngx_pcalloc(cf->pool, sizeof(ngx_http_linguamate_metrics_zone_t));
    if (mz == NULL) {
        return NGX_ERROR;
    }

    mz->lmcf = lmcf;

    /* the routes are all known: the http block has been parsed */

    mz->slot = ngx_pcalloc(cf->pool,
                           (lmcf->routes.nelts + 1) * sizeof(ngx_uint_t));
    if (mz->slot == NULL) {
        return NGX_ERROR;
    }

    ngx_str_set(&name, "linguamate_metrics");

    /*
     * The counters are kept across reloads in place: a zone laid out by
     * another build (a struct of another size) must not be reused, so the
     * layout is part of the signature and such a reload is refused.  (A
     * reload keeps the module nginx loaded at start, so this guards the
     * cases where another build does get loaded.)
     */

    sig.data = ngx_pnalloc(cf->pool, sizeof("the metrics zone (layout )")
                                     + NGX_SIZE_T_LEN);
    if (sig.data == NULL) {
        return NGX_ERROR;
    }

    sig.len = ngx_sprintf(sig.data, "the metrics zone (layout %uz)",
                          sizeof(ngx_http_linguamate_metrics_t))
              - sig.data;

    zone = ngx_http_linguamate_zone_add(cf, lmcf, &name,
                                        NGX_HTTP_LINGUAMATE_METRICS_SIZE,
                                        NGX_HTTP_LINGUAMATE_ZONE_METRICS,
                                        &sig);
    if (zone == NULL) {
        return NGX_ERROR;
    }

    zone->data = mz;
    zone->init_fresh = ngx_http_linguamate_metrics_fresh;
    zone->init_kept = ngx_http_linguamate_metrics_kept;

    lmcf->metrics_zone = zone;

    return NGX_OK;
}


static ngx_int_t
ngx_http_linguamate_metrics_fresh(ngx_http_linguamate_zone_t *zone,
    ngx_log_t *log)
{
    ngx_http_linguamate_metrics_t  *m;

    m = ngx_slab_alloc(zone->shpool, sizeof(ngx_http_linguamate_metrics_t));
    if (m == NULL) {
        return NGX_ERROR;
    }

    ngx_memzero(m, sizeof(ngx_http_linguamate_metrics_t));

    /* slot 0 is "other" */

    ngx_memcpy(m->names[0], "other", sizeof("other"));
    m->nroutes = 1;

    zone->sh->data = m;

    return ngx_http_linguamate_metrics_map(zone, log);
}


static ngx_int_t
ngx_http_linguamate_metrics_kept(ngx_http_linguamate_zone_t *zone,
    ngx_log_t *log)
{
    return ngx_http_linguamate_metrics_map(zone, log);
}


/* give each configured route its slot, the same one as before a reload */

static ngx_int_t
ngx_http_linguamate_metrics_map(ngx_http_linguamate_zone_t *zone,
    ngx_log_t *log)
{
    ngx_str_t                           *routes;
    ngx_uint_t                           i, j;
    ngx_http_linguamate_metrics_t       *m;
    ngx_http_linguamate_metrics_zone_t  *mz;

    mz = zone->data;
    m = zone->sh->data;
    mz->m = m;

    routes = mz->lmcf->routes.elts;

    ngx_shmtx_lock(&zone->shpool->mutex);

    for (i = 0; i < mz->lmcf->routes.nelts; i++) {

        for (j = 0; j < m->nroutes; j++) {
            if (ngx_strlen(m->names[j]) == routes[i].len
                && ngx_strncmp(m->names[j], routes[i].data, routes[i].len)
                   == 0)
            {
                break;
            }
        }

        if (j == m->nroutes) {
            if (m->nroutes == NGX_HTTP_LINGUAMATE_ROUTES_MAX) {
                ngx_log_error(NGX_LOG_WARN, log, 0,
                              "linguamate: more than %d routes; \"%V\" is "
                              "counted as \"other\"",
                              NGX_HTTP_LINGUAMATE_ROUTES_MAX, &routes[i]);
                j = 0;

            } else {
                ngx_memcpy(m->names[j], routes[i].data, routes[i].len);
                m->names[j][routes[i].len] = '\0';
                m->nroutes++;
            }
        }

        mz->slot[i + 1] = j;
    }

    ngx_shmtx_unlock(&zone->shpool->mutex);

    return NGX_OK;
}


/*
 * REWRITE phase, ahead of the rewrite module ("return", "rewrite"): note
 * the route of the location the request matched, so that an error page
 * it ends in is counted under it.  Only a route index is stored.
 */

ngx_int_t
ngx_http_linguamate_route_handler(ngx_http_request_t *r)
{
    ngx_http_linguamate_ctx_t       *ctx;
    ngx_http_linguamate_loc_conf_t  *llcf;

    llcf = ngx_http_get_module_loc_conf(r, ngx_http_linguamate_module);

    if (r != r->main || llcf->route_index == 0) {
        return NGX_DECLINED;
    }

    ctx = ngx_http_linguamate_get_ctx(r);

    if (ctx && ctx->route_index == 0) {
        ctx->route_index = llcf->route_index;
    }

    return NGX_DECLINED;
}


static ngx_uint_t
ngx_http_linguamate_method_index(ngx_http_request_t *r)
{
    switch (r->method) {
    case NGX_HTTP_GET: return 0;
    case NGX_HTTP_HEAD: return 1;
    case NGX_HTTP_POST: return 2;
    case NGX_HTTP_PUT: return 3;
    case NGX_HTTP_PATCH: return 4;
    case NGX_HTTP_DELETE: return 5;
    case NGX_HTTP_OPTIONS: return 6;
    default: return 7;
    }
}


/* the request path: four atomic adds, no lock, no allocation */

ngx_int_t
ngx_http_linguamate_metrics_log(ngx_http_request_t *r)
{
    ngx_uint_t                           slot, status, b;
    ngx_msec_int_t                       ms;
    ngx_time_t                          *tp;
    ngx_http_linguamate_ctx_t           *ctx;
    ngx_http_linguamate_metrics_t       *m;
    ngx_http_linguamate_loc_conf_t      *llcf;
    ngx_http_linguamate_main_conf_t     *lmcf;
    ngx_http_linguamate_metrics_zone_t  *mz;

    if (r != r->main) {
        return NGX_OK;
    }

    llcf = ngx_http_get_module_loc_conf(r, ngx_http_linguamate_module);

    if (llcf->metrics == NGX_CONF_UNSET ? !llcf->enable : !llcf->metrics) {
        return NGX_OK;
    }

    /*
     * the zone of this request's configuration: a global would outlive a
     * reload that failed after the zones were set up
     */

    lmcf = ngx_http_get_module_main_conf(r, ngx_http_linguamate_module);
    mz = lmcf->metrics_zone->data;
    m = mz->m;

    /* the route the request first matched, kept across error pages */

    ctx = ngx_http_linguamate_get_ctx(r);
    slot = mz->slot[(ctx && ctx->route_index) ? ctx->route_index
                                              : llcf->route_index];

    status = r->err_status ? r->err_status : r->headers_out.status;
    if (r->connection->error && status < 400) {
        status = 499;
    }

    status = (status >= 100 && status < 600)
             ? ngx_http_linguamate_status_index[status]
             : NGX_HTTP_LINGUAMATE_STATUSES - 1;

    tp = ngx_timeofday();
    ms = (tp->sec - r->start_sec) * 1000 + (tp->msec - r->start_msec);
    if (ms < 0) {
        ms = 0;
    }

    for (b = 0; b < NGX_HTTP_LINGUAMATE_BUCKETS - 1; b++) {
        if ((ngx_msec_t) ms <= ngx_http_linguamate_bucket_ms[b]) {
            break;
        }
    }

    (void) ngx_atomic_fetch_add(
               &m->requests[slot][ngx_http_linguamate_method_index(r)][status],
               1);
    (void) ngx_atomic_fetch_add(&m->buckets[slot][b], 1);
    (void) ngx_atomic_fetch_add(&m->sum_us[slot], (ngx_atomic_int_t) ms * 1000);
    (void) ngx_atomic_fetch_add(&m->count[slot], 1);

    return NGX_OK;
}


void
ngx_http_linguamate_metrics_auth_failure(ngx_http_request_t *r,
    ngx_uint_t reason)
{
    ngx_http_linguamate_main_conf_t     *lmcf;
    ngx_http_linguamate_metrics_zone_t  *mz;

    lmcf = ngx_http_get_module_main_conf(r, ngx_http_linguamate_module);

    if (lmcf->metrics_zone == NULL
        || reason >= NGX_HTTP_LINGUAMATE_NAUTH_REASONS)
    {
        return;
    }

    mz = lmcf->metrics_zone->data;
    (void) ngx_atomic_fetch_add(&mz->m->auth_failures[reason], 1);
}


/* the client telemetry counters: NGX_HTTP_LINGUAMATE_CM_* */

void
ngx_http_linguamate_metrics_client(ngx_http_request_t *r, ngx_uint_t counter,
    ngx_uint_t n)
{
    ngx_http_linguamate_main_conf_t     *lmcf;
    ngx_http_linguamate_metrics_zone_t  *mz;

    lmcf = ngx_http_get_module_main_conf(r, ngx_http_linguamate_module);

    if (lmcf->metrics_zone == NULL || counter >= NGX_HTTP_LINGUAMATE_CM_N) {
        return;
    }

    mz = lmcf->metrics_zone->data;
    (void) ngx_atomic_fetch_add(&mz->m->client[counter],
                                (ngx_atomic_int_t) n);
}


/* RSS and CPU of the master and all its children, from /proc */

static void
ngx_http_linguamate_proc_totals(uint64_t *rss, uint64_t *ticks)
{
    /*
     * /proc is walked at most once a second per worker: health checks
     * and scrapes must not turn into a loop of file reads
     */

    static ngx_msec_t  cached_at;
    static uint64_t    cached_rss, cached_ticks;

    if (cached_at && ngx_current_msec - cached_at < 1000) {
        *rss = cached_rss;
        *ticks = cached_ticks;
        return;
    }

    ngx_http_linguamate_proc_walk(rss, ticks);

    cached_at = ngx_current_msec;
    cached_rss = *rss;
    cached_ticks = *ticks;
}


/*
 * /proc/PID/stat: the parent, the CPU ticks of the process (utime +
 * stime), those of its children that it has reaped (cutime + cstime),
 * and the resident memory; NGX_DECLINED when the process is gone
 */

static ngx_int_t
ngx_http_linguamate_proc_stat(ngx_pid_t pid, ngx_pid_t *ppid,
    uint64_t *ticks, uint64_t *reaped, uint64_t *rss)
{
    u_char      buf[1024], *p, *last;
    ssize_t     n;
    ngx_fd_t    fd;
    ngx_uint_t  field;
    uint64_t    v[5];
    char        path[64];

    (void) ngx_snprintf((u_char *) path, sizeof(path), "/proc/%P/stat%Z",
                        pid);

    fd = ngx_open_file(path, NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);
    if (fd == NGX_INVALID_FILE) {
        return NGX_DECLINED;
    }

    n = read(fd, buf, sizeof(buf) - 1);
    (void) ngx_close_file(fd);

    if (n <= 0) {
        return NGX_DECLINED;
    }

    last = buf + n;
    p = last;

    while (p > buf && p[-1] != ')') {
        p--;
    }

    /*
     * fields after "comm": 3 state, 4 ppid, 14 utime, 15 stime,
     * 16 cutime, 17 cstime, 24 rss
     */

    *ppid = 0;
    v[0] = v[1] = v[2] = v[3] = v[4] = 0;

    for (field = 2; p < last; p++) {
        if (*p == ' ') {
            field++;
            continue;
        }

        if (*p < '0' || *p > '9') {
            continue;
        }

        if (field == 4) {
            *ppid = *ppid * 10 + (*p - '0');

        } else if (field >= 14 && field <= 17) {
            v[field - 14] = v[field - 14] * 10 + (*p - '0');

        } else if (field == 24) {
            v[4] = v[4] * 10 + (*p - '0');

        } else if (field > 24) {
            break;
        }
    }

    *ticks = v[0] + v[1];
    *reaped = v[2] + v[3];
    *rss = v[4] * ngx_pagesize;

    return NGX_OK;
}


/*
 * The master first, with the CPU time of the workers it has reaped
 * (replaced at a reload, or after a crash), then its live children.  In
 * this order a worker that exits in between is missed for one reading,
 * never counted twice; the metrics handler keeps the counter from going
 * back.
 */

static void
ngx_http_linguamate_proc_walk(uint64_t *rss, uint64_t *ticks)
{
    DIR           *dir;
    ngx_int_t      id;
    ngx_pid_t      master, pid, ppid;
    uint64_t       t, reaped, m;
    struct dirent *de;

    *rss = 0;
    *ticks = 0;

    master = (ngx_process == NGX_PROCESS_WORKER) ? getppid() : ngx_pid;

    if (ngx_http_linguamate_proc_stat(master, &ppid, &t, &reaped, &m)
        == NGX_OK)
    {
        *ticks = t + reaped;
        *rss = m;
    }

    dir = opendir("/proc");
    if (dir == NULL) {
        return;
    }

    while ((de = readdir(dir)) != NULL) {

        if (de->d_name[0] < '1' || de->d_name[0] > '9') {
            continue;
        }

        id = ngx_atoi((u_char *) de->d_name, ngx_strlen(de->d_name));
        if (id == NGX_ERROR) {
            continue;
        }

        pid = (ngx_pid_t) id;

        if (pid == master
            || ngx_http_linguamate_proc_stat(pid, &ppid, &t, &reaped, &m)
               != NGX_OK
            || ppid != master)
        {
            continue;
        }

        *ticks += t;
        *rss += m;
    }

    closedir(dir);
}


ngx_int_t
ngx_http_linguamate_process_memory(uint64_t *rss)
{
    uint64_t  ticks;

    ngx_http_linguamate_proc_totals(rss, &ticks);

    return NGX_OK;
}


/* GET /api/metrics: Prometheus text exposition 0.0.4 */

ngx_int_t
ngx_http_linguamate_metrics_handler(ngx_http_request_t *r)
{
    u_char                              *p;
    size_t                               len;
    long                                 hz;
    ngx_int_t                            rc;
    uint64_t                             rss, ticks, cum, limit;
    const char                          *source;
    ngx_buf_t                           *b;
    ngx_uint_t                           i, j, k, s, series;
    ngx_atomic_uint_t                    v, old;
    ngx_chain_t                          out;
    ngx_slab_pool_t                     *shpool;
    ngx_http_linguamate_zone_t         **zp;
    ngx_http_linguamate_metrics_t       *m;
    ngx_http_linguamate_main_conf_t     *lmcf;
    ngx_http_linguamate_metrics_zone_t  *mz;
    ngx_http_linguamate_cluster_status_t  cs;

    lmcf = ngx_http_get_module_main_conf(r, ngx_http_linguamate_module);

    if (lmcf->metrics_zone == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    mz = lmcf->metrics_zone->data;
    m = mz->m;

    /* size: count the series first, then a bound per line */

    series = 64 + 8 * lmcf->zones.nelts + NGX_HTTP_LINGUAMATE_CM_N + 6;

    for (i = 0; i < m->nroutes; i++) {
        if (m->count[i] == 0) {
            continue;
        }

        series += NGX_HTTP_LINGUAMATE_BUCKETS + 2;

        for (j = 0; j < NGX_HTTP_LINGUAMATE_METHODS; j++) {
            for (k = 0; k < NGX_HTTP_LINGUAMATE_STATUSES; k++) {
                if (m->requests[i][j][k]) {
                    series++;
                }
            }
        }
    }

    /* counters keep growing while we render: leave room for new series */

    len = 5120 + (series + 64) * (160 + NGX_HTTP_LINGUAMATE_ROUTE_LEN)
          + lmcf->env_name.len + ngx_http_linguamate_build_version.len
          + ngx_http_linguamate_build_commit.len + lmcf->breakers.nelts * 600;

    b = ngx_create_temp_buf(r->pool, len);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = b->last;

#define LM_ROOM(n)  ((size_t) (b->end - p) > (n))

    p = ngx_sprintf(p,
        "# HELP linguamate_http_requests_total HTTP requests by route, "
        "method and status.\n"
        "# TYPE linguamate_http_requests_total counter\n");

    for (i = 0; i < m->nroutes; i++) {
        for (j = 0; j < NGX_HTTP_LINGUAMATE_METHODS; j++) {
            for (k = 0; k < NGX_HTTP_LINGUAMATE_STATUSES - 1; k++) {
                v = m->requests[i][j][k];

                if (v == 0 || !LM_ROOM(256)) {
                    continue;
                }

                s = ngx_http_linguamate_statuses[k];

                p = ngx_sprintf(p, "linguamate_http_requests_total"
                                "{route=\"%s\",method=\"%V\",status=\"",
                                m->names[i],
                                &ngx_http_linguamate_methods[j]);

                if (s < 10) {
                    p = ngx_sprintf(p, "%uixx", s);
                } else {
                    p = ngx_sprintf(p, "%ui", s);
                }

                p = ngx_sprintf(p, "\"} %uA\n", v);
            }
        }
    }

    p = ngx_sprintf(p,
        "# HELP linguamate_http_request_duration_seconds Request duration "
        "by route.\n"
        "# TYPE linguamate_http_request_duration_seconds histogram\n");

    for (i = 0; i < m->nroutes; i++) {
        if (m->count[i] == 0 || !LM_ROOM(4096)) {
            continue;
        }

        cum = 0;

        for (j = 0; j < NGX_HTTP_LINGUAMATE_BUCKETS; j++) {
            cum += m->buckets[i][j];

            p = ngx_sprintf(p, "linguamate_http_request_duration_seconds_"
                            "bucket{route=\"%s\",le=\"%s\"} %uL\n",
                            m->names[i], ngx_http_linguamate_bucket_le[j],
                            cum);
        }

        v = m->sum_us[i];

        p = ngx_sprintf(p, "linguamate_http_request_duration_seconds_sum"
                        "{route=\"%s\"} %uA.%06uA\n"
                        "linguamate_http_request_duration_seconds_count"
                        "{route=\"%s\"} %uL\n",
                        m->names[i], v / 1000000, v % 1000000,
                        m->names[i], cum);
    }

    p = ngx_sprintf(p,
        "# HELP linguamate_rate_limit_rejected_total Requests refused by a "
        "rate limit or a lockout, by zone.\n"
        "# TYPE linguamate_rate_limit_rejected_total counter\n");

    zp = lmcf->zones.elts;

    for (i = 0; i < lmcf->zones.nelts; i++) {
        if ((zp[i]->kind == NGX_HTTP_LINGUAMATE_ZONE_LIMIT
             || zp[i]->kind == NGX_HTTP_LINGUAMATE_ZONE_LOCKOUT)
            && LM_ROOM(256))
        {
            p = ngx_sprintf(p, "linguamate_rate_limit_rejected_total"
                            "{zone=\"%V\"} %uA\n", &zp[i]->name,
                            zp[i]->sh->rejected);
        }
    }

    p = ngx_sprintf(p,
        "# HELP linguamate_auth_failures_total Refused tokens by reason.\n"
        "# TYPE linguamate_auth_failures_total counter\n");

    for (i = 1; i < NGX_HTTP_LINGUAMATE_NAUTH_REASONS; i++) {
        p = ngx_sprintf(p, "linguamate_auth_failures_total{reason=\"%s\"} "
                        "%uA\n", ngx_http_linguamate_reason_names[i],
                        m->auth_failures[i]);
    }

    p = ngx_sprintf(p,
        "# HELP linguamate_client_logs_total Client log records accepted "
        "by /api/ingest/logs, by level.\n"
        "# TYPE linguamate_client_logs_total counter\n");

    for (i = 0; i < NGX_HTTP_LINGUAMATE_NCLIENT_LEVELS; i++) {
        p = ngx_sprintf(p, "linguamate_client_logs_total{level=\"%s\"} %uA\n",
                        ngx_http_linguamate_client_levels[i],
                        m->client[NGX_HTTP_LINGUAMATE_CM_LEVELS + i]);
    }

    p = ngx_sprintf(p,
        "# HELP linguamate_analytics_events_total Analytics events accepted "
        "by /api/analytics/events.\n"
        "# TYPE linguamate_analytics_events_total counter\n"
        "linguamate_analytics_events_total %uA\n"
        "# HELP linguamate_client_batches_rejected_total Client batches "
        "refused, by endpoint and reason.\n"
        "# TYPE linguamate_client_batches_rejected_total counter\n",
        m->client[NGX_HTTP_LINGUAMATE_CM_ANALYTICS_N]);

    for (i = 0; i < 2; i++) {
        for (j = 0; j < NGX_HTTP_LINGUAMATE_CM_REASONS; j++) {
            p = ngx_sprintf(p, "linguamate_client_batches_rejected_total"
                            "{endpoint=\"%s\",reason=\"%s\"} %uA\n",
                            ngx_http_linguamate_client_endpoints[i],
                            ngx_http_linguamate_client_reasons[j],
                            m->client[NGX_HTTP_LINGUAMATE_CM_REJECTED
                                      + i * NGX_HTTP_LINGUAMATE_CM_REASONS
                                      + j]);
        }
    }

    p = ngx_sprintf(p,
        "# HELP linguamate_shm_zone_bytes Shared memory zones: size and "
        "pages in use.\n"
        "# TYPE linguamate_shm_zone_bytes gauge\n");

    for (i = 0; i < lmcf->zones.nelts && LM_ROOM(512); i++) {
        shpool = zp[i]->shpool;

        p = ngx_sprintf(p, "linguamate_shm_zone_bytes{zone=\"%V\","
                        "kind=\"size\"} %uz\n"
                        "linguamate_shm_zone_bytes{zone=\"%V\","
                        "kind=\"used\"} %uz\n",
                        &zp[i]->name, zp[i]->shm_zone->shm.size,
                        &zp[i]->name,
                        zp[i]->shm_zone->shm.size
                        - shpool->pfree * ngx_pagesize);
    }

    p = ngx_sprintf(p,
        "# HELP linguamate_shm_zone_entries Entries held by each zone.\n"
        "# TYPE linguamate_shm_zone_entries gauge\n");

    for (i = 0; i < lmcf->zones.nelts && LM_ROOM(256); i++) {
        p = ngx_sprintf(p, "linguamate_shm_zone_entries{zone=\"%V\"} %uA\n",
                        &zp[i]->name, zp[i]->sh->nodes);
    }

    p = ngx_sprintf(p,
        "# HELP linguamate_shm_zone_evicted_total Live entries evicted "
        "because a zone was full.\n"
        "# TYPE linguamate_shm_zone_evicted_total counter\n");

    for (i = 0; i < lmcf->zones.nelts && LM_ROOM(256); i++) {
        p = ngx_sprintf(p, "linguamate_shm_zone_evicted_total{zone=\"%V\"} "
                        "%uA\n", &zp[i]->name, zp[i]->sh->evicted);
    }

#if (NGX_STAT_STUB)

    p = ngx_sprintf(p,
        "# HELP linguamate_connections Client connections by state.\n"
        "# TYPE linguamate_connections gauge\n"
        "linguamate_connections{state=\"active\"} %uA\n"
        "linguamate_connections{state=\"reading\"} %uA\n"
        "linguamate_connections{state=\"writing\"} %uA\n"
        "linguamate_connections{state=\"waiting\"} %uA\n"
        "# HELP linguamate_connections_accepted_total Accepted client "
        "connections.\n"
        "# TYPE linguamate_connections_accepted_total counter\n"
        "linguamate_connections_accepted_total %uA\n"
        "# HELP linguamate_connections_handled_total Handled client "
        "connections.\n"
        "# TYPE linguamate_connections_handled_total counter\n"
        "linguamate_connections_handled_total %uA\n",
        *ngx_stat_active, *ngx_stat_reading, *ngx_stat_writing,
        *ngx_stat_waiting, *ngx_stat_accepted, *ngx_stat_handled);

#endif

    /* the live flags, for dashboards and alerts ("maintenance for 1h") */

    p = ngx_sprintf(p,
        "# HELP linguamate_maintenance_mode 1 while maintenance mode is on.\n"
        "# TYPE linguamate_maintenance_mode gauge\n"
        "linguamate_maintenance_mode %ui\n"
        "# HELP linguamate_feature_enabled 1 while a feature is on.\n"
        "# TYPE linguamate_feature_enabled gauge\n"
        "linguamate_feature_enabled{feature=\"chat\"} %ui\n"
        "linguamate_feature_enabled{feature=\"analytics\"} %ui\n"
        "# HELP linguamate_strict_mode 1 while strict mode is on.\n"
        "# TYPE linguamate_strict_mode gauge\n"
        "linguamate_strict_mode %ui\n"
        "# HELP linguamate_log_level The log level in force (pino's "
        "numbers).\n"
        "# TYPE linguamate_log_level gauge\n"
        "linguamate_log_level %ui\n"
        "# HELP linguamate_cache_ttl_seconds The cache TTL in force.\n"
        "# TYPE linguamate_cache_ttl_seconds gauge\n"
        "linguamate_cache_ttl_seconds %ui\n",
        ngx_http_linguamate_flag(lmcf, NGX_HTTP_LINGUAMATE_F_MAINTENANCE),
        ngx_http_linguamate_flag(lmcf, NGX_HTTP_LINGUAMATE_F_CHAT),
        ngx_http_linguamate_flag(lmcf, NGX_HTTP_LINGUAMATE_F_ANALYTICS),
        ngx_http_linguamate_flag(lmcf, NGX_HTTP_LINGUAMATE_F_STRICT),
        ngx_http_linguamate_flag(lmcf, NGX_HTTP_LINGUAMATE_F_LOG_LEVEL),
        ngx_http_linguamate_flag(lmcf, NGX_HTTP_LINGUAMATE_F_CACHE_TTL));

    p = ngx_http_linguamate_breakers_metrics(lmcf, p, b->end - 2048);

    ngx_http_linguamate_proc_totals(&rss, &ticks);

    /*
     * a counter: never below what any worker reported before (a worker
     * reaped between two readings, another worker's older cache)
     */

    for ( ;; ) {
        old = m->cpu_ticks;

        if ((ngx_atomic_uint_t) ticks <= old) {
            ticks = old;
            break;
        }

        if (ngx_atomic_cmp_set(&m->cpu_ticks, old,
                               (ngx_atomic_uint_t) ticks))
        {
            break;
        }
    }

    limit = ngx_http_linguamate_memory_limit(lmcf, &source);

    p = ngx_sprintf(p,
        "# HELP linguamate_memory_limit_bytes The memory limit the memory "
        "check and alert compare with (%s).\n"
        "# TYPE linguamate_memory_limit_bytes gauge\n"
        "linguamate_memory_limit_bytes %uL\n", source, limit);

    /* cluster mode only: a deployment without REDIS_URL shows none */

    if (ngx_http_linguamate_cluster_on(lmcf)) {
        ngx_http_linguamate_cluster_status(lmcf, &cs);

        p = ngx_sprintf(p,
            "# HELP linguamate_redis_up 1 while this replica's connections "
            "to Redis (REDIS_URL) are up.\n"
            "# TYPE linguamate_redis_up gauge\n"
            "linguamate_redis_up %ui\n"
            "# HELP linguamate_cluster_sync_lag_seconds Time since Redis "
            "last answered this replica's sync round.\n"
            "# TYPE linguamate_cluster_sync_lag_seconds gauge\n"
            "linguamate_cluster_sync_lag_seconds %M.%03M\n"
            "# HELP linguamate_cluster_unsynced_updates Changes "
            "(revocations, locks, flags) made here and not yet written to "
            "Redis.\n"
            "# TYPE linguamate_cluster_unsynced_updates gauge\n"
            "linguamate_cluster_unsynced_updates %ui\n"
            "# HELP linguamate_cluster_applied_total Changes of other "
            "replicas applied here.\n"
            "# TYPE linguamate_cluster_applied_total counter\n"
            "linguamate_cluster_applied_total %ui\n"
            "# HELP linguamate_redis_reconnects_total Redis connections "
            "lost by this replica's workers.\n"
            "# TYPE linguamate_redis_reconnects_total counter\n"
            "linguamate_redis_reconnects_total %ui\n",
            cs.up, cs.lag / 1000, cs.lag % 1000, cs.unsynced, cs.applied,
            cs.reconnects);
    }

    hz = sysconf(_SC_CLK_TCK);
    if (hz <= 0) {
        hz = 100;
    }

    p = ngx_sprintf(p,
        "# HELP process_resident_memory_bytes Resident memory of the nginx "
        "master and all its workers.\n"
        "# TYPE process_resident_memory_bytes gauge\n"
        "process_resident_memory_bytes %uL\n"
        "# HELP process_cpu_seconds_total CPU time of the nginx master and "
        "all its workers, those it replaced included.\n"
        "# TYPE process_cpu_seconds_total counter\n"
        "process_cpu_seconds_total %uL.%02uL\n"
        "# HELP process_start_time_seconds Start of the nginx master.\n"
        "# TYPE process_start_time_seconds gauge\n"
        "process_start_time_seconds %M.%03M\n"
        "# HELP linguamate_build_info The loaded module's package version "
        "and commit, NODE_ENV and nginx's version.\n"
        "# TYPE linguamate_build_info gauge\n"
        "linguamate_build_info{version=\"%V\",env=\"%V\",nginx=\""
        NGINX_VERSION "\",commit=\"%V\"} 1\n",
        rss, ticks / hz, (ticks % hz) * 100 / hz,
        lmcf->master_start / 1000, lmcf->master_start % 1000,
        &ngx_http_linguamate_build_version, &lmcf->env_name,
        &ngx_http_linguamate_build_commit);

#undef LM_ROOM

    b->last = p;
    b->last_buf = 1;
    b->last_in_chain = 1;

    r->headers_out.status = NGX_HTTP_OK;
    ngx_str_set(&r->headers_out.content_type,
                "text/plain; version=0.0.4; charset=utf-8");
    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.content_type_lowcase = NULL;
    r->headers_out.content_length_n = b->last - b->pos;

    if (ngx_http_discard_request_body(r) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


/*
 * The memory limit of this deployment: the cgroup's when it has one,
 * else MEMORY_LIMIT_MB, else the machine's memory.
 */

uint64_t
ngx_http_linguamate_memory_limit(ngx_http_linguamate_main_conf_t *lmcf,
    const char **source)
{
    u_char       buf[256], *p;
    ssize_t      n;
    uint64_t     v;
    ngx_fd_t     fd;
    ngx_uint_t   i;
    static char *cgroup[] = { "/sys/fs/cgroup/memory.max",
                              "/sys/fs/cgroup/memory/memory.limit_in_bytes",
                              NULL };

    for (i = 0; cgroup[i]; i++) {
        fd = ngx_open_file(cgroup[i], NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);
        if (fd == NGX_INVALID_FILE) {
            continue;
        }

        n = read(fd, buf, sizeof(buf) - 1);
        (void) ngx_close_file(fd);

        v = 0;
        for (p = buf; n > 0 && p < buf + n && *p >= '0' && *p <= '9'; p++) {
            v = v * 10 + (*p - '0');
        }

        /* "max", or v1's "unlimited" (close to 2^63) */

        if (v && v < ((uint64_t) 1 << 60)) {
            *source = "cgroup";
            return v;
        }
    }

    if (lmcf->memory_limit_mb) {
        *source = "setting";
        return (uint64_t) lmcf->memory_limit_mb * 1024 * 1024;
    }

    *source = "system";

    fd = ngx_open_file("/proc/meminfo", NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);
    if (fd == NGX_INVALID_FILE) {
        return 0;
    }

    n = read(fd, buf, sizeof(buf) - 1);
    (void) ngx_close_file(fd);

    if (n <= 0) {
        return 0;
    }

    buf[n] = '\0';
    p = (u_char *) ngx_strstr(buf, "MemTotal:");
    if (p == NULL) {
        return 0;
    }

    for (p += 9; *p == ' '; p++) { /* void */ }

    for (v = 0; *p >= '0' && *p <= '9'; p++) {
        v = v * 10 + (*p - '0');
    }

    return v * 1024;
}
