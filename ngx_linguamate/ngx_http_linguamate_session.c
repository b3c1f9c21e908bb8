/*
 * Copyright (C) ngx_linguamate developers
 *
 * Sessions: revocations and refresh-token rotation in a shared zone, so a
 * revocation reaches every worker at once, with a journal under STATE_DIR
 * so that it survives a restart.
 *
 * Keys: "all" (every token issued before a moment), "sub:USER" (a user's
 * tokens issued before a moment), "sid:SESSION" (one session, and the id
 * of its current refresh token).  An entry lasts as long as the tokens it
 * covers could (the refresh lifetime).
 *
 * The moment of a revocation is kept to the millisecond: a token issued
 * at or before it is refused, one issued after it is not.  A token's
 * issue time is its iat_ms claim (the edge's tokens carry it), else the
 * start of its iat second (so a token of the revocation's own second is
 * refused: fail closed), else unknown (refused).
 *
 * The journal, STATE_DIR/sessions-NAME.journal, is the state layer's
 * (ngx_http_linguamate_state.c): a "session" record per change, the
 * entry as it is after it; the master replays it when the zone starts
 * empty and compacts it before any worker runs.
 * Entries in force are never evicted: a full zone refuses a revocation
 * (the caller answers 500 and logs it) rather than forget one.
 */


#include "ngx_http_linguamate_module.h"
#include "ngx_http_linguamate_shm.h"
#include "ngx_http_linguamate_state.h"
#include "ngx_http_linguamate_session.h"


#define NGX_HTTP_LINGUAMATE_JTI_MAX  48


typedef struct {
    time_t                      until;      /* epoch s: forget after it */
    int64_t                     before;     /* all/sub: epoch ms; issued
                                               at or before it: revoked */
    u_char                      revoked;    /* sid: */
    u_char                      jti_len;
    u_char                      jti[NGX_HTTP_LINGUAMATE_JTI_MAX];
} ngx_http_linguamate_revocation_t;


typedef struct {
    ngx_http_linguamate_main_conf_t  *lmcf;
    ngx_http_linguamate_state_t      *state;
} ngx_http_linguamate_session_zone_t;


static ngx_int_t ngx_http_linguamate_session_fresh(
    ngx_http_linguamate_zone_t *zone, ngx_log_t *log);
static ngx_uint_t ngx_http_linguamate_session_evictable(
    ngx_http_linguamate_node_t *node);
static ngx_int_t ngx_http_linguamate_session_apply(
    ngx_http_linguamate_state_t *st, ngx_http_linguamate_state_rec_t *rec,
    ngx_log_t *log);
static ngx_int_t ngx_http_linguamate_session_snapshot(
    ngx_http_linguamate_state_t *st, ngx_http_linguamate_state_emit_pt emit,
    void *sink, ngx_log_t *log);
static void ngx_http_linguamate_session_write(
    ngx_http_linguamate_zone_t *zone, ngx_str_t *key,
    ngx_http_linguamate_revocation_t *rv, ngx_log_t *log);
static void ngx_http_linguamate_session_record(ngx_str_t *key,
    ngx_http_linguamate_revocation_t *rv,
    ngx_http_linguamate_state_rec_t *rec);
static ngx_http_linguamate_revocation_t *ngx_http_linguamate_session_upsert(
    ngx_http_linguamate_zone_t *zone, ngx_str_t *key, time_t until,
    ngx_log_t *log);
static ngx_int_t ngx_http_linguamate_session_key(ngx_pool_t *pool,
    const char *prefix, ngx_str_t *id, ngx_str_t *key);


/* linguamate_session_zone NAME size=SIZE; */

