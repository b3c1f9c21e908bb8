/*
 * Copyright (C) ngx_linguamate developers
 *
 * Cluster mode: see the header and docs/cluster.md.
 *
 * In Redis (all keys under one hash tag, so that the scripts also run on
 * a single Redis Cluster slot):
 *   {linguamate}:state:FILE        hash: record key -> "STAMP ORIGIN LINE"
 *   {linguamate}:state:FILE:exp    zset: record key by its expiry (ms)
 *   channel linguamate:state       "FILE STAMP ORIGIN LINE"
 * FILE is the state's journal name, LINE the state layer's own line (it
 * carries its CRC), STAMP the epoch ms of the change (0: a replica's
 * snapshot, which only fills what Redis lacks), ORIGIN the replica's id.
 */


#include "ngx_http_linguamate_module.h"
#include "ngx_http_linguamate_json.h"
#include "ngx_http_linguamate_shm.h"
#include "ngx_http_linguamate_state.h"
#include "ngx_http_linguamate_redis.h"
#include "ngx_http_linguamate_session.h"
#include "ngx_http_linguamate_cluster.h"

#include <ngx_md5.h>

#include <hiredis/hiredis.h>
#include <openssl/sha.h>
#include <openssl/rand.h>


/* records waiting for Redis in one worker, at most */
#define NGX_HTTP_LINGUAMATE_CLUSTER_QUEUE_MAX   65536
/* sent from the queue per tick or per connect */
#define NGX_HTTP_LINGUAMATE_CLUSTER_BATCH       1024
/* the subscriber says something at least this often */
#define NGX_HTTP_LINGUAMATE_CLUSTER_PING        1000
/* an unlock is kept in Redis this long (a lock never outlives it) */
#define NGX_HTTP_LINGUAMATE_CLUSTER_UNLOCK_TTL  86400000

#define NGX_HTTP_LINGUAMATE_CLUSTER_CHANNEL     "linguamate:state"
/* limit keys in reach of their limit ("ZONE\nKEY"): limit.c's */
#define NGX_HTTP_LINGUAMATE_CLUSTER_HOT         "linguamate:hot"

/* where a record read from Redis came from */
#define NGX_HTTP_LINGUAMATE_CLUSTER_CHANNEL_RECORD  1
#define NGX_HTTP_LINGUAMATE_CLUSTER_RESYNC_RECORD   2


typedef struct {
    ngx_atomic_t                 tick_next;     /* the lease of a tick */
    ngx_atomic_t                 synced;        /* ngx_current_msec */
    ngx_atomic_t                 unsynced;
    ngx_atomic_t                 sub_up;
    ngx_atomic_t                 sub_pid;       /* the listening worker */
    ngx_atomic_t                 cmd_up;
    ngx_atomic_t                 applied;
    ngx_atomic_t                 reconnects;
    ngx_atomic_t                 refused;       /* a write refused: when */
    uint64_t                     replica;
} ngx_http_linguamate_cluster_sh_t;


typedef struct {
    ngx_http_linguamate_cluster_sync_pt   handler;
    void                                 *data;
} ngx_http_linguamate_cluster_sync_t;


typedef struct {
    ngx_http_linguamate_redis_url_t     url;
    ngx_shm_zone_t                     *shm_zone;
    ngx_http_linguamate_cluster_sh_t   *sh;
    ngx_array_t                         states;    /* of state_t * */
    ngx_array_t                         syncs;
    ngx_msec_t                          interval;
    ngx_str_t                           where;     /* host:port/db */
} ngx_http_linguamate_cluster_conf_t;


/* a record on its way to Redis */
typedef struct {
    ngx_queue_t                         queue;
    ngx_http_linguamate_state_t        *st;
    int64_t                             expire;    /* epoch ms, 0 none */
    size_t                              key_len;   /* of data */
    size_t                              value_len; /* after the key */
    size_t                              stamp_len; /* the value's start */
    u_char                              data[1];
} ngx_http_linguamate_cluster_put_t;


typedef struct {
    ngx_http_linguamate_state_t        *st;
    ngx_log_t                          *log;
    ngx_uint_t                          n;
} ngx_http_linguamate_cluster_upload_t;


static ngx_int_t ngx_http_linguamate_cluster_init_zone(
    ngx_shm_zone_t *shm_zone, void *data);
static ngx_int_t ngx_http_linguamate_cluster_append(
    ngx_http_linguamate_state_t *st, ngx_http_linguamate_state_rec_t *rec,
    ngx_uint_t n, ngx_log_t *log);
static ngx_int_t ngx_http_linguamate_cluster_load(
    ngx_http_linguamate_state_t *st, ngx_log_t *log);
static ngx_int_t ngx_http_linguamate_cluster_compact(
    ngx_http_linguamate_state_t *st, ngx_log_t *log);
static ngx_http_linguamate_cluster_put_t *ngx_http_linguamate_cluster_put(
    ngx_http_linguamate_state_t *st, ngx_http_linguamate_state_rec_t *rec,
    int64_t stamp, ngx_log_t *log);
static ngx_int_t ngx_http_linguamate_cluster_send(
    ngx_http_linguamate_cluster_put_t *put);
static void ngx_http_linguamate_cluster_sent(ngx_http_linguamate_redis_t *rc,
    redisReply *reply, void *data);
static void ngx_http_linguamate_cluster_queue(
    ngx_http_linguamate_cluster_put_t *put, ngx_log_t *log);
static void ngx_http_linguamate_cluster_drain(void);
static void ngx_http_linguamate_cluster_tick(ngx_event_t *ev);
static void ngx_http_linguamate_cluster_cmd_state(
    ngx_http_linguamate_redis_t *rc, ngx_uint_t up);
static void ngx_http_linguamate_cluster_sub_state(
    ngx_http_linguamate_redis_t *rc, ngx_uint_t up);
static void ngx_http_linguamate_cluster_subscribed(
    ngx_http_linguamate_redis_t *rc, redisReply *reply, void *data);
static void ngx_http_linguamate_cluster_message(
    ngx_http_linguamate_redis_t *rc, redisReply *reply, void *data);
static void ngx_http_linguamate_cluster_resync(void);
static ngx_int_t ngx_http_linguamate_cluster_fetch_all(void);
static ngx_int_t ngx_http_linguamate_cluster_upload(void *sink,
    ngx_http_linguamate_state_rec_t *rec);
static void ngx_http_linguamate_cluster_fetched(
    ngx_http_linguamate_redis_t *rc, redisReply *reply, void *data);
static ngx_int_t ngx_http_linguamate_cluster_receive(
    ngx_http_linguamate_state_t *st, u_char *p, size_t len,
    ngx_uint_t from, ngx_log_t *log);
static void ngx_http_linguamate_cluster_pong(ngx_http_linguamate_redis_t *rc,
    redisReply *reply, void *data);
static void ngx_http_linguamate_cluster_heard(ngx_http_linguamate_redis_t *rc,
    redisReply *reply, void *data);
static void ngx_http_linguamate_cluster_state_key(u_char *buf, size_t *len,
    ngx_http_linguamate_state_t *st, ngx_uint_t exp);


static ngx_http_linguamate_state_backend_t  ngx_http_linguamate_cluster_backend
= {
    ngx_string("redis"),
    ngx_http_linguamate_cluster_append,
    ngx_http_linguamate_cluster_load,
    ngx_http_linguamate_cluster_compact
};


