/*
 * Copyright (C) ngx_linguamate developers
 *
 * Rate limiting in the PREACCESS phase: a key may make at most "limit"
 * requests in any window of "window" milliseconds, counted in shared
 * memory under the zone's mutex, so the number of workers changes nothing.
 *
 * A zone whose configured limit (before strict mode halves it) is in the
 * exact range, at most NGX_HTTP_LINGUAMATE_LIMIT_MAX, keeps an exact
 * sliding window log per key; above it, a bucketed window of 64 counters
 * (ngx_http_linguamate_window.c), whose memory does not grow with the
 * limit, which never lets more than the limit through and may refuse
 * early by at most the count of its oldest bucket.  The mode is fixed for a
 * configuration; every node says which it holds, so a node of the other
 * kind (a reload moved the limit across the range) is converted, never
 * misread.
 */


#include "ngx_http_linguamate_module.h"
#include "ngx_http_linguamate_json.h"
#include "ngx_http_linguamate_log.h"
#include "ngx_http_linguamate_shm.h"
#include "ngx_http_linguamate_window.h"
#include "ngx_http_linguamate_limit.h"
#include "ngx_http_linguamate_flags.h"
#include "ngx_http_linguamate_session.h"
#include "ngx_http_linguamate_cluster.h"


#define NGX_HTTP_LINGUAMATE_LIMIT_FROM_SET       0
#define NGX_HTTP_LINGUAMATE_LIMIT_FROM_REQUESTS  1
#define NGX_HTTP_LINGUAMATE_LIMIT_FROM_LOGIN     2

/* how a node counts: its head's mode */
#define NGX_HTTP_LINGUAMATE_LIMIT_MODE_LOG       0
#define NGX_HTTP_LINGUAMATE_LIMIT_MODE_BUCKETS   1


typedef struct {
    ngx_http_complex_value_t   *key;        /* NULL: client address + route */
    ngx_uint_t                  limit;
    ngx_uint_t                  limit_from;
    ngx_msec_t                  window;     /* 0: RATE_LIMIT_WINDOW_MS */
    ngx_http_linguamate_zone_t *zone;
    ngx_msec_t                  active;     /* cluster: synced while seen */
    ngx_msec_t                  interval;   /* CLUSTER_SYNC_MS */
    ngx_msec_t                  cluster_window;
    ngx_msec_t                  width;      /* of a Redis bucket */
    unsigned                    cluster:1;
} ngx_http_linguamate_limit_zone_t;


/*
 * A limit node's value: this head, then the sliding log or the buckets
 * (at NGX_HTTP_LINGUAMATE_LIMIT_OFF), as "mode" says.  A node the log
 * makes is zeroed: its mode is LOG.  The head is copied byte for byte when
 * a log grows into a new node and when a node is converted.  The rest is
 * cluster mode's (docs/cluster.md): the other replicas' count of the key
 * as Redis last gave it, and what of this replica's count Redis has.
 */
typedef struct {
    uint64_t                    sent;       /* the last Redis bucket sent */
    uint32_t                    touched;    /* ngx_current_msec, low bits */
    uint32_t                    epoch;      /* the connection epoch of sent */
    uint32_t                    remote;     /* the others' count */
    uint32_t                    remote_at;  /* ngx_current_msec, low bits */
    uint32_t                    synced_at;  /* sent, ngx_current_msec */
    uint32_t                    replicas;   /* others that count the key */
    uint32_t                    mode;       /* LIMIT_MODE_LOG or _BUCKETS */
    uint32_t                    hot_at;     /* in reach somewhere: when */
    uint32_t                    hot_pub;    /* this replica said so: when */
    uint32_t                    pad;
} ngx_http_linguamate_limit_head_t;

#define NGX_HTTP_LINGUAMATE_LIMIT_OFF  sizeof(ngx_http_linguamate_limit_head_t)

/* Redis buckets per window: the cluster-wide count's granularity */
#define NGX_HTTP_LINGUAMATE_LIMIT_BUCKETS     64
/* keys sent per zone per interval, at most */
#define NGX_HTTP_LINGUAMATE_LIMIT_SYNC_MAX    512
/* a key out of reach of its limit is sent every this many intervals */
#define NGX_HTTP_LINGUAMATE_LIMIT_COOL        8
/* in reach: less than half the limit left, or less than this many
   intervals' worth of the key's pace */
#define NGX_HTTP_LINGUAMATE_LIMIT_REACH       16


/* one key's round trip */
typedef struct {
    ngx_queue_t                 queue;
    ngx_http_linguamate_zone_t *zone;
    uint32_t                    hash;
    uint32_t                    sent_at;
    ngx_uint_t                  publish;    /* in reach: tell the others */
    int64_t                     from;       /* the first bucket */
    ngx_uint_t                  nb;
    uint32_t                    counts[NGX_HTTP_LINGUAMATE_LIMIT_BUCKETS + 2];
    size_t                      len;
    u_char                      key[1];
} ngx_http_linguamate_limit_sync_t;


typedef struct {
    ngx_http_linguamate_limit_t *limit;
    ngx_uint_t                   max;
    ngx_uint_t                   mode;        /* MODE_LOG or _BUCKETS */
    ngx_msec_t                   window;
    ngx_uint_t                   remaining;
    ngx_msec_t                   reset;       /* window fully clear */
    ngx_msec_t                   retry;       /* a slot frees up */
    uint32_t                     stamp;       /* the log's last count */
    uint64_t                     bucket;      /* the bucket counted in */
    ngx_str_t                    key;
    uint32_t                     hash;
    ngx_uint_t                   weight;      /* requests this one counts */
    ngx_uint_t                   counted;
    unsigned                     rejected:1;
} ngx_http_linguamate_verdict_t;


static ngx_int_t ngx_http_linguamate_limit_key(ngx_http_request_t *r,
    ngx_http_linguamate_limit_zone_t *lz, ngx_str_t *key);
static void ngx_http_linguamate_limit_account(ngx_http_request_t *r,
    ngx_http_linguamate_verdict_t *v);
static ngx_http_linguamate_node_t *ngx_http_linguamate_limit_convert(
    ngx_http_linguamate_zone_t *zone, ngx_http_linguamate_node_t *node,
    ngx_http_linguamate_verdict_t *v, ngx_log_t *log);
static void ngx_http_linguamate_limit_log_account(ngx_http_request_t *r,
    ngx_http_linguamate_verdict_t *v, ngx_http_linguamate_node_t *node,
    uint32_t remote);
static void ngx_http_linguamate_limit_buckets_account(ngx_http_request_t *r,
    ngx_http_linguamate_verdict_t *v, ngx_http_linguamate_node_t *node,
    uint32_t remote);
static void ngx_http_linguamate_limit_undo(ngx_http_linguamate_verdict_t *v);
static ngx_int_t ngx_http_linguamate_limit_headers(ngx_http_request_t *r,
    ngx_http_linguamate_verdict_t *v, ngx_uint_t n,
    ngx_http_linguamate_verdict_t *worst);
static void ngx_http_linguamate_limit_log(ngx_http_request_t *r,
    ngx_http_linguamate_verdict_t *v, ngx_uint_t dry_run);
static ngx_uint_t ngx_http_linguamate_limit_max(
    ngx_http_linguamate_main_conf_t *lmcf,
    ngx_http_linguamate_limit_zone_t *lz, ngx_uint_t *mode);
static void ngx_http_linguamate_limit_sync(void *data, ngx_msec_t now,
    ngx_log_t *log);
static void ngx_http_linguamate_limit_sync_buckets(
    ngx_http_linguamate_node_t *node, ngx_http_linguamate_limit_sync_t *ks,
    ngx_msec_t now, int64_t wall, int64_t width, ngx_msec_t window);
static void ngx_http_linguamate_limit_synced(ngx_http_linguamate_redis_t *rc,
    redisReply *reply, void *data);