char *
ngx_http_linguamate_session_zone(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_linguamate_main_conf_t *lmcf = conf;

    ssize_t                              size;
    ngx_str_t                           *value, sig;
    ngx_http_linguamate_zone_t          *zone;
    ngx_http_linguamate_session_zone_t  *sz;

    if (lmcf->session_zone) {
        return "is duplicate: one session zone serves the whole http block";
    }

    value = cf->args->elts;

    if (ngx_strncmp(value[2].data, "size=", 5) != 0) {
        return "takes size=SIZE";
    }

    size = ngx_http_linguamate_zone_size(cf, &value[1], &value[2]);
    if (size == NGX_ERROR) {
        return NGX_CONF_ERROR;
    }

    sz = ngx_pcalloc(cf->pool, sizeof(ngx_http_linguamate_session_zone_t));
    if (sz == NULL) {
        return NGX_CONF_ERROR;
    }

    sz->lmcf = lmcf;

    /* the revocation's layout changed with its milliseconds */

    ngx_str_set(&sig, "a session zone (revocations in ms)");

    zone = ngx_http_linguamate_zone_add(cf, lmcf, &value[1], (size_t) size,
                                        NGX_HTTP_LINGUAMATE_ZONE_SESSION,
                                        &sig);
    if (zone == NULL) {
        return NGX_CONF_ERROR;
    }

    zone->data = sz;
    zone->init_fresh = ngx_http_linguamate_session_fresh;
    zone->evictable = ngx_http_linguamate_session_evictable;

    sz->state = ngx_http_linguamate_state_create(cf, zone, &lmcf->state_dir,
                    "sessions-%V.journal", ngx_http_linguamate_session_apply,
                    ngx_http_linguamate_session_snapshot, sz);
    if (sz->state == NULL) {
        return NGX_CONF_ERROR;
    }

    lmcf->session_zone = zone;

    return NGX_CONF_OK;
}


/*
 * At start: replay the journal, then compact it.  At a reload the zone
 * and its journal are kept as they are (workers append to it).  A state
 * directory that cannot be written is logged, not fatal.
 */

static ngx_int_t
ngx_http_linguamate_session_fresh(ngx_http_linguamate_zone_t *zone,
    ngx_log_t *log)
{
    ngx_http_linguamate_session_zone_t  *sz;

    sz = zone->data;

    if (ngx_http_linguamate_state_path(sz->state) != NGX_OK) {
        return NGX_ERROR;
    }

    /* replayed, then compacted */

    (void) ngx_http_linguamate_state_load(sz->state, log);

    return NGX_OK;
}


/* a revocation in force is never evicted: the zone refuses new ones */

static ngx_uint_t
ngx_http_linguamate_session_evictable(ngx_http_linguamate_node_t *node)
{
    return 0;
}


/*
 * A session record into the zone, merged with what is there: the later
 * "until" and "before", revoked once revoked, the record's refresh jti.
 * Applying one twice changes nothing.
 */

static ngx_int_t
ngx_http_linguamate_session_apply(ngx_http_linguamate_state_t *st,
    ngx_http_linguamate_state_rec_t *rec, ngx_log_t *log)
{
    ngx_http_linguamate_zone_t        *zone;
    ngx_http_linguamate_revocation_t  *rv;

    zone = st->zone;

    if (rec->n[0] <= (int64_t) ngx_time()) {
        return NGX_DECLINED;
    }

    if (rec->n[0] > NGX_MAX_TIME_T_VALUE) {
        return NGX_ERROR;
    }

    ngx_shmtx_lock(&zone->shpool->mutex);

    rv = ngx_http_linguamate_session_upsert(zone, &rec->key,
                                            (time_t) rec->n[0], log);
    if (rv == NULL) {
        ngx_shmtx_unlock(&zone->shpool->mutex);
        return NGX_DECLINED;
    }

    rv->before = ngx_max(rv->before, rec->n[1]);

    if (rec->n[2]) {
        rv->revoked = 1;
    }

    if (rec->aux.len) {
        rv->jti_len = (u_char) rec->aux.len;
        ngx_memcpy(rv->jti, rec->aux.data, rec->aux.len);
    }

    (void) ngx_atomic_fetch_add(&zone->sh->generation, 1);

    ngx_shmtx_unlock(&zone->shpool->mutex);

    return NGX_OK;
}