/* a change: newer than what Redis has (or the first), kept and published */

#define NGX_HTTP_LINGUAMATE_CLUSTER_SCRIPTS  8

static ngx_http_linguamate_cluster_script_t
    *ngx_http_linguamate_cluster_scripts[NGX_HTTP_LINGUAMATE_CLUSTER_SCRIPTS];
static ngx_uint_t  ngx_http_linguamate_cluster_nscripts;

static void ngx_http_linguamate_cluster_load_scripts(void);
static void ngx_http_linguamate_cluster_loaded(ngx_http_linguamate_redis_t *rc,
    redisReply *reply, void *data);

static const char  ngx_http_linguamate_cluster_put_lua[] =
    "local cur = redis.call('HGET', KEYS[1], ARGV[1])\n"
    "if cur then\n"
    "  local s = tonumber(string.match(cur, '^%d+'))\n"
    "  if s and s >= tonumber(ARGV[2]) then return 0 end\n"
    "end\n"
    "redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])\n"
    "if ARGV[4] ~= '0' then\n"
    "  redis.call('ZADD', KEYS[2], ARGV[4], ARGV[1])\n"
    "else\n"
    "  redis.call('ZREM', KEYS[2], ARGV[1])\n"
    "end\n"
    "redis.call('PUBLISH', ARGV[5], ARGV[6])\n"
    "local old = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[7],"
    " 'LIMIT', 0, 64)\n"
    "for i = 1, #old do\n"
    "  redis.call('HDEL', KEYS[1], old[i])\n"
    "  redis.call('ZREM', KEYS[2], old[i])\n"
    "end\n"
    "return 1\n";

/* the whole state, what expired dropped first */

static const char  ngx_http_linguamate_cluster_fetch_lua[] =
    "local old = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1])\n"
    "for i = 1, #old do redis.call('HDEL', KEYS[1], old[i]) end\n"
    "if #old > 0 then\n"
    "  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[1])\n"
    "end\n"
    "return redis.call('HVALS', KEYS[1])\n";


ngx_conf_enum_t  ngx_http_linguamate_cluster_fail_modes[] = {
    { ngx_string("open"), NGX_HTTP_LINGUAMATE_CLUSTER_FAIL_OPEN },
    { ngx_string("closed"), NGX_HTTP_LINGUAMATE_CLUSTER_FAIL_CLOSED },
    { ngx_null_string, 0 }
};


static ngx_http_linguamate_cluster_script_t  ngx_http_linguamate_cluster_put_s
    = { ngx_string(ngx_http_linguamate_cluster_put_lua), { 0 }, 0 };
static ngx_http_linguamate_cluster_script_t  ngx_http_linguamate_cluster_fetch_s
    = { ngx_string(ngx_http_linguamate_cluster_fetch_lua), { 0 }, 0 };


/* limit.c's: a key in reach of its limit on another replica */
static ngx_http_linguamate_cluster_hot_pt
    ngx_http_linguamate_cluster_hot_handler;


/* this worker's side */

static ngx_http_linguamate_cluster_conf_t  *ngx_http_linguamate_cluster_w;
static ngx_http_linguamate_redis_t         *ngx_http_linguamate_cluster_cmd;
static ngx_http_linguamate_redis_t         *ngx_http_linguamate_cluster_sub;
static ngx_event_t                          ngx_http_linguamate_cluster_ev;
static ngx_queue_t                          ngx_http_linguamate_cluster_q;
static ngx_uint_t                           ngx_http_linguamate_cluster_nq;
static ngx_uint_t                           ngx_http_linguamate_cluster_lost;
static ngx_msec_t                           ngx_http_linguamate_cluster_said;
static ngx_uint_t                           ngx_http_linguamate_cluster_fetch;
static ngx_uint_t                           ngx_http_linguamate_cluster_refetch;
static ngx_msec_t                           ngx_http_linguamate_cluster_nolog;


/*
 * At the end of the main configuration (the settings resolved): with
 * REDIS_URL, the URL read and a small zone for the replica's view.
 */

char *
ngx_http_linguamate_cluster_init(ngx_conf_t *cf,
    ngx_http_linguamate_main_conf_t *lmcf)
{
    u_char                              *p;
    ngx_str_t                            name, err;
    ngx_http_linguamate_cluster_conf_t  *ccf;

    if (lmcf->redis_url.len == 0) {
        return NGX_CONF_OK;
    }

    ccf = ngx_pcalloc(cf->pool, sizeof(ngx_http_linguamate_cluster_conf_t));
    if (ccf == NULL) {
        return NGX_CONF_ERROR;
    }

    if (ngx_http_linguamate_redis_url_parse(cf, &lmcf->redis_url, &ccf->url,
                                            &err)
        != NGX_OK)
    {
        /* the URL holds a password: never in a message */
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "linguamate: REDIS_URL %V", &err);
        return NGX_CONF_ERROR;
    }

    ccf->interval = lmcf->cluster_sync_ms;

    p = ngx_pnalloc(cf->pool, ccf->url.host.len + 2 * NGX_INT_T_LEN + 2);
    if (p == NULL) {
        return NGX_CONF_ERROR;
    }

    ccf->where.data = p;
    ccf->where.len = ngx_sprintf(p, "%V:%d/%ui", &ccf->url.host,
                                 (int) ccf->url.port, ccf->url.db) - p;

    if (ngx_array_init(&ccf->states, cf->pool, 4,
                       sizeof(ngx_http_linguamate_state_t *))
        != NGX_OK
        || ngx_array_init(&ccf->syncs, cf->pool, 4,
                          sizeof(ngx_http_linguamate_cluster_sync_t))
           != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    ngx_str_set(&name, "linguamate_cluster");

    ccf->shm_zone = ngx_shared_memory_add(cf, &name, 8 * ngx_pagesize,
                                          &ngx_http_linguamate_module);
    if (ccf->shm_zone == NULL) {
        return NGX_CONF_ERROR;
    }

    ccf->shm_zone->init = ngx_http_linguamate_cluster_init_zone;
    ccf->shm_zone->data = ccf;

    lmcf->cluster = ccf;

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_linguamate_cluster_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_http_linguamate_cluster_conf_t  *octx = data;

    ngx_slab_pool_t                     *shpool;
    ngx_http_linguamate_cluster_sh_t    *sh;
    ngx_http_linguamate_cluster_conf_t  *ccf;

    ccf = shm_zone->data;

    if (octx) {
        ccf->sh = octx->sh;
        return NGX_OK;
    }

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (shm_zone->shm.exists) {
        ccf->sh = shpool->data;
        return NGX_OK;
    }

    sh = ngx_slab_calloc(shpool, sizeof(ngx_http_linguamate_cluster_sh_t));
    if (sh == NULL) {
        return NGX_ERROR;
    }

    /* a replica's id: new at every start, kept across reloads */

    if (RAND_bytes((u_char *) &sh->replica, sizeof(sh->replica)) != 1) {
        sh->replica = ((uint64_t) ngx_random() << 33)
                      ^ ((uint64_t) ngx_random() << 11)
                      ^ (uint64_t) ngx_pid ^ ((uint64_t) ngx_time() << 20);
    }
    sh->synced = ngx_current_msec;

    shpool->data = sh;
    ccf->sh = sh;

    return NGX_OK;
}