static void ngx_http_linguamate_limit_hot(u_char *msg, size_t len);


/*
 * The others' count of a key, kept per Redis bucket of this replica:
 * ARGV: replica, now (epoch ms), window, bucket width, then pairs of
 * bucket and this replica's count in it (absolute: a second write of the
 * same count changes nothing).  Buckets that left the window go; the
 * oldest bucket still touching it counts whole (never less than the
 * truth).  Returns the sum of the other replicas' buckets and how many
 * other replicas have some.
 */

static const char  ngx_http_linguamate_limit_lua[] =
    "local me = ARGV[1]\n"
    "local width = tonumber(ARGV[4])\n"
    "local oldest = math.floor((tonumber(ARGV[2]) - tonumber(ARGV[3]))"
    " / width)\n"
    "for i = 5, #ARGV, 2 do\n"
    "  local f = ARGV[i] .. ':' .. me\n"
    "  if ARGV[i + 1] == '0' then redis.call('HDEL', KEYS[1], f)\n"
    "  else redis.call('HSET', KEYS[1], f, ARGV[i + 1]) end\n"
    "end\n"
    "local all = redis.call('HGETALL', KEYS[1])\n"
    "local sum, n, seen, old = 0, 0, {}, {}\n"
    "for i = 1, #all, 2 do\n"
    "  local b, r = string.match(all[i], '^(%d+):(.+)$')\n"
    "  b = tonumber(b)\n"
    "  if b == nil or b < oldest then\n"
    "    old[#old + 1] = all[i]\n"
    "    if #old == 500 then\n"
    "      redis.call('HDEL', KEYS[1], unpack(old))\n"
    "      old = {}\n"
    "    end\n"
    "  elseif r ~= me then\n"
    "    sum = sum + tonumber(all[i + 1])\n"
    "    if not seen[r] then seen[r] = true; n = n + 1 end\n"
    "  end\n"
    "end\n"
    "if #old > 0 then redis.call('HDEL', KEYS[1], unpack(old)) end\n"
    "redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]) + 2 * width)\n"
    "return {sum, n}\n";

static ngx_http_linguamate_cluster_script_t  ngx_http_linguamate_limit_script
    = { ngx_string(ngx_http_linguamate_limit_lua), { 0 }, 0 };


static ngx_str_t  ngx_http_linguamate_limit_statuses[] = {
    ngx_null_string,
    ngx_string("PASSED"),
    ngx_string("ALLOWLISTED"),
    ngx_string("REJECTED_DRY_RUN"),
    ngx_string("REJECTED")
};


/*
 * linguamate_limit_zone NAME size=SIZE [key=STRING] [window=TIME]
 *                       [limit=N|requests|login];
 */

char *
ngx_http_linguamate_limit_zone(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_linguamate_main_conf_t *lmcf = conf;

    u_char                            *p;
    ssize_t                            size;
    ngx_str_t                         *value, name, s, sig;
    ngx_int_t                          n;
    ngx_uint_t                         i;
    ngx_http_linguamate_zone_t        *zone;
    ngx_http_linguamate_limit_zone_t  *lz;
    ngx_http_compile_complex_value_t   ccv;

    value = cf->args->elts;
    name = value[1];
    size = 0;

    lz = ngx_pcalloc(cf->pool, sizeof(ngx_http_linguamate_limit_zone_t));
    if (lz == NULL) {
        return NGX_CONF_ERROR;
    }

    lz->limit_from = NGX_HTTP_LINGUAMATE_LIMIT_FROM_REQUESTS;
    ngx_str_set(&sig, "a rate limit keyed by the client address and route");

    for (i = 2; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "size=", 5) == 0) {
            size = ngx_http_linguamate_zone_size(cf, &name, &value[i]);
            if (size == NGX_ERROR) {
                return NGX_CONF_ERROR;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "key=", 4) == 0) {
            lz->key = ngx_palloc(cf->pool, sizeof(ngx_http_complex_value_t));
            if (lz->key == NULL) {
                return NGX_CONF_ERROR;
            }

            s.data = value[i].data + 4;
            s.len = value[i].len - 4;

            if (s.len == 0) {
                return "has an empty key";
            }

            ngx_memzero(&ccv, sizeof(ngx_http_compile_complex_value_t));

            ccv.cf = cf;
            ccv.value = &s;
            ccv.complex_value = lz->key;

            if (ngx_http_compile_complex_value(&ccv) != NGX_OK) {
                return NGX_CONF_ERROR;
            }

            sig.len = sizeof("a rate limit keyed by \"\"") + s.len;
            sig.data = ngx_pnalloc(cf->pool, sig.len);
            if (sig.data == NULL) {
                return NGX_CONF_ERROR;
            }

            p = ngx_sprintf(sig.data, "a rate limit keyed by \"%V\"", &s);
            sig.len = p - sig.data;

            continue;
        }

        if (ngx_strncmp(value[i].data, "window=", 7) == 0) {
            s.data = value[i].data + 7;
            s.len = value[i].len - 7;

            n = ngx_parse_time(&s, 0);

            if (n == NGX_ERROR || n < 1000 || n > 86400000) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "linguamate: invalid window \"%V\" of "
                                   "zone \"%V\": 1s to 1d", &s, &name);
                return NGX_CONF_ERROR;
            }

            lz->window = (ngx_msec_t) n;
            continue;
        }

        if (ngx_strncmp(value[i].data, "limit=", 6) == 0) {
            s.data = value[i].data + 6;
            s.len = value[i].len - 6;

            if (s.len == 8 && ngx_strncmp(s.data, "requests", 8) == 0) {
                lz->limit_from = NGX_HTTP_LINGUAMATE_LIMIT_FROM_REQUESTS;
                continue;
            }

            if (s.len == 5 && ngx_strncmp(s.data, "login", 5) == 0) {
                lz->limit_from = NGX_HTTP_LINGUAMATE_LIMIT_FROM_LOGIN;
                continue;
            }

            n = ngx_atoi(s.data, s.len);

            if (n == NGX_ERROR || n < 1
                || n > NGX_HTTP_LINGUAMATE_LIMIT_BUCKETED_MAX)
            {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "linguamate: invalid limit \"%V\" of "
                                   "zone \"%V\": 1 to %d, \"requests\" or "
                                   "\"login\"", &s, &name,
                                   NGX_HTTP_LINGUAMATE_LIMIT_BUCKETED_MAX);
                return NGX_CONF_ERROR;
            }

            lz->limit = (ngx_uint_t) n;
            lz->limit_from = NGX_HTTP_LINGUAMATE_LIMIT_FROM_SET;
            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "linguamate: invalid parameter \"%V\"", &value[i]);
        return NGX_CONF_ERROR;
    }

    if (size == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "linguamate: zone \"%V\" needs a size=", &name);
        return NGX_CONF_ERROR;
    }

    zone = ngx_http_linguamate_zone_add(cf, lmcf, &name, (size_t) size,
                                        NGX_HTTP_LINGUAMATE_ZONE_LIMIT, &sig);
    if (zone == NULL) {
        return NGX_CONF_ERROR;
    }

    zone->data = lz;
    lz->zone = zone;

    return NGX_CONF_OK;
}


/*
 * postconfiguration, cluster mode: every limit zone exchanges its counts
 * every CLUSTER_SYNC_MS; a key is refreshed while it was seen in the
 * last four intervals.
 */