/* the entries in force, as records */

static ngx_int_t
ngx_http_linguamate_session_snapshot(ngx_http_linguamate_state_t *st,
    ngx_http_linguamate_state_emit_pt emit, void *sink, ngx_log_t *log)
{
    time_t                             now;
    ngx_int_t                          rc;
    ngx_str_t                          key;
    ngx_queue_t                       *q;
    ngx_http_linguamate_zone_t        *zone;
    ngx_http_linguamate_node_t        *node;
    ngx_http_linguamate_state_rec_t    rec;
    ngx_http_linguamate_revocation_t  *rv;

    zone = st->zone;
    now = ngx_time();
    rc = NGX_OK;

    ngx_shmtx_lock(&zone->shpool->mutex);

    for (q = ngx_queue_head(&zone->sh->queue);
         q != ngx_queue_sentinel(&zone->sh->queue) && rc == NGX_OK;
         q = ngx_queue_next(q))
    {
        node = ngx_queue_data(q, ngx_http_linguamate_node_t, queue);
        rv = ngx_http_linguamate_node_value(node);

        if (rv->until <= now) {
            continue;
        }

        key.data = ngx_http_linguamate_node_key(node);
        key.len = node->len;

        ngx_http_linguamate_session_record(&key, rv, &rec);
        rc = emit(sink, &rec);
    }

    ngx_shmtx_unlock(&zone->shpool->mutex);

    return rc;
}


static void
ngx_http_linguamate_session_record(ngx_str_t *key,
    ngx_http_linguamate_revocation_t *rv, ngx_http_linguamate_state_rec_t *rec)
{
    rec->type = NGX_HTTP_LINGUAMATE_STATE_SESSION;
    rec->key = *key;
    rec->n[0] = rv->until;
    rec->n[1] = rv->before;
    rec->n[2] = rv->revoked ? 1 : 0;
    rec->aux.data = rv->jti;
    rec->aux.len = rv->jti_len;
}


/*
 * One change, through the state layer (outside the zone's mutex).  One
 * that cannot be written is logged there; serving goes on and the change
 * still holds until the next restart.
 */

static void
ngx_http_linguamate_session_write(ngx_http_linguamate_zone_t *zone,
    ngx_str_t *key, ngx_http_linguamate_revocation_t *rv, ngx_log_t *log)
{
    ngx_http_linguamate_state_rec_t      rec;
    ngx_http_linguamate_session_zone_t  *sz;

    sz = zone->data;

    ngx_http_linguamate_session_record(key, rv, &rec);

    (void) ngx_http_linguamate_state_write(sz->state, &rec, 1, log);
}


/* nothing of this file is per process: the state layer opens per write */

void
ngx_http_linguamate_session_init_process(void)
{
}



/* the entry of key, created if missing; the zone's mutex is held */

static ngx_http_linguamate_revocation_t *
ngx_http_linguamate_session_upsert(ngx_http_linguamate_zone_t *zone,
    ngx_str_t *key, time_t until, ngx_log_t *log)
{
    uint32_t                           hash;
    ngx_msec_int_t                     ttl;
    ngx_http_linguamate_node_t        *node;
    ngx_http_linguamate_revocation_t  *rv;

    hash = ngx_crc32_short(key->data, key->len);

    node = ngx_http_linguamate_node_lookup(zone, hash, key->data, key->len);

    if (node == NULL) {
        node = ngx_http_linguamate_node_alloc(zone, hash, key->data,
                   key->len, sizeof(ngx_http_linguamate_revocation_t), log);
        if (node == NULL) {
            return NULL;
        }
    }

    rv = ngx_http_linguamate_node_value(node);
    rv->until = ngx_max(rv->until, until);

    ttl = (ngx_msec_int_t) (rv->until - ngx_time()) * 1000;
    node->expire = ngx_current_msec + (ttl > 0 ? (ngx_msec_t) ttl : 0);

    return rv;
}