/*
 * postconfiguration: every state zone replicates (each feature made its
 * state while the configuration was read).
 */

ngx_int_t
ngx_http_linguamate_cluster_postconf(ngx_conf_t *cf,
    ngx_http_linguamate_main_conf_t *lmcf)
{
    ngx_uint_t                           i;
    ngx_http_linguamate_zone_t         **zp;
    ngx_http_linguamate_state_t         *st, **sp;
    ngx_http_linguamate_cluster_conf_t  *ccf;

    ccf = lmcf->cluster;

    if (ccf == NULL) {
        return NGX_OK;
    }

    zp = lmcf->zones.elts;

    for (i = 0; i < lmcf->zones.nelts; i++) {
        st = zp[i]->state;

        if (st == NULL) {
            continue;
        }

        if (st->nbackends >= NGX_HTTP_LINGUAMATE_STATE_BACKENDS) {
            return NGX_ERROR;
        }

        st->backends[st->nbackends++] = &ngx_http_linguamate_cluster_backend;

        sp = ngx_array_push(&ccf->states);
        if (sp == NULL) {
            return NGX_ERROR;
        }

        *sp = st;
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_linguamate_cluster_on_sync(ngx_conf_t *cf,
    ngx_http_linguamate_cluster_sync_pt handler, void *data)
{
    ngx_http_linguamate_main_conf_t     *lmcf;
    ngx_http_linguamate_cluster_sync_t  *s;
    ngx_http_linguamate_cluster_conf_t  *ccf;

    lmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_linguamate_module);
    ccf = lmcf->cluster;

    if (ccf == NULL) {
        return NGX_DECLINED;
    }

    s = ngx_array_push(&ccf->syncs);
    if (s == NULL) {
        return NGX_ERROR;
    }

    s->handler = handler;
    s->data = data;

    return NGX_OK;
}


void
ngx_http_linguamate_cluster_on_hot(ngx_http_linguamate_cluster_hot_pt handler)
{
    ngx_http_linguamate_cluster_hot_handler = handler;
}


/* tell every replica that a limit key is in reach of its limit */

ngx_int_t
ngx_http_linguamate_cluster_publish_hot(u_char *msg, size_t len)
{
    size_t       lens[3];
    const char  *argv[3];

    argv[0] = "PUBLISH";
    lens[0] = 7;
    argv[1] = NGX_HTTP_LINGUAMATE_CLUSTER_HOT;
    lens[1] = sizeof(NGX_HTTP_LINGUAMATE_CLUSTER_HOT) - 1;
    argv[2] = (const char *) msg;
    lens[2] = len;

    return ngx_http_linguamate_redis_command(ngx_http_linguamate_cluster_cmd,
                                             3, argv, lens,
                                             ngx_http_linguamate_cluster_heard,
                                             NULL);
}


ngx_uint_t
ngx_http_linguamate_cluster_on(ngx_http_linguamate_main_conf_t *lmcf)
{
    return lmcf->cluster != NULL;
}


ngx_uint_t
ngx_http_linguamate_cluster_up(ngx_http_linguamate_main_conf_t *lmcf)
{
    ngx_http_linguamate_cluster_conf_t  *ccf;

    ccf = lmcf->cluster;

    if (ccf == NULL) {
        return 1;
    }

    return ccf->sh && ccf->sh->sub_up && ccf->sh->cmd_up;
}


void
ngx_http_linguamate_cluster_status(ngx_http_linguamate_main_conf_t *lmcf,
    ngx_http_linguamate_cluster_status_t *cs)
{
    ngx_http_linguamate_cluster_sh_t    *sh;
    ngx_http_linguamate_cluster_conf_t  *ccf;

    ngx_memzero(cs, sizeof(ngx_http_linguamate_cluster_status_t));

    ccf = lmcf->cluster;

    if (ccf == NULL || ccf->sh == NULL) {
        return;
    }

    sh = ccf->sh;

    cs->up = sh->sub_up && sh->cmd_up;
    cs->refused = sh->refused
                  && ngx_current_msec - sh->refused < 10000;
    cs->lag = (ngx_msec_int_t) (ngx_current_msec - sh->synced) > 0
              ? ngx_current_msec - sh->synced : 0;
    cs->unsynced = (ngx_atomic_int_t) sh->unsynced > 0 ? sh->unsynced : 0;
    cs->applied = sh->applied;
    cs->reconnects = sh->reconnects;
}


u_char *
ngx_http_linguamate_cluster_where(ngx_http_linguamate_main_conf_t *lmcf,
    u_char *p, u_char *last)
{
    size_t                               n;
    ngx_http_linguamate_cluster_conf_t  *ccf;

    ccf = lmcf->cluster;

    if (ccf == NULL) {
        return p;
    }

    n = ngx_min(ccf->where.len, (size_t) (last - p));

    return ngx_cpymem(p, ccf->where.data, n);
}


uint64_t
ngx_http_linguamate_cluster_replica(void)
{
    ngx_http_linguamate_cluster_conf_t  *ccf;

    ccf = ngx_http_linguamate_cluster_w;

    return (ccf && ccf->sh) ? ccf->sh->replica : 0;
}


void
ngx_http_linguamate_cluster_synced(ngx_msec_t now)
{
    ngx_http_linguamate_cluster_conf_t  *ccf;

    ccf = ngx_http_linguamate_cluster_w;

    if (ccf && ccf->sh) {
        ccf->sh->synced = now;
    }
}


void
ngx_http_linguamate_cluster_unsynced(ngx_int_t delta)
{
    ngx_http_linguamate_cluster_conf_t  *ccf;

    ccf = ngx_http_linguamate_cluster_w;

    if (ccf && ccf->sh) {
        (void) ngx_atomic_fetch_add(&ccf->sh->unsynced, delta);
    }
}


ngx_int_t
ngx_http_linguamate_cluster_command(int argc, const char **argv,
    const size_t *argvlen, ngx_http_linguamate_redis_reply_pt handler,
    void *data)
{
    return ngx_http_linguamate_redis_command(ngx_http_linguamate_cluster_cmd,
                                             argc, argv, argvlen, handler,
                                             data);
}


/*
 * A script is registered once (at configuration, or at first use) and
 * called by its SHA1: EVALSHA sends 40 bytes instead of the body, and
 * Redis does not hash the body at every call.  Every (re)connect loads
 * them all first, on the same connection, so no EVALSHA can come before.
 */

ngx_int_t
ngx_http_linguamate_cluster_script(ngx_http_linguamate_cluster_script_t *sc)
{
    u_char      md[SHA_DIGEST_LENGTH];
    ngx_uint_t  i;

    if (!sc->hashed) {
        (void) SHA1(sc->body.data, sc->body.len, md);
        (void) ngx_hex_dump(sc->sha, md, SHA_DIGEST_LENGTH);
        sc->hashed = 1;
    }

    for (i = 0; i < ngx_http_linguamate_cluster_nscripts; i++) {
        if (ngx_http_linguamate_cluster_scripts[i] == sc) {
            return NGX_OK;
        }
    }

    if (i == NGX_HTTP_LINGUAMATE_CLUSTER_SCRIPTS) {
        return NGX_ERROR;
    }

    ngx_http_linguamate_cluster_scripts[i] = sc;
    ngx_http_linguamate_cluster_nscripts++;

    return NGX_OK;
}


/*
 * The Redis key of a zone's key: "linguamate:KIND:{ZONE:MD5}", one hash
 * slot per key; at most 21 + 64 + 34 bytes
 */

u_char *
ngx_http_linguamate_cluster_key(u_char *p, const char *kind,
    ngx_str_t *zone, u_char *key, size_t len)
{
    u_char     md5[16];
    ngx_md5_t  md5c;

    ngx_md5_init(&md5c);
    ngx_md5_update(&md5c, key, len);
    ngx_md5_final(md5, &md5c);

    p = ngx_sprintf(p, "linguamate:%s:{%*s:", kind,
                    ngx_min(zone->len, 64), zone->data);
    p = ngx_hex_dump(p, md5, 16);
    *p++ = '}';

    return p;
}


/* an error reply that says Redis forgot the scripts (SCRIPT FLUSH) */

ngx_uint_t
ngx_http_linguamate_cluster_noscript(redisReply *reply)
{
    if (reply == NULL || reply->type != REDIS_REPLY_ERROR
        || reply->len < 8 || ngx_strncmp(reply->str, "NOSCRIPT", 8) != 0)
    {
        return 0;
    }

    ngx_http_linguamate_cluster_load_scripts();

    return 1;
}


static void
ngx_http_linguamate_cluster_load_scripts(void)
{
    size_t                                 lens[3];
    ngx_uint_t                             i;
    const char                            *argv[3];
    ngx_http_linguamate_cluster_script_t  *sc;

    argv[0] = "SCRIPT";
    lens[0] = 6;
    argv[1] = "LOAD";
    lens[1] = 4;

    for (i = 0; i < ngx_http_linguamate_cluster_nscripts; i++) {
        sc = ngx_http_linguamate_cluster_scripts[i];

        argv[2] = (const char *) sc->body.data;
        lens[2] = sc->body.len;

        (void) ngx_http_linguamate_redis_command(
                   ngx_http_linguamate_cluster_cmd, 3, argv, lens,
                   ngx_http_linguamate_cluster_loaded, sc);
    }
}


static void
ngx_http_linguamate_cluster_loaded(ngx_http_linguamate_redis_t *rc,
    redisReply *reply, void *data)
{
    ngx_http_linguamate_cluster_script_t *sc = data;

    if (reply == NULL) {
        return;
    }

    if (reply->type != REDIS_REPLY_STRING || reply->len != 40
        || ngx_strncmp(reply->str, sc->sha, 40) != 0)
    {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "linguamate: redis did not load a script: %*s",
                      (size_t) (reply->str ? reply->len : 0),
                      reply->str ? reply->str : "");
    }
}