ngx_int_t
ngx_http_linguamate_limit_cluster(ngx_conf_t *cf,
    ngx_http_linguamate_main_conf_t *lmcf)
{
    ngx_int_t                          rc;
    ngx_uint_t                         i;
    ngx_http_linguamate_zone_t       **zp;
    ngx_http_linguamate_limit_zone_t  *lz;

    if (!ngx_http_linguamate_cluster_on(lmcf)) {
        return NGX_OK;
    }

    if (ngx_http_linguamate_cluster_script(&ngx_http_linguamate_limit_script)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    ngx_http_linguamate_cluster_on_hot(ngx_http_linguamate_limit_hot);

    zp = lmcf->zones.elts;

    for (i = 0; i < lmcf->zones.nelts; i++) {
        if (zp[i]->kind != NGX_HTTP_LINGUAMATE_ZONE_LIMIT) {
            continue;
        }

        lz = zp[i]->data;
        lz->cluster = 1;
        lz->interval = lmcf->cluster_sync_ms;
        lz->active = NGX_HTTP_LINGUAMATE_LIMIT_COOL * lz->interval;
        lz->cluster_window = lz->window ? lz->window
                                        : lmcf->rate_limit_window_ms;

        /* window/64, never finer than the interval the counts come in */
        lz->width = ngx_max(lz->cluster_window
                            / NGX_HTTP_LINGUAMATE_LIMIT_BUCKETS,
                            lz->interval);

        rc = ngx_http_linguamate_cluster_on_sync(cf,
                                                 ngx_http_linguamate_limit_sync,
                                                 zp[i]);
        if (rc == NGX_ERROR) {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/* linguamate_limit NAME [dry_run]; linguamate_limit off; */

char *
ngx_http_linguamate_limit(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_linguamate_loc_conf_t *llcf = conf;

    ngx_str_t                        *value;
    ngx_http_linguamate_zone_t       *zone;
    ngx_http_linguamate_limit_t      *limit;
    ngx_http_linguamate_main_conf_t  *lmcf;

    value = cf->args->elts;

    if (llcf->limits == NULL) {
        llcf->limits = ngx_array_create(cf->pool, 2,
                                        sizeof(ngx_http_linguamate_limit_t));
        if (llcf->limits == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    /* "off" stops inheritance and limits nothing here */

    if (value[1].len == 3 && ngx_strncmp(value[1].data, "off", 3) == 0) {
        if (cf->args->nelts != 2 || llcf->limits->nelts) {
            return "\"off\" stands alone";
        }

        return NGX_CONF_OK;
    }

    lmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_linguamate_module);

    zone = ngx_http_linguamate_zone_find(lmcf, &value[1],
                                         NGX_HTTP_LINGUAMATE_ZONE_LIMIT);
    if (zone == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "linguamate: unknown limit zone \"%V\" "
                           "(declare it first with linguamate_limit_zone)",
                           &value[1]);
        return NGX_CONF_ERROR;
    }

    limit = ngx_array_push(llcf->limits);
    if (limit == NULL) {
        return NGX_CONF_ERROR;
    }

    limit->zone = zone;
    limit->dry_run = 0;

    if (cf->args->nelts == 3) {
        if (ngx_strcmp(value[2].data, "dry_run") != 0) {
            return "takes \"dry_run\" as its second parameter";
        }

        limit->dry_run = 1;
    }

    return NGX_CONF_OK;
}


/*
 * Strict mode halves every limit, on the next request.  The mode comes
 * from the configured limit, which only a reload changes: halving never
 * moves a zone out of the bucketed window.
 */

static ngx_uint_t
ngx_http_linguamate_limit_max(ngx_http_linguamate_main_conf_t *lmcf,
    ngx_http_linguamate_limit_zone_t *lz, ngx_uint_t *mode)
{
    ngx_uint_t  max;

    switch (lz->limit_from) {
    case NGX_HTTP_LINGUAMATE_LIMIT_FROM_REQUESTS:
        max = lmcf->rate_limit_max_requests;
        break;
    case NGX_HTTP_LINGUAMATE_LIMIT_FROM_LOGIN:
        max = lmcf->rate_limit_max_login_attempts;
        break;
    default:
        max = lz->limit;
    }

    *mode = (max > NGX_HTTP_LINGUAMATE_LIMIT_MAX)
            ? NGX_HTTP_LINGUAMATE_LIMIT_MODE_BUCKETS
            : NGX_HTTP_LINGUAMATE_LIMIT_MODE_LOG;

    if (ngx_http_linguamate_flag(lmcf, NGX_HTTP_LINGUAMATE_F_STRICT)) {
        max = max > 1 ? max / 2 : 1;
    }

    return max;
}


ngx_int_t
ngx_http_linguamate_limit_handler(ngx_http_request_t *r)
{
    size_t                             len;
    u_char                            *p;
    ngx_uint_t                         i, n, dry;
    ngx_str_t                          extra;
    ngx_http_linguamate_ctx_t         *ctx;
    ngx_http_linguamate_limit_t       *limits;
    ngx_http_linguamate_verdict_t     *v, *worst;
    ngx_http_linguamate_loc_conf_t    *llcf;
    ngx_http_linguamate_main_conf_t   *lmcf;
    ngx_http_linguamate_limit_zone_t  *lz;

    if (r != r->main) {
        return NGX_DECLINED;
    }

    llcf = ngx_http_get_module_loc_conf(r, ngx_http_linguamate_module);

    if (llcf->limits == NULL || llcf->limits->nelts == 0) {
        return NGX_DECLINED;
    }

    lmcf = ngx_http_get_module_main_conf(r, ngx_http_linguamate_module);

    if (llcf->probe && !lmcf->rate_limit_probes) {
        return NGX_DECLINED;
    }

    ctx = ngx_http_linguamate_get_ctx(r);
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* once per request, whatever internal redirects follow */

    if (ctx->limit_done) {
        return NGX_DECLINED;
    }

    ctx->limit_done = 1;

    if (ngx_http_linguamate_client_allowlisted(r,
                                               lmcf->rate_limit_allowlist))
    {
        ctx->limit_status = NGX_HTTP_LINGUAMATE_LIMIT_ALLOWLISTED;
        ngx_log_debug0(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "linguamate limit decision: ALLOWLISTED");
        return NGX_DECLINED;
    }

    n = llcf->limits->nelts;
    limits = llcf->limits->elts;

    v = ngx_pcalloc(r->pool, n * sizeof(ngx_http_linguamate_verdict_t));
    if (v == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    worst = NULL;
    ctx->limit_status = NGX_HTTP_LINGUAMATE_LIMIT_PASSED;

    for (i = 0; i < n; i++) {
        lz = limits[i].zone->data;

        v[i].limit = &limits[i];
        v[i].max = ngx_http_linguamate_limit_max(lmcf, lz, &v[i].mode);
        v[i].window = lz->window ? lz->window : lmcf->rate_limit_window_ms;
        v[i].weight = 1;

        /*
         * a tRPC call counts against a login limit once per auth
         * procedure it holds, and not at all without one
         */

        if (lz->limit_from == NGX_HTTP_LINGUAMATE_LIMIT_FROM_LOGIN
            && ctx->trpc)
        {
            if (ctx->trpc_auth_n == 0) {
                v[i].limit = NULL;
                continue;
            }

            v[i].weight = ctx->trpc_auth_n;
        }

        if (ngx_http_linguamate_limit_key(r, lz, &v[i].key) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        if (v[i].key.len == 0 || v[i].key.len > 65535) {
            /* an empty key is not limited, as with limit_req */
            v[i].limit = NULL;
            continue;
        }

        v[i].hash = ngx_crc32_short(v[i].key.data, v[i].key.len);

        dry = limits[i].dry_run || llcf->limit_dry_run;

        ngx_http_linguamate_limit_account(r, &v[i]);

        ngx_log_debug6(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "linguamate limit \"%V\" key \"%V\" weight %ui: "
                       "remaining %ui%s%s", &limits[i].zone->name,
                       &v[i].key, v[i].weight, v[i].remaining,
                       v[i].rejected ? ", rejected" : "",
                       dry ? " (dry run)" : "");

        if (v[i].rejected) {
            (void) ngx_atomic_fetch_add(&limits[i].zone->sh->rejected, 1);
            ngx_http_linguamate_limit_log(r, &v[i], dry);

            if (dry) {
                ctx->limit_status = NGX_HTTP_LINGUAMATE_LIMIT_DRY_RUN;
                v[i].rejected = 0;
                v[i].retry = 0;

            } else {
                worst = &v[i];
                break;
            }
        }

        if (worst == NULL || v[i].remaining < worst->remaining
            || (v[i].remaining == worst->remaining
                && v[i].reset > worst->reset))
        {
            worst = &v[i];
        }
    }

    if (i < n) {
        /* rejected by limits[i]: the limits before it did not serve one */

        while (i--) {
            if (v[i].counted) {
                v[i].remaining += v[i].counted;
                ngx_http_linguamate_limit_undo(&v[i]);
            }
        }

        n = worst - v + 1;
        ctx->limit_status = NGX_HTTP_LINGUAMATE_LIMIT_REJECTED;
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "linguamate limit decision: %V",
                   &ngx_http_linguamate_limit_statuses[ctx->limit_status]);

    if (worst == NULL) {
        return NGX_DECLINED;
    }

    if (ngx_http_linguamate_limit_headers(r, v, n, worst) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ctx->limit_status != NGX_HTTP_LINGUAMATE_LIMIT_REJECTED) {
        return NGX_DECLINED;
    }

    len = sizeof(",\"retryAfter\":") + NGX_INT_T_LEN;
    p = ngx_pnalloc(r->pool, len);
    if (p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    extra.data = p;
    extra.len = ngx_sprintf(p, ",\"retryAfter\":%M",
                            (worst->retry + 999) / 1000) - p;

    return ngx_http_linguamate_phase_error(r, NGX_HTTP_TOO_MANY_REQUESTS,
                                           "RATE_LIMIT_EXCEEDED",
                                           "Rate limit exceeded", &extra);
}


static ngx_int_t
ngx_http_linguamate_limit_key(ngx_http_request_t *r,
    ngx_http_linguamate_limit_zone_t *lz, ngx_str_t *key)
{
    u_char     *p;
    size_t      alen;
    ngx_str_t   route;

    if (lz->key) {
        return ngx_http_complex_value(r, lz->key, key);
    }

    /* the binary client address, as $binary_remote_addr, and the route */

    switch (r->connection->sockaddr->sa_family) {

    case AF_INET:
        alen = 4;
        break;

#if (NGX_HAVE_INET6)
    case AF_INET6:
        alen = 16;
        break;
#endif

    default:
        alen = 0;
    }

    ngx_http_linguamate_route(r, &route);

    key->len = 1 + alen + route.len;
    key->data = ngx_pnalloc(r->pool, key->len);
    if (key->data == NULL) {
        return NGX_ERROR;
    }

    p = key->data;
    *p++ = (u_char) alen;

    if (alen == 4) {
        p = ngx_cpymem(p, &((struct sockaddr_in *)
                            r->connection->sockaddr)->sin_addr, 4);
    }

#if (NGX_HAVE_INET6)
    if (alen == 16) {
        p = ngx_cpymem(p, &((struct sockaddr_in6 *)
                            r->connection->sockaddr)->sin6_addr, 16);
    }
#endif

    ngx_memcpy(p, route.data, route.len);

    return NGX_OK;
}


/*
 * count one request for v->key, or reject it, under the zone's mutex; in
 * cluster mode the other replicas' count (as Redis last gave it, for at
 * most a window) is added to this replica's own
 */

static void
ngx_http_linguamate_limit_account(ngx_http_request_t *r,
    ngx_http_linguamate_verdict_t *v)
{
    uint32_t                           now, remote;
    ngx_http_linguamate_node_t        *node;
    ngx_http_linguamate_zone_t        *zone;
    ngx_http_linguamate_limit_head_t  *head;
    ngx_http_linguamate_limit_zone_t  *lz;

    zone = v->limit->zone;
    lz = zone->data;
    now = (uint32_t) ngx_current_msec;
    remote = 0;

    ngx_shmtx_lock(&zone->shpool->mutex);

    node = ngx_http_linguamate_node_lookup(zone, v->hash, v->key.data,
                                           v->key.len);

    if (node) {
        head = ngx_http_linguamate_node_value(node);

        if (head->mode != v->mode) {
            node = ngx_http_linguamate_limit_convert(zone, node, v,
                                                     r->connection->log);
            if (node == NULL) {
                /* no room for it in the other kind: through, uncounted */
                ngx_shmtx_unlock(&zone->shpool->mutex);
                v->remaining = v->max;
                v->reset = v->window;
                return;
            }

            head = ngx_http_linguamate_node_value(node);
        }

        if (lz->cluster) {
            head->touched = now;

            if (ngx_http_linguamate_window_age(now, head->remote_at)
                < v->window)
            {
                /* never more than the limit: no sum below can wrap */
                remote = ngx_min(head->remote, (uint32_t) ngx_min(v->max,
                                                        0x7fffffff));
            }
        }
    }

    if (v->mode == NGX_HTTP_LINGUAMATE_LIMIT_MODE_LOG) {
        ngx_http_linguamate_limit_log_account(r, v, node, remote);

    } else {
        ngx_http_linguamate_limit_buckets_account(r, v, node, remote);
    }

    ngx_shmtx_unlock(&zone->shpool->mutex);
}


/* the exact sliding log: one stamp per counted request */

static void
ngx_http_linguamate_limit_log_account(ngx_http_request_t *r,
    ngx_http_linguamate_verdict_t *v, ngx_http_linguamate_node_t *node,
    uint32_t remote)
{
    uint32_t                           now;
    ngx_msec_t                         msec;
    ngx_uint_t                         fresh;
    ngx_http_linguamate_zone_t        *zone;
    ngx_http_linguamate_window_t      *w;
    ngx_http_linguamate_limit_head_t  *head;

    zone = v->limit->zone;
    msec = ngx_current_msec;
    now = (uint32_t) msec;

    if (node) {
        w = ngx_http_linguamate_node_window(node,
                                            NGX_HTTP_LINGUAMATE_LIMIT_OFF);

        if ((ngx_msec_int_t) (node->expire - msec) <= 0) {
            /* every stamp has aged out: start afresh */
            w->head = 0;
            w->count = 0;
        }

        ngx_http_linguamate_window_expire(w, now, v->window);

        if ((uint64_t) w->count + remote + v->weight > v->max) {

            if (w->count + v->weight > v->max) {
                /* the oldest counted request leaves the window first */

                v->retry = v->window - ngx_http_linguamate_window_age(now,
                                      ngx_http_linguamate_window_oldest(w));
                v->reset = v->window - ngx_http_linguamate_window_age(now,
                                      ngx_http_linguamate_window_newest(w));

            } else {
                /* the other replicas' requests: one of their buckets */
                v->retry = ngx_max(((ngx_http_linguamate_limit_zone_t *)
                                    v->limit->zone->data)->width, 1000);
                v->reset = v->window;
            }

            v->remaining = 0;
            v->rejected = 1;
            return;
        }
    }

    if (v->weight > v->max) {
        /* can never pass */
        v->retry = v->window;
        v->reset = v->window;
        v->remaining = 0;
        v->rejected = 1;
        return;
    }

    do {
        fresh = (node == NULL);

        node = ngx_http_linguamate_window_reserve(zone, node,
                                                  NGX_HTTP_LINGUAMATE_LIMIT_OFF,
                                                  v->max, v->hash, &v->key,
                                                  r->connection->log);
        if (node == NULL) {
            /* no room even after eviction: let it through uncounted */
            v->remaining = v->max;
            v->reset = v->window;
            return;
        }

        if (fresh) {
            head = ngx_http_linguamate_node_value(node);
            ngx_memzero(head, sizeof(ngx_http_linguamate_limit_head_t));
            head->touched = now;
        }

        w = ngx_http_linguamate_node_window(node,
                                            NGX_HTTP_LINGUAMATE_LIMIT_OFF);

        if (w->count >= w->cap) {
            /* the ring could not grow (zone full): through, uncounted */
            v->remaining = v->max > w->count ? v->max - w->count : 0;
            v->reset = v->window;
            return;
        }

        v->stamp = ngx_http_linguamate_window_push(w, now);
        v->counted++;

    } while (v->counted < v->weight);

    v->remaining = v->max > (uint64_t) w->count + remote
                   ? v->max - w->count - remote : 0;
    v->reset = v->window;

    if (v->remaining == 0) {
        v->retry = v->window - ngx_http_linguamate_window_age(now,
                                  ngx_http_linguamate_window_oldest(w));
    }

    node->expire = msec + v->window;
}


/*
 * The bucketed window: the request passes if the buckets still in the
 * window hold at most max - weight.  The oldest of them is counted whole,
 * so no sliding window ever sees more than max, and a request may be
 * refused early by at most that bucket's count (about max / 63 at a
 * steady rate; ngx_http_linguamate_window.c states the bound).  Retry-After
 * is when enough of the oldest buckets have left for this request.
 */

static void
ngx_http_linguamate_limit_buckets_account(ngx_http_request_t *r,
    ngx_http_linguamate_verdict_t *v, ngx_http_linguamate_node_t *node,
    uint32_t remote)
{
    uint64_t                           first, sum;
    ngx_msec_t                         msec;
    ngx_http_linguamate_zone_t        *zone;
    ngx_http_linguamate_buckets_t     *b;
    ngx_http_linguamate_limit_head_t  *head;

    zone = v->limit->zone;
    msec = ngx_current_msec;

    if (v->weight > v->max) {
        /* can never pass */
        v->retry = v->window;
        v->reset = v->window;
        v->remaining = 0;
        v->rejected = 1;
        return;
    }

    if (node == NULL) {
        node = ngx_http_linguamate_node_alloc(zone, v->hash, v->key.data,
                   v->key.len,
                   ngx_http_linguamate_buckets_vlen(
                       NGX_HTTP_LINGUAMATE_LIMIT_OFF),
                   r->connection->log);

        if (node == NULL) {
            /* no room even after eviction: let it through uncounted */
            v->remaining = v->max;
            v->reset = v->window;
            return;
        }

        head = ngx_http_linguamate_node_value(node);
        head->mode = NGX_HTTP_LINGUAMATE_LIMIT_MODE_BUCKETS;
        head->touched = (uint32_t) msec;
    }

    b = ngx_http_linguamate_node_buckets(node, NGX_HTTP_LINGUAMATE_LIMIT_OFF);

    first = ngx_http_linguamate_buckets_advance(b, msec, v->window);
    sum = ngx_http_linguamate_buckets_sum(b, first);

    if (sum + (uint64_t) remote + v->weight > v->max) {

        if (sum + v->weight > v->max) {
            v->retry = ngx_http_linguamate_buckets_retry(b, first, msec,
                                         v->window, sum + v->weight - v->max);

        } else {
            /* the other replicas' requests: one of their buckets */
            v->retry = ngx_max(v->window / NGX_HTTP_LINGUAMATE_LIMIT_BUCKETS,
                               1000);
        }

        v->reset = ngx_http_linguamate_buckets_reset(b, first, msec,
                                                     v->window);
        v->remaining = 0;
        v->rejected = 1;
        return;
    }

    b->count[b->newest % NGX_HTTP_LINGUAMATE_WINDOW_BUCKETS] +=
                                                        (uint32_t) v->weight;
    v->bucket = b->newest;
    v->counted = v->weight;

    sum += v->weight + remote;
    v->remaining = v->max > sum ? v->max - sum : 0;
    v->reset = ngx_http_linguamate_buckets_leave(b, b->newest, msec,
                                                 v->window);

    if (v->remaining == 0) {
        v->retry = ngx_http_linguamate_buckets_retry(b, first, msec,
                                                     v->window, 1);
    }

    /* not dropped as expired while its newest bucket is in the window */
    node->expire = msec + v->reset;
}


/*
 * A node kept the other way (a reload moved the zone's limit across the
 * exact range, or an old worker still serves the old configuration) is
 * replaced by one of this verdict's mode holding the same requests: a
 * log's stamps go to their buckets; buckets become stamps at the last
 * millisecond of each (the newest max of them).  The head is kept.
 * Returns NULL, the old node untouched, if the zone has no room.
 */

static ngx_http_linguamate_node_t *
ngx_http_linguamate_limit_convert(ngx_http_linguamate_zone_t *zone,
    ngx_http_linguamate_node_t *node, ngx_http_linguamate_verdict_t *v,
    ngx_log_t *log)
{
    size_t                             vlen;
    uint32_t                           cap;
    uint64_t                           first;
    ngx_msec_t                         msec;
    ngx_http_linguamate_node_t        *nn;
    ngx_http_linguamate_window_t      *w;
    ngx_http_linguamate_buckets_t     *b;
    ngx_http_linguamate_limit_head_t  *head;

    msec = ngx_current_msec;
    cap = 0;
    first = 0;
    w = NULL;
    b = NULL;

    if (v->mode == NGX_HTTP_LINGUAMATE_LIMIT_MODE_LOG) {
        b = ngx_http_linguamate_node_buckets(node,
                                             NGX_HTTP_LINGUAMATE_LIMIT_OFF);
        first = ngx_http_linguamate_buckets_advance(b, msec, v->window);

        cap = (uint32_t) ngx_min(ngx_max(ngx_http_linguamate_buckets_sum(b,
                                             first),
                                         NGX_HTTP_LINGUAMATE_RING_MIN),
                                 (uint64_t) v->max);
        vlen = ngx_http_linguamate_window_vlen(NGX_HTTP_LINGUAMATE_LIMIT_OFF,
                                               cap);

    } else {
        w = ngx_http_linguamate_node_window(node,
                                            NGX_HTTP_LINGUAMATE_LIMIT_OFF);

        if ((ngx_msec_int_t) (node->expire - msec) <= 0) {
            w->count = 0;
        }

        ngx_http_linguamate_window_expire(w, (uint32_t) msec, v->window);
        vlen = ngx_http_linguamate_buckets_vlen(NGX_HTTP_LINGUAMATE_LIMIT_OFF);
    }

    /* out of the LRU queue: the allocation below cannot evict it */

    ngx_queue_remove(&node->queue);
    ngx_queue_init(&node->queue);

    nn = ngx_http_linguamate_node_alloc(zone, v->hash, v->key.data,
                                        v->key.len, vlen, log);
    if (nn == NULL) {
        ngx_queue_insert_head(&zone->sh->queue, &node->queue);
        return NULL;
    }

    head = ngx_http_linguamate_node_value(nn);
    ngx_memcpy(head, ngx_http_linguamate_node_value(node),
               NGX_HTTP_LINGUAMATE_LIMIT_OFF);
    head->mode = (uint32_t) v->mode;

    if (v->mode == NGX_HTTP_LINGUAMATE_LIMIT_MODE_LOG) {
        w = ngx_http_linguamate_node_window(nn,
                                            NGX_HTTP_LINGUAMATE_LIMIT_OFF);
        w->cap = cap;
        ngx_http_linguamate_buckets_to_window(b, first, w, msec);

    } else {
        ngx_http_linguamate_buckets_from_window(
            ngx_http_linguamate_node_buckets(nn, NGX_HTTP_LINGUAMATE_LIMIT_OFF),
            w, msec, v->window);
    }

    nn->expire = node->expire;

    ngx_http_linguamate_node_free(zone, node);

    return nn;
}


/* take back a counted request another limit rejected */

static void
ngx_http_linguamate_limit_undo(ngx_http_linguamate_verdict_t *v)
{
    ngx_http_linguamate_node_t        *node;
    ngx_http_linguamate_zone_t        *zone;
    ngx_http_linguamate_limit_head_t  *head;

    zone = v->limit->zone;

    ngx_shmtx_lock(&zone->shpool->mutex);

    node = ngx_http_linguamate_node_lookup(zone, v->hash, v->key.data,
                                           v->key.len);

    head = node ? ngx_http_linguamate_node_value(node) : NULL;

    if (head == NULL || head->mode != v->mode) {
        /* gone, or converted since by a worker of another configuration */

    } else if (v->mode == NGX_HTTP_LINGUAMATE_LIMIT_MODE_BUCKETS) {
        ngx_http_linguamate_buckets_remove(
            ngx_http_linguamate_node_buckets(node,
                                             NGX_HTTP_LINGUAMATE_LIMIT_OFF),
            v->bucket, (uint32_t) v->counted);

    } else {
        while (v->counted) {
            ngx_http_linguamate_window_remove(
                ngx_http_linguamate_node_window(node,
                                                NGX_HTTP_LINGUAMATE_LIMIT_OFF),
                v->stamp);
            v->counted--;
        }
    }

    ngx_shmtx_unlock(&zone->shpool->mutex);
}


/*
 * A bucketed key's requests per Redis bucket: each local bucket's count
 * at its first millisecond, a time that does not move, so that a count is
 * never sent again in a later Redis bucket.  A local bucket still filling
 * may lie in a Redis bucket already sent: a bucketed key's whole window
 * is sent every time (at most 66 buckets).  A request may so leave the
 * others' count up to one local bucket (window / 63) early, as much as
 * Redis's oldest bucket, counted whole, keeps it late.
 */

static void
ngx_http_linguamate_limit_sync_buckets(ngx_http_linguamate_node_t *node,
    ngx_http_linguamate_limit_sync_t *ks, ngx_msec_t now, int64_t wall,
    int64_t width, ngx_msec_t window)
{
    int64_t                         age, b, cur;
    uint32_t                        c;
    uint64_t                        k, first;
    ngx_http_linguamate_buckets_t  *bk;

    bk = ngx_http_linguamate_node_buckets(node, NGX_HTTP_LINGUAMATE_LIMIT_OFF);
    first = ngx_http_linguamate_buckets_advance(bk, now, window);
    cur = ks->from + (int64_t) ks->nb - 1;

    for (k = bk->newest + 1; k-- > first; /* void */) {
        c = bk->count[k % NGX_HTTP_LINGUAMATE_WINDOW_BUCKETS];

        if (c == 0) {
            continue;
        }

        age = (int64_t) now - (int64_t) (k * bk->width);
        b = (wall - ngx_max(age, 0)) / width;

        if (b < ks->from) {
            break;
        }

        if (b <= cur) {
            ks->counts[b - ks->from] += c;
        }
    }
}


/*
 * Cluster mode, every CLUSTER_SYNC_MS in one worker of the replica: for
 * each key seen lately, this replica's requests per Redis bucket (from
 * the exact log, so a lost reply or a Redis restart loses nothing: the
 * counts are sent again, whole), and back the other replicas' count.
 * Buckets are window/64 wide on the wall clock (the replicas' clocks
 * agree through NTP; a skew of S ms shifts a bucket by S).
 */

/* the arguments of one key's command: 8, and two per bucket */
#define LM_ARGS  (8 + 2 * (NGX_HTTP_LINGUAMATE_LIMIT_BUCKETS + 2))

static void
ngx_http_linguamate_limit_sync(void *data, ngx_msec_t now, ngx_log_t *log)
{
    ngx_http_linguamate_zone_t *zone = data;

    u_char                               *p, msg[1024];
    u_char                                args[LM_ARGS * (NGX_INT64_LEN + 2)
                                               + 128];
    size_t                                lens[LM_ARGS];
    int64_t                               wall, width, cur, from, b;
    uint32_t                              now32, age, j, idx, epoch;
    uint64_t                              total, unsent, local;
    ngx_uint_t                            fresh, mode, publish;
    ngx_http_linguamate_buckets_t        *bk;
    ngx_msec_t                            stale;
    ngx_uint_t                            max;
    ngx_uint_t                            k, nkeys, argc;
    ngx_queue_t                          *q, done;
    const char                           *argv[LM_ARGS];
    ngx_http_linguamate_node_t           *node;
    ngx_http_linguamate_window_t         *w;
    ngx_http_linguamate_limit_head_t     *head;
    ngx_http_linguamate_limit_zone_t     *lz;
    ngx_http_linguamate_limit_sync_t     *ks;
    ngx_http_linguamate_cluster_status_t  cs;
    ngx_http_linguamate_main_conf_t      *lmcf;

    lz = zone->data;
    now32 = (uint32_t) now;
    width = (int64_t) lz->width;
    wall = ngx_http_linguamate_now_ms();
    cur = wall / width;

    lmcf = ngx_http_cycle_get_module_main_conf(ngx_cycle,
                                               ngx_http_linguamate_module);
    ngx_http_linguamate_cluster_status(lmcf, &cs);
    epoch = (uint32_t) cs.reconnects + 1;
    max = ngx_http_linguamate_limit_max(lmcf, lz, &mode);

    /* under the mutex: what each key seen lately has in each bucket */

    ngx_queue_init(&done);
    nkeys = 0;

    ngx_shmtx_lock(&zone->shpool->mutex);

    for (q = ngx_queue_head(&zone->sh->queue);
         q != ngx_queue_sentinel(&zone->sh->queue)
         && nkeys < NGX_HTTP_LINGUAMATE_LIMIT_SYNC_MAX;
         q = ngx_queue_next(q))
    {
        node = ngx_queue_data(q, ngx_http_linguamate_node_t, queue);
        head = ngx_http_linguamate_node_value(node);

        /* the queue is in the order of use: the first key not seen
           lately ends the walk */

        if (ngx_http_linguamate_window_age(now32, head->touched)
            > lz->active)
        {
            break;
        }

        /* this replica's count of the key in the window */

        if (head->mode == NGX_HTTP_LINGUAMATE_LIMIT_MODE_BUCKETS) {
            bk = ngx_http_linguamate_node_buckets(node,
                                                NGX_HTTP_LINGUAMATE_LIMIT_OFF);
            local = ngx_http_linguamate_buckets_sum(bk,
                        ngx_http_linguamate_buckets_advance(bk, now,
                                                        lz->cluster_window));
            w = NULL;

        } else {
            w = ngx_http_linguamate_node_window(node,
                                                NGX_HTTP_LINGUAMATE_LIMIT_OFF);
            ngx_http_linguamate_window_expire(w, now32, lz->cluster_window);
            local = w->count;
        }

        /*
         * Sent when it matters (docs/cluster.md, "when a key is sent"):
         * more than half of the limit used; or what this replica counted
         * and Redis does not have (all of it, if never sent on this
         * connection; all of a bucketed key's window, whose buckets do
         * not split at the last send), times the replicas that count the
         * key, at least 1/16 of what is left; or, once sent, its last
         * send is old (8 intervals while other replicas count the key,
         * else a window or 128 intervals).  So a key far from its limit
         * costs nothing, and one in reach is sent every interval.
         */

        total = local;

        if (ngx_http_linguamate_window_age(now32, head->remote_at)
            < lz->cluster_window)
        {
            total += head->remote;
        }

        if (head->epoch != epoch || w == NULL) {
            unsent = local;

        } else {
            unsent = 0;

            for (j = w->count; j > 0; j--) {
                idx = (w->head + j - 1) % w->cap;

                if ((int32_t) (w->ring[idx] - head->synced_at) < 0) {
                    break;
                }

                unsent++;
            }
        }

        if (head->epoch != epoch) {
            fresh = 1;

        } else {
            stale = head->replicas ? NGX_HTTP_LINGUAMATE_LIMIT_COOL
                                     * lz->interval
                                   : ngx_max(lz->cluster_window,
                                             128 * lz->interval);

            fresh = ngx_http_linguamate_window_age(now32, head->synced_at)
                    < stale;
        }

        /* in reach: every replica is told, at most every 8 intervals
           (or a quarter window), so that it sends the key too */

        publish = 0;

        if (total * 2 >= max
            && (head->hot_pub == 0
                || ngx_http_linguamate_window_age(now32, head->hot_pub)
                   >= ngx_max(NGX_HTTP_LINGUAMATE_LIMIT_COOL * lz->interval,
                              lz->cluster_window / 4)))
        {
            head->hot_pub = now32 | 1;
            publish = 1;
        }

        if (total < max
            && (max - total) * 2 >= max
            && unsent * ((uint64_t) head->replicas + 1)
               * NGX_HTTP_LINGUAMATE_LIMIT_REACH < max - total
            && fresh
            && (head->hot_at == 0
                || ngx_http_linguamate_window_age(now32, head->hot_at)
                   >= lz->cluster_window))
        {
            continue;
        }

        /* from the last bucket sent (it may have grown since), or the
           whole window after a lost connection */

        from = (wall - (int64_t) lz->cluster_window) / width;

        if (head->epoch == epoch && (int64_t) head->sent > from
            && head->mode == NGX_HTTP_LINGUAMATE_LIMIT_MODE_LOG)
        {
            from = (int64_t) head->sent;
        }

        if (from > cur) {
            from = cur;                     /* the clock went back */
        }

        if (cur - from + 1 > NGX_HTTP_LINGUAMATE_LIMIT_BUCKETS + 2) {
            from = cur - (NGX_HTTP_LINGUAMATE_LIMIT_BUCKETS + 2) + 1;
        }

        ks = ngx_alloc(sizeof(ngx_http_linguamate_limit_sync_t) + node->len,
                       log);
        if (ks == NULL) {
            break;
        }

        ks->zone = zone;
        ks->publish = publish;
        ks->sent_at = now32;
        ks->from = from;
        ks->nb = (ngx_uint_t) (cur - from + 1);
        ks->len = node->len;
        ngx_memcpy(ks->key, ngx_http_linguamate_node_key(node), ks->len);
        ks->hash = ngx_crc32_short(ks->key, ks->len);
        ngx_memzero(ks->counts, sizeof(ks->counts));

        if (head->mode == NGX_HTTP_LINGUAMATE_LIMIT_MODE_BUCKETS) {
            ngx_http_linguamate_limit_sync_buckets(node, ks, now, wall, width,
                                                   lz->cluster_window);

        } else {
            /* w: the log expired above */

            for (j = w->count; j > 0; j--) {
                idx = (w->head + j - 1) % w->cap;
                age = ngx_http_linguamate_window_age(now32, w->ring[idx]);
                b = (wall - (int64_t) age) / width;

                if (b < from) {
                    break;
                }

                if (b <= cur) {
                    ks->counts[b - from]++;
                }
            }
        }

        head->sent = (uint64_t) cur;
        head->epoch = epoch;
        head->synced_at = now32;

        ngx_queue_insert_tail(&done, &ks->queue);
        nkeys++;
    }

    ngx_shmtx_unlock(&zone->shpool->mutex);

    /* then the commands, one per key, pipelined */

    while (!ngx_queue_empty(&done)) {
        q = ngx_queue_head(&done);
        ngx_queue_remove(q);
        ks = ngx_queue_data(q, ngx_http_linguamate_limit_sync_t, queue);

        p = args;

        argv[0] = "EVALSHA";
        lens[0] = 7;
        argv[1] = (const char *) ngx_http_linguamate_limit_script.sha;
        lens[1] = 40;
        argv[2] = "1";
        lens[2] = 1;

        argv[3] = (const char *) p;
        p = ngx_http_linguamate_cluster_key(p, "limit", &zone->name,
                                            ks->key, ks->len);
        lens[3] = p - (u_char *) argv[3];

        argc = 4;

#define LM_ARG(fmt, val)                                                      \
        argv[argc] = (const char *) p;                                        \
        p = ngx_sprintf(p, fmt, val);                                         \
        lens[argc] = p - (u_char *) argv[argc];                               \
        argc++

        LM_ARG("%016uxL", ngx_http_linguamate_cluster_replica());
        LM_ARG("%L", wall);
        LM_ARG("%M", lz->cluster_window);
        LM_ARG("%L", width);

        for (k = 0; k < ks->nb; k++) {
            LM_ARG("%L", ks->from + (int64_t) k);
            LM_ARG("%uD", ks->counts[k]);
        }

#undef LM_ARG

        if (ks->publish && zone->name.len + 1 + ks->len <= sizeof(msg)) {
            p = ngx_cpymem(msg, zone->name.data, zone->name.len);
            *p++ = '\n';
            p = ngx_cpymem(p, ks->key, ks->len);

            (void) ngx_http_linguamate_cluster_publish_hot(msg, p - msg);
        }

        if (ngx_http_linguamate_cluster_command((int) argc, argv, lens,
                                      ngx_http_linguamate_limit_synced, ks)
            != NGX_OK)
        {
            /* not sent: whole, the next time */
            ngx_http_linguamate_limit_synced(NULL, NULL, ks);
        }
    }

    ngx_log_debug2(NGX_LOG_DEBUG_CORE, log, 0,
                   "linguamate limit \"%V\": %ui keys synced",
                   &zone->name, nkeys);
}


/*
 * Another replica says a key is in reach of its limit ("ZONE\nKEY"):
 * the key is sent every interval here too for a window (its node made,
 * empty, if this replica has not seen the key), so that this replica's
 * decisions count the others' requests before its own first one.
 */

static void
ngx_http_linguamate_limit_hot(u_char *msg, size_t len)
{
    u_char                            *nl;
    uint32_t                           hash, now;
    ngx_str_t                          key;
    ngx_uint_t                         i, mode, max;
    ngx_http_linguamate_node_t        *node;
    ngx_http_linguamate_zone_t        *zone, **zp;
    ngx_http_linguamate_limit_head_t  *head;
    ngx_http_linguamate_limit_zone_t  *lz;
    ngx_http_linguamate_main_conf_t   *lmcf;

    nl = ngx_strlchr(msg, msg + len, '\n');
    if (nl == NULL || nl + 1 == msg + len || msg + len - nl - 1 > 65535) {
        return;
    }

    key.data = nl + 1;
    key.len = msg + len - nl - 1;

    lmcf = ngx_http_cycle_get_module_main_conf(ngx_cycle,
                                               ngx_http_linguamate_module);
    zp = lmcf->zones.elts;
    zone = NULL;

    for (i = 0; i < lmcf->zones.nelts; i++) {
        if (zp[i]->kind == NGX_HTTP_LINGUAMATE_ZONE_LIMIT
            && zp[i]->name.len == (size_t) (nl - msg)
            && ngx_strncmp(zp[i]->name.data, msg, nl - msg) == 0)
        {
            zone = zp[i];
            break;
        }
    }

    if (zone == NULL) {
        return;
    }

    lz = zone->data;
    max = ngx_http_linguamate_limit_max(lmcf, lz, &mode);
    hash = ngx_crc32_short(key.data, key.len);
    now = (uint32_t) ngx_current_msec;

    ngx_shmtx_lock(&zone->shpool->mutex);

    node = ngx_http_linguamate_node_lookup(zone, hash, key.data, key.len);

    if (node == NULL) {
        if (mode == NGX_HTTP_LINGUAMATE_LIMIT_MODE_BUCKETS) {
            node = ngx_http_linguamate_node_alloc(zone, hash, key.data,
                       key.len,
                       ngx_http_linguamate_buckets_vlen(
                           NGX_HTTP_LINGUAMATE_LIMIT_OFF),
                       ngx_cycle->log);

        } else {
            node = ngx_http_linguamate_window_reserve(zone, NULL,
                                       NGX_HTTP_LINGUAMATE_LIMIT_OFF, max,
                                       hash, &key, ngx_cycle->log);
        }

        if (node == NULL) {
            ngx_shmtx_unlock(&zone->shpool->mutex);
            return;
        }

        head = ngx_http_linguamate_node_value(node);
        head->mode = (uint32_t) mode;
        node->expire = ngx_current_msec + lz->cluster_window;
    }

    head = ngx_http_linguamate_node_value(node);
    head->touched = now;
    head->hot_at = now | 1;

    ngx_shmtx_unlock(&zone->shpool->mutex);
}


static void
ngx_http_linguamate_limit_synced(ngx_http_linguamate_redis_t *rc,
    redisReply *reply, void *data)
{
    ngx_http_linguamate_limit_sync_t *ks = data;

    long long                          sum;
    ngx_http_linguamate_node_t        *node;
    ngx_http_linguamate_zone_t        *zone;
    ngx_http_linguamate_limit_head_t  *head;

    zone = ks->zone;

    (void) ngx_http_linguamate_cluster_noscript(reply);

    ngx_shmtx_lock(&zone->shpool->mutex);

    node = ngx_http_linguamate_node_find(zone, ks->hash, ks->key,
                                                 ks->len);

    if (node) {
        head = ngx_http_linguamate_node_value(node);

        if (reply && reply->type == REDIS_REPLY_ARRAY
            && reply->elements == 2
            && reply->element[0]->type == REDIS_REPLY_INTEGER
            && reply->element[1]->type == REDIS_REPLY_INTEGER)
        {
            sum = reply->element[0]->integer;
            head->remote = sum < 0 ? 0 : sum > 0xffffffffLL
                           ? 0xffffffff : (uint32_t) sum;
            head->remote_at = ks->sent_at;
            head->replicas = (uint32_t) ngx_min(
                                 ngx_max(reply->element[1]->integer, 0),
                                 1024);

        } else {
            /* sent again, whole, next time */
            head->epoch = 0;
        }
    }

    ngx_shmtx_unlock(&zone->shpool->mutex);

    if (reply && reply->type == REDIS_REPLY_ERROR) {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "linguamate: redis refused the counts of zone \"%V\": "
                      "%*s", &zone->name, (size_t) reply->len, reply->str);
    }

    ngx_free(ks);
}


/*
 * X-RateLimit-* of the most restrictive limit; the IETF draft fields
 * (draft-ietf-httpapi-ratelimit-headers-08) list every limit:
 *   RateLimit-Policy: "global";q=60;w=60
 *   RateLimit: "global";r=59;t=60
 */

static ngx_int_t
ngx_http_linguamate_limit_headers(ngx_http_request_t *r,
    ngx_http_linguamate_verdict_t *v, ngx_uint_t n,
    ngx_http_linguamate_verdict_t *worst)
{
    u_char      *buf, *p, *policy, *rl;
    size_t       len;
    ngx_uint_t   i;

    len = 3 * NGX_INT_T_LEN + 3;

    for (i = 0; i < n; i++) {
        if (v[i].limit) {
            len += 2 * (v[i].limit->zone->name.len + 3 * NGX_INT_T_LEN + 16);
        }
    }

    buf = ngx_pnalloc(r->pool, len);
    if (buf == NULL) {
        return NGX_ERROR;
    }

    p = buf;

    if (ngx_http_linguamate_add_header(r, "X-RateLimit-Limit",
            sizeof("X-RateLimit-Limit") - 1, p,
            ngx_sprintf(p, "%ui", worst->max) - p) != NGX_OK)
    {
        return NGX_ERROR;
    }

    p += NGX_INT_T_LEN;

    if (ngx_http_linguamate_add_header(r, "X-RateLimit-Remaining",
            sizeof("X-RateLimit-Remaining") - 1, p,
            ngx_sprintf(p, "%ui", worst->remaining) - p) != NGX_OK)
    {
        return NGX_ERROR;
    }

    p += NGX_INT_T_LEN;

    if (ngx_http_linguamate_add_header(r, "X-RateLimit-Reset",
            sizeof("X-RateLimit-Reset") - 1, p,
            ngx_sprintf(p, "%M", (worst->reset + 999) / 1000) - p) != NGX_OK)
    {
        return NGX_ERROR;
    }

    p += NGX_INT_T_LEN;

    policy = p;

    for (i = 0; i < n; i++) {
        if (v[i].limit == NULL) {
            continue;
        }

        p = ngx_sprintf(p, "%s\"%V\";q=%ui;w=%M", p == policy ? "" : ", ",
                        &v[i].limit->zone->name, v[i].max,
                        (v[i].window + 999) / 1000);
    }

    if (ngx_http_linguamate_add_header(r, "RateLimit-Policy",
            sizeof("RateLimit-Policy") - 1, policy, p - policy) != NGX_OK)
    {
        return NGX_ERROR;
    }

    rl = p;

    for (i = 0; i < n; i++) {
        if (v[i].limit == NULL) {
            continue;
        }

        p = ngx_sprintf(p, "%s\"%V\";r=%ui;t=%M", p == rl ? "" : ", ",
                        &v[i].limit->zone->name, v[i].remaining,
                        (v[i].reset + 999) / 1000);
    }

    if (ngx_http_linguamate_add_header(r, "RateLimit",
            sizeof("RateLimit") - 1, rl, p - rl) != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (worst->rejected) {
        p = ngx_pnalloc(r->pool, NGX_INT_T_LEN);
        if (p == NULL) {
            return NGX_ERROR;
        }

        if (ngx_http_linguamate_add_header(r, "Retry-After",
                sizeof("Retry-After") - 1, p,
                ngx_sprintf(p, "%M", (worst->retry + 999) / 1000) - p)
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/* rate_limit_exceeded: zone, client address and route; never the key */

static void
ngx_http_linguamate_limit_log(ngx_http_request_t *r,
    ngx_http_linguamate_verdict_t *v, ngx_uint_t dry_run)
{
    u_char      buf[1024], *p, *last;
    ngx_str_t   msg, extra, route, *addr;

    ngx_http_linguamate_route(r, &route);
    addr = &r->connection->addr_text;

    p = buf;
    last = buf + sizeof(buf);

    p = ngx_slprintf(p, last, ",\"cat\":\"rate_limit\",\"zone\":\"%V\","
                     "\"client\":\"", &v->limit->zone->name);

    if ((size_t) (last - p) > 6 * addr->len + 256) {
        p = ngx_http_linguamate_json_escape(p, addr->data, addr->len);
    }

    p = ngx_slprintf(p, last, "\",\"route\":\"");

    if ((size_t) (last - p) > 6 * route.len + 200) {
        p = ngx_http_linguamate_json_escape(p, route.data, route.len);
    }

    p = ngx_slprintf(p, last, "\",\"limit\":%ui,\"windowMs\":%M,"
                     "\"retryAfter\":%M,\"dryRun\":%s",
                     v->max, v->window, (v->retry + 999) / 1000,
                     dry_run ? "true" : "false");

    extra.data = buf;
    extra.len = p - buf;

    if (dry_run) {
        ngx_str_set(&msg, "Rate limit exceeded (dry run: not rejected)");
    } else {
        ngx_str_set(&msg, "Rate limit exceeded");
    }

    ngx_http_linguamate_log_request(r, NGX_HTTP_LINGUAMATE_LOG_WARN,
                                  "rate_limit_exceeded", &msg, &extra);
}


ngx_int_t
ngx_http_linguamate_limit_status_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_http_linguamate_ctx_t  *ctx;

    ctx = ngx_http_linguamate_get_ctx(r);

    if (ctx == NULL || ctx->limit_status == NGX_HTTP_LINGUAMATE_LIMIT_NONE) {
        v->not_found = 1;
        return NGX_OK;
    }

    v->data = ngx_http_linguamate_limit_statuses[ctx->limit_status].data;
    v->len = ngx_http_linguamate_limit_statuses[ctx->limit_status].len;
    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;

    return NGX_OK;
}