static ngx_int_t
ngx_http_linguamate_session_key(ngx_pool_t *pool, const char *prefix,
    ngx_str_t *id, ngx_str_t *key)
{
    size_t  plen;

    plen = ngx_strlen(prefix);

    key->data = ngx_pnalloc(pool, plen + id->len);
    if (key->data == NULL) {
        return NGX_ERROR;
    }

    key->len = ngx_cpymem(ngx_cpymem(key->data, prefix, plen), id->data,
                          id->len) - key->data;

    return NGX_OK;
}


/*
 * Is a token revoked?  issued: the earliest moment (epoch ms) it may have
 * been issued at.  The keys are made on the stack: this runs for every
 * verified token.
 */

ngx_int_t
ngx_http_linguamate_session_revoked(ngx_http_linguamate_zone_t *zone,
    ngx_str_t *sub, ngx_str_t *sid, int64_t issued)
{
    u_char                             buf[2][4 + 512];
    ngx_str_t                          keys[3];
    ngx_uint_t                         i, n;
    ngx_int_t                          revoked;
    ngx_http_linguamate_node_t        *node;
    ngx_http_linguamate_revocation_t  *rv;

    n = 0;
    ngx_str_set(&keys[n], "all");
    n++;

    if (sub->len && sub->len <= 512) {
        keys[n].data = buf[0];
        keys[n].len = ngx_cpymem(ngx_cpymem(buf[0], "sub:", 4), sub->data,
                                 sub->len) - buf[0];
        n++;
    }

    if (sid->len && sid->len <= 512) {
        keys[n].data = buf[1];
        keys[n].len = ngx_cpymem(ngx_cpymem(buf[1], "sid:", 4), sid->data,
                                 sid->len) - buf[1];
        n++;
    }

    revoked = 0;

    ngx_shmtx_lock(&zone->shpool->mutex);

    for (i = 0; i < n && !revoked; i++) {
        node = ngx_http_linguamate_node_lookup(zone,
                   ngx_crc32_short(keys[i].data, keys[i].len),
                   keys[i].data, keys[i].len);
        if (node == NULL) {
            continue;
        }

        rv = ngx_http_linguamate_node_value(node);

        if (rv->revoked || (rv->before && issued <= rv->before)) {
            revoked = 1;
        }
    }

    ngx_shmtx_unlock(&zone->shpool->mutex);

    return revoked;
}


/* the wall clock in milliseconds, read now (not nginx's cached time) */

int64_t
ngx_http_linguamate_now_ms(void)
{
    struct timespec  ts;

    (void) clock_gettime(CLOCK_REALTIME, &ts);

    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}


/*
 * Revoke: everything (REVOKE_ALL, id unused), a user (REVOKE_USER, id
 * the sub) or a session (REVOKE_SESSION, id the sid).  ALL and USER
 * revoke every token issued up to this millisecond (*before_ms, when
 * asked); SESSION the session whatever the issue time.
 * The entry lasts the refresh lifetime.
 */