/*
 * A location set to "linguamate_cluster_fail closed" while Redis is away:
 * 503 SERVICE_UNAVAILABLE (reason CLUSTER_UNAVAILABLE).  Whatever this
 * replica knows is still enforced everywhere; closed is for the routes
 * where a replica's own view is not enough (a login whose lockout the
 * other replicas count).
 */

ngx_int_t
ngx_http_linguamate_cluster_gate(ngx_http_request_t *r)
{
    ngx_str_t                         extra;
    ngx_http_linguamate_loc_conf_t   *llcf;
    ngx_http_linguamate_main_conf_t  *lmcf;

    lmcf = ngx_http_get_module_main_conf(r, ngx_http_linguamate_module);

    if (lmcf->cluster == NULL || r != r->main) {
        return NGX_DECLINED;
    }

    llcf = ngx_http_get_module_loc_conf(r, ngx_http_linguamate_module);

    /* probes, metrics and the operations API answer whatever Redis does:
       a load balancer must not take a replica out for it */

    if (llcf->cluster_fail != NGX_HTTP_LINGUAMATE_CLUSTER_FAIL_CLOSED
        || llcf->probe
        || ngx_http_linguamate_cluster_up(lmcf))
    {
        return NGX_DECLINED;
    }

    ngx_log_debug0(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "linguamate cluster: Redis away, location fails closed");

    if (ngx_http_linguamate_add_header(r, "Retry-After",
                                       sizeof("Retry-After") - 1,
                                       (u_char *) "1", 1)
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_str_set(&extra, ",\"reason\":\"CLUSTER_UNAVAILABLE\","
                        "\"retryAfter\":1");

    return ngx_http_linguamate_phase_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                           "SERVICE_UNAVAILABLE",
                                           "Service temporarily unavailable",
                                           &extra);
}


/* --- the worker --------------------------------------------------------- */

ngx_int_t
ngx_http_linguamate_cluster_init_process(ngx_cycle_t *cycle)
{
    ngx_http_linguamate_main_conf_t     *lmcf;
    ngx_http_linguamate_cluster_conf_t  *ccf;

    if (ngx_process != NGX_PROCESS_WORKER
        && ngx_process != NGX_PROCESS_SINGLE)
    {
        return NGX_OK;
    }

    lmcf = ngx_http_cycle_get_module_main_conf(cycle,
                                               ngx_http_linguamate_module);
    if (lmcf == NULL || lmcf->cluster == NULL) {
        return NGX_OK;
    }

    ccf = lmcf->cluster;
    ngx_http_linguamate_cluster_w = ccf;

    ngx_queue_init(&ngx_http_linguamate_cluster_q);

    if (ngx_http_linguamate_cluster_script(&ngx_http_linguamate_cluster_put_s)
        != NGX_OK
        || ngx_http_linguamate_cluster_script(
               &ngx_http_linguamate_cluster_fetch_s)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    ngx_http_linguamate_cluster_cmd = ngx_http_linguamate_redis_create(
                                          &ccf->url, "command", cycle->log,
                                          ngx_http_linguamate_cluster_cmd_state,
                                          NULL, ccf);
    if (ngx_http_linguamate_cluster_cmd == NULL) {
        return NGX_ERROR;
    }

    /* one worker of the replica listens to the others' changes */

    if (ngx_worker == 0) {
        ngx_http_linguamate_cluster_sub = ngx_http_linguamate_redis_create(
                                          &ccf->url, "subscriber", cycle->log,
                                          ngx_http_linguamate_cluster_sub_state,
                                          ngx_http_linguamate_cluster_message,
                                          ccf);
        if (ngx_http_linguamate_cluster_sub == NULL) {
            return NGX_ERROR;
        }
    }

    ngx_http_linguamate_cluster_ev.handler = ngx_http_linguamate_cluster_tick;
    ngx_http_linguamate_cluster_ev.data = ccf;
    ngx_http_linguamate_cluster_ev.log = cycle->log;
    ngx_http_linguamate_cluster_ev.cancelable = 1;

    /* the connects are non-blocking: they finish on the event loop */

    ngx_http_linguamate_redis_connect(ngx_http_linguamate_cluster_cmd);

    if (ngx_http_linguamate_cluster_sub) {
        ngx_http_linguamate_redis_connect(ngx_http_linguamate_cluster_sub);
    }

    ngx_add_timer(&ngx_http_linguamate_cluster_ev, ccf->interval);

    return NGX_OK;
}


void
ngx_http_linguamate_cluster_exit_process(ngx_cycle_t *cycle)
{
    ngx_queue_t                        *q, *next;
    ngx_http_linguamate_cluster_put_t  *put;

    if (ngx_http_linguamate_cluster_w == NULL) {
        return;
    }

    if (ngx_http_linguamate_cluster_ev.timer_set) {
        ngx_del_timer(&ngx_http_linguamate_cluster_ev);
    }

    /* a reload's new listener may have said "up" already */

    if (ngx_http_linguamate_cluster_sub
        && ngx_http_linguamate_cluster_w->sh->sub_pid == (ngx_atomic_t) ngx_pid)
    {
        ngx_http_linguamate_cluster_w->sh->sub_up = 0;
    }

    ngx_http_linguamate_redis_destroy(ngx_http_linguamate_cluster_sub);
    ngx_http_linguamate_cluster_sub = NULL;
    ngx_http_linguamate_redis_destroy(ngx_http_linguamate_cluster_cmd);
    ngx_http_linguamate_cluster_cmd = NULL;

    /* what never reached Redis: the journal has it, the next start
       uploads it with the snapshot */

    q = ngx_queue_head(&ngx_http_linguamate_cluster_q);

    while (q != ngx_queue_sentinel(&ngx_http_linguamate_cluster_q)) {
        next = ngx_queue_next(q);
        put = ngx_queue_data(q, ngx_http_linguamate_cluster_put_t, queue);
        ngx_free(put);
        ngx_http_linguamate_cluster_unsynced(-1);
        q = next;
    }

    ngx_queue_init(&ngx_http_linguamate_cluster_q);

    ngx_http_linguamate_cluster_nq = 0;
    ngx_http_linguamate_cluster_w = NULL;
}


static void
ngx_http_linguamate_cluster_cmd_state(ngx_http_linguamate_redis_t *rc,
    ngx_uint_t up)
{
    ngx_http_linguamate_cluster_conf_t  *ccf;

    ccf = ngx_http_linguamate_redis_data(rc);

    if (!up) {
        ccf->sh->cmd_up = 0;
        (void) ngx_atomic_fetch_add(&ccf->sh->reconnects, 1);
        return;
    }

    ccf->sh->cmd_up = 1;

    /* the scripts, then what waited */

    ngx_http_linguamate_cluster_load_scripts();
    ngx_http_linguamate_cluster_drain();

    if (ngx_http_linguamate_redis_ready(ngx_http_linguamate_cluster_sub)) {
        ngx_http_linguamate_cluster_resync();
    }
}


static void
ngx_http_linguamate_cluster_sub_state(ngx_http_linguamate_redis_t *rc,
    ngx_uint_t up)
{
    size_t                               lens[2];
    const char                          *argv[2];
    ngx_http_linguamate_cluster_conf_t  *ccf;

    ccf = ngx_http_linguamate_redis_data(rc);

    if (!up) {
        if (ccf->sh->sub_pid == (ngx_atomic_t) ngx_pid) {
            ccf->sh->sub_up = 0;
        }

        return;
    }

    argv[0] = "SUBSCRIBE";
    lens[0] = sizeof("SUBSCRIBE") - 1;
    argv[1] = NGX_HTTP_LINGUAMATE_CLUSTER_CHANNEL;
    lens[1] = sizeof(NGX_HTTP_LINGUAMATE_CLUSTER_CHANNEL) - 1;

    /* the limits' channel first: "subscribed" follows the state's */

    argv[1] = NGX_HTTP_LINGUAMATE_CLUSTER_HOT;
    lens[1] = sizeof(NGX_HTTP_LINGUAMATE_CLUSTER_HOT) - 1;

    (void) ngx_http_linguamate_redis_command(rc, 2, argv, lens,
                                    ngx_http_linguamate_cluster_heard, ccf);

    argv[1] = NGX_HTTP_LINGUAMATE_CLUSTER_CHANNEL;
    lens[1] = sizeof(NGX_HTTP_LINGUAMATE_CLUSTER_CHANNEL) - 1;

    (void) ngx_http_linguamate_redis_command(rc, 2, argv, lens,
                                    ngx_http_linguamate_cluster_subscribed,
                                    ccf);
    ngx_http_linguamate_cluster_said = ngx_current_msec;
}


/* subscribed: nothing published from now on is missed; read the rest */

static void
ngx_http_linguamate_cluster_subscribed(ngx_http_linguamate_redis_t *rc,
    redisReply *reply, void *data)
{
    ngx_http_linguamate_cluster_conf_t  *ccf = data;

    if (reply == NULL) {
        return;
    }

    if (reply->type == REDIS_REPLY_ERROR) {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "linguamate: redis refused to SUBSCRIBE: %*s",
                      (size_t) reply->len, reply->str);
        ngx_http_linguamate_redis_drop(rc, "SUBSCRIBE refused");
        return;
    }

    ccf->sh->sub_pid = (ngx_atomic_t) ngx_pid;
    ccf->sh->sub_up = 1;

    if (ngx_http_linguamate_redis_ready(ngx_http_linguamate_cluster_cmd)) {
        ngx_http_linguamate_cluster_resync();
    }
}


/*
 * The resync after a (re)connect: the live state uploaded where Redis
 * lacks it (stamp 0), then the whole state read back and applied.  The
 * commands go in order on one connection, so what is read includes what
 * was uploaded.
 */

static void
ngx_http_linguamate_cluster_resync(void)
{
    ngx_uint_t                             i;
    ngx_http_linguamate_state_t          **sp;
    ngx_http_linguamate_cluster_conf_t    *ccf;
    ngx_http_linguamate_cluster_upload_t   up;

    ccf = ngx_http_linguamate_cluster_w;
    sp = ccf->states.elts;

    /*
     * the live state, copied out of the zones (under their locks) into
     * the queue; sent from the queue at the pace Redis answers, then the
     * state read back (ngx_http_linguamate_cluster_drain)
     */

    for (i = 0; i < ccf->states.nelts; i++) {
        up.st = sp[i];
        up.log = ngx_cycle->log;
        up.n = 0;

        if (sp[i]->snapshot) {
            (void) sp[i]->snapshot(sp[i], ngx_http_linguamate_cluster_upload,
                                   &up, ngx_cycle->log);
        }

        ngx_log_debug2(NGX_LOG_DEBUG_CORE, ngx_cycle->log, 0,
                       "linguamate cluster: resync \"%V\": %ui to upload",
                       &sp[i]->file, up.n);
    }

    ngx_http_linguamate_cluster_refetch = 1;

    ngx_http_linguamate_cluster_drain();
}


/* the whole state of each zone read back: after the uploads were sent */