ngx_int_t
ngx_http_linguamate_session_revoke(ngx_http_linguamate_zone_t *zone,
    ngx_pool_t *pool, ngx_http_linguamate_revoke_e kind, ngx_str_t *id,
    int64_t *before_ms, ngx_log_t *log)
{
    int64_t                            ms;
    time_t                             now, until;
    ngx_uint_t                         n;
    ngx_str_t                          key;
    ngx_http_linguamate_revocation_t  *rv, copy;
    ngx_http_linguamate_session_zone_t *sz;

    sz = zone->data;
    now = ngx_time();
    until = now + sz->lmcf->jwt_refresh_expires_in.seconds
            + (time_t) sz->lmcf->jwt_leeway + 1;

    ms = 0;

    if (kind == NGX_HTTP_LINGUAMATE_REVOKE_ALL) {
        ngx_str_set(&key, "all");

    } else if (ngx_http_linguamate_session_key(pool,
                   kind == NGX_HTTP_LINGUAMATE_REVOKE_USER ? "sub:" : "sid:",
                   id, &key)
               != NGX_OK)
    {
        return NGX_ERROR;
    }

    ngx_shmtx_lock(&zone->shpool->mutex);

    rv = ngx_http_linguamate_session_upsert(zone, &key, until, log);

    if (rv == NULL) {
        ngx_shmtx_unlock(&zone->shpool->mutex);
        return NGX_ERROR;
    }

    if (kind == NGX_HTTP_LINGUAMATE_REVOKE_SESSION) {
        rv->revoked = 1;

    } else {
        ms = ngx_http_linguamate_now_ms();
        rv->before = ngx_max(rv->before, ms);

        if (before_ms) {
            *before_ms = ms;
        }
    }

    copy = *rv;

    (void) ngx_atomic_fetch_add(&zone->sh->generation, 1);

    ngx_shmtx_unlock(&zone->shpool->mutex);

    ngx_http_linguamate_session_write(zone, &key, &copy, log);

    /*
     * A token issued once this call has returned must be accepted: it is
     * not to share the revocation's millisecond (at most 1 ms, and only
     * on the operations API)
     */

    for (n = 0; ms && n < 5 && ngx_http_linguamate_now_ms() <= ms; n++) {
        ngx_msleep(1);
    }

    return NGX_OK;
}


/*
 * Refresh-token rotation for session sid: "old" is the jti of the token
 * presented, "next" the jti of the one about to be issued.  NGX_OK: the
 * rotation is recorded.  NGX_DECLINED: the token was already used (or the
 * session revoked), the session is now revoked: reuse detection, as the
 * OAuth 2.0 Security BCP asks.
 */

ngx_int_t
ngx_http_linguamate_session_rotate(ngx_http_linguamate_zone_t *zone,
    ngx_pool_t *pool, ngx_str_t *sid, ngx_str_t *old, ngx_str_t *next,
    ngx_log_t *log)
{
    time_t                               until;
    ngx_int_t                            rc;
    ngx_str_t                            key;
    ngx_http_linguamate_revocation_t    *rv, copy;
    ngx_http_linguamate_session_zone_t  *sz;

    if (next->len > NGX_HTTP_LINGUAMATE_JTI_MAX) {
        return NGX_ERROR;
    }

    sz = zone->data;
    until = ngx_time() + sz->lmcf->jwt_refresh_expires_in.seconds
            + (time_t) sz->lmcf->jwt_leeway + 1;

    if (ngx_http_linguamate_session_key(pool, "sid:", sid, &key) != NGX_OK) {
        return NGX_ERROR;
    }

    ngx_shmtx_lock(&zone->shpool->mutex);

    rv = ngx_http_linguamate_session_upsert(zone, &key, until, log);

    if (rv == NULL) {
        ngx_shmtx_unlock(&zone->shpool->mutex);
        return NGX_ERROR;
    }

    if (rv->revoked
        || (rv->jti_len
            && (rv->jti_len != old->len
                || ngx_memcmp(rv->jti, old->data, old->len) != 0)))
    {
        /* a refresh token that was already exchanged: revoke the session */

        rc = rv->revoked ? NGX_DECLINED : NGX_BUSY;
        rv->revoked = 1;

    } else {
        rc = NGX_OK;
        rv->jti_len = (u_char) next->len;
        ngx_memcpy(rv->jti, next->data, next->len);
    }

    copy = *rv;

    if (rc != NGX_OK) {
        (void) ngx_atomic_fetch_add(&zone->sh->generation, 1);
    }

    ngx_shmtx_unlock(&zone->shpool->mutex);

    ngx_http_linguamate_session_write(zone, &key, &copy, log);

    return rc;
}


ngx_uint_t
ngx_http_linguamate_session_generation(ngx_http_linguamate_zone_t *zone)
{
    return zone->sh->generation;
}