static ngx_int_t
ngx_http_linguamate_cluster_fetch_all(void)
{
    u_char                                 now[NGX_INT64_LEN];
    u_char                                 key[2][256];
    size_t                                 lens[6];
    const char                            *argv[6];
    ngx_uint_t                             i;
    ngx_http_linguamate_state_t          **sp;
    ngx_http_linguamate_cluster_conf_t    *ccf;

    ccf = ngx_http_linguamate_cluster_w;
    sp = ccf->states.elts;

    for (i = 0; i < ccf->states.nelts; i++) {
        ngx_http_linguamate_cluster_state_key(key[0], &lens[3], sp[i], 0);
        ngx_http_linguamate_cluster_state_key(key[1], &lens[4], sp[i], 1);

        argv[0] = "EVALSHA";
        lens[0] = 7;
        argv[1] = (const char *) ngx_http_linguamate_cluster_fetch_s.sha;
        lens[1] = 40;
        argv[2] = "2";
        lens[2] = 1;
        argv[3] = (const char *) key[0];
        argv[4] = (const char *) key[1];
        argv[5] = (const char *) now;
        lens[5] = ngx_sprintf(now, "%L", ngx_http_linguamate_now_ms()) - now;

        if (ngx_http_linguamate_redis_command(ngx_http_linguamate_cluster_cmd,
                                              6, argv, lens,
                                        ngx_http_linguamate_cluster_fetched,
                                              sp[i])
            != NGX_OK)
        {
            return NGX_DECLINED;
        }
    }

    ngx_http_linguamate_cluster_fetch = ccf->states.nelts;

    return NGX_OK;
}


static ngx_int_t
ngx_http_linguamate_cluster_upload(void *sink,
    ngx_http_linguamate_state_rec_t *rec)
{
    ngx_http_linguamate_cluster_upload_t  *up = sink;

    ngx_http_linguamate_cluster_put_t  *put;

    if (ngx_http_linguamate_cluster_nq >= NGX_HTTP_LINGUAMATE_CLUSTER_QUEUE_MAX)
    {
        /* the live changes keep their room: Redis lacks the rest of this
           upload until the next connect */
        return NGX_OK;
    }

    put = ngx_http_linguamate_cluster_put(up->st, rec, 0, up->log);
    if (put == NULL) {
        return NGX_OK;                  /* expired or no memory: skipped */
    }

    ngx_http_linguamate_cluster_queue(put, up->log);
    up->n++;

    return NGX_OK;
}


static void
ngx_http_linguamate_cluster_fetched(ngx_http_linguamate_redis_t *rc,
    redisReply *reply, void *data)
{
    ngx_http_linguamate_state_t *st = data;

    size_t                               i;
    ngx_uint_t                           n;
    redisReply                          *e;
    ngx_http_linguamate_cluster_conf_t  *ccf;

    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY) {
        if (reply) {
            ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                          "linguamate: redis: reading \"%V\" failed: %*s",
                          &st->file, (size_t) reply->len,
                          reply->str ? reply->str : "");
        }

        return;
    }

    n = 0;

    for (i = 0; i < reply->elements; i++) {
        e = reply->element[i];

        if (e->type == REDIS_REPLY_STRING
            && ngx_http_linguamate_cluster_receive(st, (u_char *) e->str,
                                                   e->len,
                                  NGX_HTTP_LINGUAMATE_CLUSTER_RESYNC_RECORD,
                                                   ngx_cycle->log)
               == NGX_OK)
        {
            n++;
        }
    }

    ngx_log_error(NGX_LOG_INFO, ngx_cycle->log, 0,
                  "linguamate: redis: \"%V\" resynchronised: %uz records, "
                  "%ui applied", &st->file, reply->elements, n);

    ccf = ngx_http_linguamate_cluster_w;

    if (ccf && --ngx_http_linguamate_cluster_fetch == 0) {
        ngx_http_linguamate_cluster_synced(ngx_current_msec);
    }
}


/* a message of the channel: "FILE STAMP ORIGIN LINE" */

static void
ngx_http_linguamate_cluster_message(ngx_http_linguamate_redis_t *rc,
    redisReply *reply, void *data)
{
    ngx_http_linguamate_cluster_conf_t *ccf = data;

    u_char                        *p, *last, *sp;
    redisReply                    *msg;
    ngx_uint_t                     i;
    ngx_http_linguamate_state_t  **states;

    msg = reply->element[2];

    ngx_http_linguamate_cluster_said = ngx_current_msec;

    if (msg->type != REDIS_REPLY_STRING) {
        return;
    }

    if (reply->element[1]->type == REDIS_REPLY_STRING
        && reply->element[1]->len == sizeof(NGX_HTTP_LINGUAMATE_CLUSTER_HOT)
                                     - 1
        && ngx_strncmp(reply->element[1]->str,
                       NGX_HTTP_LINGUAMATE_CLUSTER_HOT,
                       sizeof(NGX_HTTP_LINGUAMATE_CLUSTER_HOT) - 1) == 0)
    {
        if (ngx_http_linguamate_cluster_hot_handler) {
            ngx_http_linguamate_cluster_hot_handler((u_char *) msg->str,
                                                    msg->len);
        }

        return;
    }

    p = (u_char *) msg->str;
    last = p + msg->len;

    sp = ngx_strlchr(p, last, ' ');
    if (sp == NULL) {
        return;
    }

    states = ccf->states.elts;

    for (i = 0; i < ccf->states.nelts; i++) {
        if (states[i]->file.len == (size_t) (sp - p)
            && ngx_strncmp(states[i]->file.data, p, sp - p) == 0)
        {
            (void) ngx_http_linguamate_cluster_receive(states[i], sp + 1,
                                                       last - sp - 1,
                                  NGX_HTTP_LINGUAMATE_CLUSTER_CHANNEL_RECORD,
                                                       ngx_cycle->log);
            return;
        }
    }
}


/*
 * "STAMP ORIGIN LINE" into the zone.  A change of another replica also
 * goes to the local journal (it is the source at the next start; a
 * resync may append a record the journal has: the compaction at the next
 * start drops the copies).  This replica's own changes are in its zone
 * already: from the channel they are skipped, from a resync applied
 * again (nothing changes).
 */

static ngx_int_t
ngx_http_linguamate_cluster_receive(ngx_http_linguamate_state_t *st,
    u_char *p, size_t len, ngx_uint_t from, ngx_log_t *log)
{
    u_char                               *last, *origin;
    uint64_t                              id;
    ngx_uint_t                            own;
    ngx_int_t                             rv;
    ngx_http_linguamate_state_rec_t       rec;
    ngx_http_linguamate_state_scratch_t   scratch;
    ngx_http_linguamate_cluster_conf_t   *ccf;

    ccf = ngx_http_linguamate_cluster_w;
    last = p + len;

    p = ngx_strlchr(p, last, ' ');
    if (p == NULL) {
        return NGX_ERROR;
    }

    origin = ++p;

    p = ngx_strlchr(p, last, ' ');
    if (p == NULL || p - origin != 16) {
        return NGX_ERROR;
    }

    id = 0;

    for ( /* void */ ; origin < p; origin++) {
        rv = ngx_hextoi(origin, 1);
        if (rv == NGX_ERROR) {
            return NGX_ERROR;
        }

        id = (id << 4) | (uint64_t) rv;
    }

    p++;

    if (last > p && last[-1] == '\n') {
        last--;
    }

    /* this replica's own changes are applied too: another worker's
       change written after a resync read an older one must win here as
       it did in Redis (applying twice changes nothing) */

    own = (ccf && id == ccf->sh->replica);

    if (ngx_http_linguamate_state_parse(st->kind, p, last - p, &rec, scratch)
        != NGX_OK)
    {
        ngx_log_error(NGX_LOG_WARN, log, 0,
                      "linguamate: redis: a bad record of \"%V\" ignored",
                      &st->file);
        return NGX_ERROR;
    }

    rv = ngx_http_linguamate_state_apply(st, &rec, log);

    if (rv != NGX_OK) {
        return rv;
    }

    if (!own) {
        if (ccf) {
            (void) ngx_atomic_fetch_add(&ccf->sh->applied, 1);
        }

        (void) ngx_http_linguamate_state_file.append(st, &rec, 1, log);
    }

    return NGX_OK;
}


/* --- the state backend -------------------------------------------------- */

static ngx_int_t
ngx_http_linguamate_cluster_append(ngx_http_linguamate_state_t *st,
    ngx_http_linguamate_state_rec_t *rec, ngx_uint_t n, ngx_log_t *log)
{
    int64_t                             stamp;
    ngx_uint_t                          i;
    ngx_http_linguamate_cluster_put_t  *put;

    if (ngx_http_linguamate_cluster_w == NULL) {
        /* not a worker (or the worker is past exit): the journal has it */
        return NGX_OK;
    }

    stamp = ngx_http_linguamate_now_ms();

    for (i = 0; i < n; i++) {
        put = ngx_http_linguamate_cluster_put(st, &rec[i], stamp, log);
        if (put == NULL) {
            continue;
        }

        if (ngx_http_linguamate_cluster_send(put) != NGX_OK) {
            ngx_http_linguamate_cluster_queue(put, log);
        }
    }

    return NGX_OK;
}


/* at start the local journal is the source: nothing is read from Redis
   before the event loop runs */

static ngx_int_t
ngx_http_linguamate_cluster_load(ngx_http_linguamate_state_t *st,
    ngx_log_t *log)
{
    return NGX_DECLINED;
}


static ngx_int_t
ngx_http_linguamate_cluster_compact(ngx_http_linguamate_state_t *st,
    ngx_log_t *log)
{
    return NGX_OK;
}


static void
ngx_http_linguamate_cluster_state_key(u_char *buf, size_t *len,
    ngx_http_linguamate_state_t *st, ngx_uint_t exp)
{
    size_t  n;

    n = ngx_min(st->file.len, 200);

    *len = ngx_sprintf(buf, "{linguamate}:state:%*s%s", n, st->file.data,
                       exp ? ":exp" : "") - buf;
}


static ngx_http_linguamate_cluster_put_t *
ngx_http_linguamate_cluster_put(ngx_http_linguamate_state_t *st,
    ngx_http_linguamate_state_rec_t *rec, int64_t stamp, ngx_log_t *log)
{
    u_char                             *p;
    u_char                              buf[2 * NGX_INT64_LEN
                                        + NGX_HTTP_LINGUAMATE_STATE_LINE_MAX];
    size_t                              stamp_len;
    int64_t                             expire, now;
    ngx_http_linguamate_cluster_put_t  *put;

    now = ngx_http_linguamate_now_ms();

    switch (rec->type) {

    case NGX_HTTP_LINGUAMATE_STATE_SESSION:
        expire = rec->n[0] * 1000;
        break;

    case NGX_HTTP_LINGUAMATE_STATE_LOCK:
        expire = rec->n[0];
        break;

    case NGX_HTTP_LINGUAMATE_STATE_UNLOCK:
        expire = now + NGX_HTTP_LINGUAMATE_CLUSTER_UNLOCK_TTL;
        break;

    default:
        expire = 0;
    }

    if (expire && expire <= now) {
        return NULL;
    }

    /* formatted here, kept at its size (a queue may hold many) */

    p = ngx_sprintf(buf, "%L ", stamp);
    stamp_len = p - buf - 1;
    p = ngx_sprintf(p, "%016uxL ",
                    ngx_http_linguamate_cluster_w->sh->replica);
    p = ngx_http_linguamate_state_line(p, rec);

    if (p[-1] == '\n') {
        p--;
    }

    put = ngx_alloc(sizeof(ngx_http_linguamate_cluster_put_t)
                    + rec->key.len + (p - buf), log);
    if (put == NULL) {
        return NULL;
    }

    put->st = st;
    put->expire = expire;
    put->key_len = rec->key.len;
    put->stamp_len = stamp_len;
    put->value_len = p - buf;

    p = ngx_cpymem(put->data, rec->key.data, rec->key.len);
    ngx_memcpy(p, buf, put->value_len);

    return put;
}


/* one record to Redis: NGX_OK sent (its callback will run), else not */

static ngx_int_t
ngx_http_linguamate_cluster_send(ngx_http_linguamate_cluster_put_t *put)
{
    u_char       key[2][256], exp[NGX_INT64_LEN];
    u_char       msg[256 + NGX_HTTP_LINGUAMATE_STATE_LINE_MAX
                     + NGX_HTTP_LINGUAMATE_STATE_KEY_MAX + 64];
    u_char      *p;
    u_char       now[NGX_INT64_LEN];
    size_t       lens[12], n;
    const char  *argv[12];

    if (!ngx_http_linguamate_redis_ready(ngx_http_linguamate_cluster_cmd)) {
        return NGX_DECLINED;
    }

    n = ngx_min(put->st->file.len, 200);

    argv[0] = "EVALSHA";
    lens[0] = 7;
    argv[1] = (const char *) ngx_http_linguamate_cluster_put_s.sha;
    lens[1] = 40;
    argv[2] = "2";
    lens[2] = 1;

    ngx_http_linguamate_cluster_state_key(key[0], &lens[3], put->st, 0);
    ngx_http_linguamate_cluster_state_key(key[1], &lens[4], put->st, 1);
    argv[3] = (const char *) key[0];
    argv[4] = (const char *) key[1];

    argv[5] = (const char *) put->data;                     /* field */
    lens[5] = put->key_len;
    argv[6] = (const char *) put->data + put->key_len;      /* stamp */
    lens[6] = put->stamp_len;
    argv[7] = (const char *) put->data + put->key_len;      /* value */
    lens[7] = put->value_len;

    argv[8] = (const char *) exp;
    lens[8] = ngx_sprintf(exp, "%L", put->expire) - exp;

    argv[9] = NGX_HTTP_LINGUAMATE_CLUSTER_CHANNEL;
    lens[9] = sizeof(NGX_HTTP_LINGUAMATE_CLUSTER_CHANNEL) - 1;

    p = ngx_sprintf(msg, "%*s ", n, put->st->file.data);
    p = ngx_cpymem(p, put->data + put->key_len, put->value_len);
    argv[10] = (const char *) msg;
    lens[10] = p - msg;

    argv[11] = (const char *) now;
    lens[11] = ngx_sprintf(now, "%L", ngx_http_linguamate_now_ms()) - now;

    if (ngx_http_linguamate_redis_command(ngx_http_linguamate_cluster_cmd,
                                          12, argv, lens,
                                          ngx_http_linguamate_cluster_sent,
                                          put)
        != NGX_OK)
    {
        return NGX_DECLINED;
    }

    return NGX_OK;
}


static void
ngx_http_linguamate_cluster_sent(ngx_http_linguamate_redis_t *rc,
    redisReply *reply, void *data)
{
    ngx_http_linguamate_cluster_put_t  *put = data;

    ngx_http_linguamate_cluster_conf_t  *ccf;

    ccf = ngx_http_linguamate_cluster_w;

    if (reply != NULL && reply->type != REDIS_REPLY_ERROR) {
        ngx_free(put);
        return;
    }

    if (ccf == NULL) {
        ngx_free(put);
        return;
    }

    /*
     * Not written: again, later (a second write of the same change is
     * refused by its stamp).  A refusal (out of memory, a read-only
     * replica after a failover, loading, not authenticated) is shown in
     * the detailed health for a while; one that says this connection
     * cannot write closes it (backoff, then resync).
     */

    ngx_http_linguamate_cluster_queue(put, ngx_cycle->log);

    if (reply == NULL || ngx_http_linguamate_cluster_noscript(reply)) {
        return;
    }

    ccf->sh->refused = ngx_current_msec | 1;

    if (ngx_http_linguamate_cluster_nolog == 0
        || ngx_current_msec - ngx_http_linguamate_cluster_nolog
           >= 60000)
    {
        ngx_http_linguamate_cluster_nolog = ngx_current_msec | 1;

        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "linguamate: redis refused a change of \"%V\", kept "
                      "to send again: %*s", &put->st->file,
                      (size_t) reply->len, reply->str);
    }

    if (reply->len >= 8
        && (ngx_strncmp(reply->str, "READONLY", 8) == 0
            || ngx_strncmp(reply->str, "LOADING ", 8) == 0
            || ngx_strncmp(reply->str, "NOAUTH A", 8) == 0
            || ngx_strncmp(reply->str, "MASTERDO", 8) == 0
            || ngx_strncmp(reply->str, "MISCONF ", 8) == 0))
    {
        ngx_http_linguamate_redis_drop(rc, "Redis cannot take writes");
    }
}


static void
ngx_http_linguamate_cluster_queue(ngx_http_linguamate_cluster_put_t *put,
    ngx_log_t *log)
{
    ngx_queue_t                        *q;
    ngx_http_linguamate_cluster_put_t  *old;

    if (ngx_http_linguamate_cluster_nq >= NGX_HTTP_LINGUAMATE_CLUSTER_QUEUE_MAX)
    {
        /* the oldest goes: the journals and the next resync keep it */

        q = ngx_queue_head(&ngx_http_linguamate_cluster_q);
        ngx_queue_remove(q);
        old = ngx_queue_data(q, ngx_http_linguamate_cluster_put_t, queue);
        ngx_free(old);
        ngx_http_linguamate_cluster_nq--;
        ngx_http_linguamate_cluster_unsynced(-1);

        if (ngx_http_linguamate_cluster_lost++ % 1000 == 0) {
            ngx_log_error(NGX_LOG_WARN, log, 0,
                          "linguamate: redis away: %ui changes waiting, "
                          "the oldest dropped from the queue (still in the "
                          "journal)", ngx_http_linguamate_cluster_nq);
        }
    }

    ngx_queue_insert_tail(&ngx_http_linguamate_cluster_q, &put->queue);
    ngx_http_linguamate_cluster_nq++;
    ngx_http_linguamate_cluster_unsynced(1);
}


static void
ngx_http_linguamate_cluster_drain(void)
{
    ngx_uint_t                          n;
    ngx_queue_t                        *q;
    ngx_http_linguamate_cluster_put_t  *put;

    for (n = 0; n < NGX_HTTP_LINGUAMATE_CLUSTER_BATCH; n++) {
        if (ngx_queue_empty(&ngx_http_linguamate_cluster_q)) {
            break;
        }

        /* out of the queue before it is sent: a send that fails puts it
           back (its callback, run from the send, may queue it again) */

        q = ngx_queue_head(&ngx_http_linguamate_cluster_q);
        ngx_queue_remove(q);
        ngx_http_linguamate_cluster_nq--;
        ngx_http_linguamate_cluster_unsynced(-1);

        put = ngx_queue_data(q, ngx_http_linguamate_cluster_put_t, queue);

        if (ngx_http_linguamate_cluster_send(put) != NGX_OK) {
            ngx_queue_insert_head(&ngx_http_linguamate_cluster_q, q);
            ngx_http_linguamate_cluster_nq++;
            ngx_http_linguamate_cluster_unsynced(1);
            return;
        }
    }

    if (ngx_http_linguamate_cluster_refetch
        && ngx_queue_empty(&ngx_http_linguamate_cluster_q)
        && ngx_http_linguamate_cluster_fetch_all() == NGX_OK)
    {
        ngx_http_linguamate_cluster_refetch = 0;
    }
}


/* --- every CLUSTER_SYNC_MS ----------------------------------------------- */

static void
ngx_http_linguamate_cluster_pong(ngx_http_linguamate_redis_t *rc,
    redisReply *reply, void *data)
{
    ngx_msec_t  sent = (ngx_msec_t) (uintptr_t) data;

    if (reply && reply->type != REDIS_REPLY_ERROR) {
        ngx_http_linguamate_cluster_synced(sent);
    }
}


/* the listener's PING: its answer only shows the connection is alive */

static void
ngx_http_linguamate_cluster_heard(ngx_http_linguamate_redis_t *rc,
    redisReply *reply, void *data)
{
}


static void
ngx_http_linguamate_cluster_tick(ngx_event_t *ev)
{
    ngx_http_linguamate_cluster_conf_t *ccf = ev->data;

    size_t                               lens[1];
    ngx_msec_t                           now;
    ngx_uint_t                           i;
    const char                          *argv[1];
    ngx_atomic_uint_t                    next;
    ngx_http_linguamate_cluster_sync_t  *s;

    if (ngx_exiting || ngx_quit || ngx_terminate) {
        return;
    }

    now = ngx_current_msec;

    ngx_add_timer(ev, ccf->interval);

    argv[0] = "PING";
    lens[0] = 4;

    /* the listener speaks now and then: a dead peer is found */

    if (ngx_http_linguamate_cluster_sub
        && ngx_http_linguamate_redis_ready(ngx_http_linguamate_cluster_sub)
        && now - ngx_http_linguamate_cluster_said
           >= NGX_HTTP_LINGUAMATE_CLUSTER_PING)
    {
        ngx_http_linguamate_cluster_said = now;
        (void) ngx_http_linguamate_redis_command(
                   ngx_http_linguamate_cluster_sub, 1, argv, lens,
                   ngx_http_linguamate_cluster_heard, NULL);
    }

    if (!ngx_http_linguamate_redis_ready(ngx_http_linguamate_cluster_cmd)) {
        return;
    }

    ngx_http_linguamate_cluster_drain();

    /* one worker of the replica per interval: the lease */

    next = ccf->sh->tick_next;

    if ((ngx_msec_int_t) (now - (ngx_msec_t) next) < 0
        || !ngx_atomic_cmp_set(&ccf->sh->tick_next, next,
                               now + ccf->interval - ccf->interval / 4))
    {
        return;
    }

    ccf->sh->cmd_up = 1;

    s = ccf->syncs.elts;

    for (i = 0; i < ccf->syncs.nelts; i++) {
        s[i].handler(s[i].data, now, ev->log);
    }

    /* the lag: when Redis last answered this replica's round */

    (void) ngx_http_linguamate_redis_command(ngx_http_linguamate_cluster_cmd,
                                     1, argv, lens,
                                     ngx_http_linguamate_cluster_pong,
                                     (void *) (uintptr_t) now);
}
