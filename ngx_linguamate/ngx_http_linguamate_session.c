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
 * The journal is one line per change, appended with a single write(); the
 * master replays it when the zone starts empty and rewrites it compacted
 * (a temporary file renamed over the old one) before any worker runs.
 * Entries in force are never evicted: a full zone refuses a revocation
 * (the caller answers 500 and logs it) rather than forget one.
 */


#include "ngx_http_linguamate_module.h"
#include "ngx_http_linguamate_shm.h"
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
    ngx_cycle_t                      *cycle;
    ngx_str_t                         journal;
} ngx_http_linguamate_session_zone_t;


static ngx_int_t ngx_http_linguamate_session_fresh(
    ngx_http_linguamate_zone_t *zone, ngx_log_t *log);
static ngx_int_t ngx_http_linguamate_session_kept(
    ngx_http_linguamate_zone_t *zone, ngx_log_t *log);
static ngx_uint_t ngx_http_linguamate_session_evictable(
    ngx_http_linguamate_node_t *node);
static ngx_int_t ngx_http_linguamate_journal_path(
    ngx_http_linguamate_zone_t *zone, ngx_log_t *log);
static ngx_int_t ngx_http_linguamate_journal_load(
    ngx_http_linguamate_zone_t *zone, ngx_log_t *log);
static ngx_int_t ngx_http_linguamate_journal_compact(
    ngx_http_linguamate_zone_t *zone, ngx_log_t *log);
static void ngx_http_linguamate_journal_append(
    ngx_http_linguamate_zone_t *zone, ngx_str_t *key,
    ngx_http_linguamate_revocation_t *rv, ngx_log_t *log);
static u_char *ngx_http_linguamate_journal_line(u_char *p, ngx_str_t *key,
    ngx_http_linguamate_revocation_t *rv);
static ngx_http_linguamate_revocation_t *ngx_http_linguamate_session_upsert(
    ngx_http_linguamate_zone_t *zone, ngx_str_t *key, time_t until,
    ngx_log_t *log);
static ngx_int_t ngx_http_linguamate_session_key(ngx_pool_t *pool,
    const char *prefix, ngx_str_t *id, ngx_str_t *key);


/* the journal's file descriptor in this worker, opened on first use */
static ngx_fd_t    ngx_http_linguamate_journal_fd = NGX_INVALID_FILE;
static ngx_msec_t  ngx_http_linguamate_journal_err;


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
    sz->cycle = cf->cycle;

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
    zone->init_kept = ngx_http_linguamate_session_kept;
    zone->evictable = ngx_http_linguamate_session_evictable;

    lmcf->session_zone = zone;

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_linguamate_journal_path(ngx_http_linguamate_zone_t *zone,
    ngx_log_t *log)
{
    u_char                              *p;
    ngx_http_linguamate_session_zone_t  *sz;

    sz = zone->data;

    if (sz->journal.data) {
        return NGX_OK;
    }

    sz->journal.len = sz->lmcf->state_dir.len + zone->name.len
                      + sizeof("/sessions-.journal") - 1;
    sz->journal.data = ngx_pnalloc(sz->cycle->pool, sz->journal.len + 1);
    if (sz->journal.data == NULL) {
        return NGX_ERROR;
    }

    p = ngx_sprintf(sz->journal.data, "%V/sessions-%V.journal%Z",
                    &sz->lmcf->state_dir, &zone->name);
    (void) p;

    return NGX_OK;
}


/* at start: replay the journal, then compact it */

static ngx_int_t
ngx_http_linguamate_session_fresh(ngx_http_linguamate_zone_t *zone,
    ngx_log_t *log)
{
    if (ngx_http_linguamate_journal_path(zone, log) != NGX_OK) {
        return NGX_ERROR;
    }

    (void) ngx_http_linguamate_journal_load(zone, log);
    (void) ngx_http_linguamate_journal_compact(zone, log);

    /* a state directory that cannot be written is logged, not fatal */

    return NGX_OK;
}


/*
 * At a reload the journal is left as it is: workers are appending to it,
 * and a compaction renamed over it would lose what they append meanwhile.
 * It is compacted at the next start.
 */

static ngx_int_t
ngx_http_linguamate_session_kept(ngx_http_linguamate_zone_t *zone,
    ngx_log_t *log)
{
    return ngx_http_linguamate_journal_path(zone, log);
}


/* a revocation in force is never evicted: the zone refuses new ones */

static ngx_uint_t
ngx_http_linguamate_session_evictable(ngx_http_linguamate_node_t *node)
{
    return 0;
}


/*
 * A line: "UNTIL BEFORE REVOKED JTI KEY BEFORE_MS\n", numbers in decimal,
 * JTI "-" when none; JTI and KEY are %-escaped so that a line is always
 * six fields.  BEFORE_MS is the moment of a revocation in milliseconds;
 * BEFORE, the second after it, is what a version without BEFORE_MS reads
 * (it refuses tokens issued before it: the whole second, fail closed).
 * A line of such a version has five fields: its revocation is taken to
 * the end of its second.  Unknown or broken lines are skipped.
 */

static ngx_int_t
ngx_http_linguamate_journal_load(ngx_http_linguamate_zone_t *zone,
    ngx_log_t *log)
{
    u_char                              *buf, *p, *end, *eol, *f[5], *dst;
    u_char                              *src;
    size_t                               len[5];
    ssize_t                              n;
    ngx_fd_t                             fd;
    ngx_uint_t                           i, lines;
    ngx_str_t                            key;
    off_t                                ms;
    time_t                               until, before, now;
    ngx_file_info_t                      fi;
    ngx_http_linguamate_revocation_t    *rv;
    ngx_http_linguamate_session_zone_t  *sz;

    sz = zone->data;

    fd = ngx_open_file(sz->journal.data, NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);
    if (fd == NGX_INVALID_FILE) {
        if (ngx_errno != NGX_ENOENT) {
            ngx_log_error(NGX_LOG_ERR, log, ngx_errno,
                          "linguamate: cannot read session journal \"%V\"; "
                          "starting without its revocations", &sz->journal);
        }
        return NGX_DECLINED;
    }

    if (ngx_fd_info(fd, &fi) == NGX_FILE_ERROR
        || ngx_file_size(&fi) > 256 * 1024 * 1024)
    {
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "linguamate: session journal \"%V\" is unreadable or "
                      "larger than 256 MB; ignored", &sz->journal);
        (void) ngx_close_file(fd);
        return NGX_DECLINED;
    }

    buf = ngx_alloc((size_t) ngx_file_size(&fi) + 1, log);
    if (buf == NULL) {
        (void) ngx_close_file(fd);
        return NGX_ERROR;
    }

    n = ngx_read_fd(fd, buf, (size_t) ngx_file_size(&fi));
    (void) ngx_close_file(fd);

    if (n < 0) {
        ngx_free(buf);
        return NGX_ERROR;
    }

    now = ngx_time();
    lines = 0;
    p = buf;
    end = buf + n;

    ngx_shmtx_lock(&zone->shpool->mutex);

    for ( /* void */ ; p < end; p = eol + 1) {

        eol = ngx_strlchr(p, end, '\n');
        if (eol == NULL) {
            break;      /* a torn last line */
        }

        for (i = 0; i < 5; i++) {
            f[i] = p;

            while (p < eol && *p != ' ') {
                p++;
            }

            len[i] = p - f[i];

            if (len[i] == 0 || (i < 4 && p == eol)) {
                break;
            }

            p++;
        }

        if (i < 5 || len[4] == 0) {
            continue;
        }

        until = ngx_atotm(f[0], len[0]);
        before = ngx_atotm(f[1], len[1]);

        if (until == NGX_ERROR || before == NGX_ERROR || until <= now) {
            continue;
        }

        if (p < eol) {
            ms = ngx_atoof(p, eol - p);

            if (ms == NGX_ERROR) {
                continue;
            }

        } else {
            ms = before ? (off_t) before * 1000 + 999 : 0;
        }

        /* unescape the key in place (never longer) */

        dst = f[4];
        src = f[4];
        ngx_unescape_uri(&dst, &src, len[4], 0);
        key.data = f[4];
        key.len = dst - f[4];

        rv = ngx_http_linguamate_session_upsert(zone, &key, until, log);
        if (rv == NULL) {
            continue;
        }

        rv->before = ngx_max(rv->before, (int64_t) ms);

        if (f[2][0] == '1') {
            rv->revoked = 1;
        }

        if (!(len[3] == 1 && f[3][0] == '-')) {
            dst = rv->jti;
            src = f[3];

            if (len[3] <= 3 * NGX_HTTP_LINGUAMATE_JTI_MAX) {
                u_char  tmp[3 * NGX_HTTP_LINGUAMATE_JTI_MAX];

                dst = tmp;
                ngx_unescape_uri(&dst, &src, len[3], 0);

                if ((size_t) (dst - tmp) <= NGX_HTTP_LINGUAMATE_JTI_MAX) {
                    rv->jti_len = (u_char) (dst - tmp);
                    ngx_memcpy(rv->jti, tmp, rv->jti_len);
                }
            }
        }

        lines++;
    }

    ngx_shmtx_unlock(&zone->shpool->mutex);

    ngx_free(buf);

    ngx_log_error(NGX_LOG_NOTICE, log, 0,
                  "linguamate: loaded %ui session entries from \"%V\"",
                  lines, &sz->journal);

    return NGX_OK;
}


/* rewrite the journal with the live entries: temporary file, rename */

static ngx_int_t
ngx_http_linguamate_journal_compact(ngx_http_linguamate_zone_t *zone,
    ngx_log_t *log)
{
    u_char                              *buf, *p, tmp[NGX_MAX_PATH];
    size_t                               size;
    ngx_fd_t                             fd;
    ngx_str_t                            key;
    time_t                               now;
    ngx_queue_t                         *q;
    ngx_core_conf_t                     *ccf;
    ngx_http_linguamate_node_t          *node;
    ngx_http_linguamate_session_zone_t  *sz;

    sz = zone->data;

    if (sz->journal.len + 5 >= NGX_MAX_PATH) {
        return NGX_ERROR;
    }

    now = ngx_time();

    ngx_shmtx_lock(&zone->shpool->mutex);

    size = 0;

    for (q = ngx_queue_head(&zone->sh->queue);
         q != ngx_queue_sentinel(&zone->sh->queue);
         q = ngx_queue_next(q))
    {
        node = ngx_queue_data(q, ngx_http_linguamate_node_t, queue);
        size += 3 * node->len + 3 * NGX_HTTP_LINGUAMATE_JTI_MAX
                + 3 * NGX_TIME_T_LEN + NGX_INT64_LEN + 9;
    }

    buf = ngx_alloc(size + 1, log);
    if (buf == NULL) {
        ngx_shmtx_unlock(&zone->shpool->mutex);
        return NGX_ERROR;
    }

    p = buf;

    for (q = ngx_queue_head(&zone->sh->queue);
         q != ngx_queue_sentinel(&zone->sh->queue);
         q = ngx_queue_next(q))
    {
        node = ngx_queue_data(q, ngx_http_linguamate_node_t, queue);

        if (((ngx_http_linguamate_revocation_t *)
                 ngx_http_linguamate_node_value(node))->until <= now)
        {
            continue;
        }

        key.data = ngx_http_linguamate_node_key(node);
        key.len = node->len;

        p = ngx_http_linguamate_journal_line(p, &key,
                                        ngx_http_linguamate_node_value(node));
    }

    ngx_shmtx_unlock(&zone->shpool->mutex);

    ngx_memcpy(tmp, sz->journal.data, sz->journal.len);
    ngx_memcpy(tmp + sz->journal.len, ".tmp", sizeof(".tmp"));

    fd = ngx_open_file(tmp, NGX_FILE_WRONLY, NGX_FILE_TRUNCATE, 0600);
    if (fd == NGX_INVALID_FILE) {
        ngx_log_error(NGX_LOG_ERR, log, ngx_errno,
                      "linguamate: cannot write \"%s\": session revocations "
                      "will not survive a restart", tmp);
        ngx_free(buf);
        return NGX_ERROR;
    }

    if (ngx_write_fd(fd, buf, p - buf) != p - buf || fsync(fd) == -1) {
        ngx_log_error(NGX_LOG_ERR, log, ngx_errno,
                      "linguamate: cannot write \"%s\"", tmp);
        (void) ngx_close_file(fd);
        (void) ngx_delete_file(tmp);
        ngx_free(buf);
        return NGX_ERROR;
    }

    /* the workers append to it */

    ccf = (ngx_core_conf_t *) ngx_get_conf(sz->cycle->conf_ctx,
                                           ngx_core_module);

    if (geteuid() == 0 && ccf && ccf->user != (ngx_uid_t) NGX_CONF_UNSET_UINT
        && fchown(fd, ccf->user, ccf->group) == -1)
    {
        ngx_log_error(NGX_LOG_WARN, log, ngx_errno,
                      "linguamate: cannot chown \"%s\"", tmp);
    }

    (void) ngx_close_file(fd);
    ngx_free(buf);

    if (ngx_rename_file(tmp, sz->journal.data) == NGX_FILE_ERROR) {
        ngx_log_error(NGX_LOG_ERR, log, ngx_errno,
                      "linguamate: cannot rename \"%s\" to \"%V\"", tmp,
                      &sz->journal);
        (void) ngx_delete_file(tmp);
        return NGX_ERROR;
    }

    return NGX_OK;
}


static u_char *
ngx_http_linguamate_journal_line(u_char *p, ngx_str_t *key,
    ngx_http_linguamate_revocation_t *rv)
{
    p = ngx_sprintf(p, "%T %T %d ", rv->until,
                    (time_t) (rv->before ? rv->before / 1000 + 1 : 0),
                    rv->revoked ? 1 : 0);

    if (rv->jti_len) {
        p = (u_char *) ngx_escape_uri(p, rv->jti, rv->jti_len,
                                      NGX_ESCAPE_ARGS);
    } else {
        *p++ = '-';
    }

    *p++ = ' ';
    p = (u_char *) ngx_escape_uri(p, key->data, key->len, NGX_ESCAPE_ARGS);
    p = ngx_sprintf(p, " %L\n", rv->before);

    return p;
}


/*
 * Append one change, in one write().  A journal that cannot be written
 * is logged (at most once a minute per worker); serving goes on and the
 * change still holds until the next restart.
 */

static void
ngx_http_linguamate_journal_append(ngx_http_linguamate_zone_t *zone,
    ngx_str_t *key, ngx_http_linguamate_revocation_t *rv, ngx_log_t *log)
{
    u_char                              *p, buf[2048];
    ngx_http_linguamate_session_zone_t  *sz;

    sz = zone->data;

    if (key->len > 400
        || ngx_http_linguamate_journal_path(zone, log) != NGX_OK)
    {
        return;
    }

    if (ngx_http_linguamate_journal_fd == NGX_INVALID_FILE) {
        ngx_http_linguamate_journal_fd = ngx_open_file(sz->journal.data,
                                               NGX_FILE_APPEND,
                                               NGX_FILE_CREATE_OR_OPEN, 0600);
    }

    if (ngx_http_linguamate_journal_fd == NGX_INVALID_FILE) {
        goto failed;
    }

    p = ngx_http_linguamate_journal_line(buf, key, rv);

    if (ngx_write_fd(ngx_http_linguamate_journal_fd, buf, p - buf)
        == p - buf)
    {
        return;
    }

    (void) ngx_close_file(ngx_http_linguamate_journal_fd);
    ngx_http_linguamate_journal_fd = NGX_INVALID_FILE;

failed:

    if (ngx_current_msec - ngx_http_linguamate_journal_err > 60000
        || ngx_http_linguamate_journal_err == 0)
    {
        ngx_http_linguamate_journal_err = ngx_current_msec;
        ngx_log_error(NGX_LOG_ERR, log, ngx_errno,
                      "linguamate: cannot append to \"%V\"; the change "
                      "holds until the next restart", &sz->journal);
    }
}


/* a worker starts with its own descriptor (the master's file may be new) */

void
ngx_http_linguamate_session_init_process(void)
{
    ngx_http_linguamate_journal_fd = NGX_INVALID_FILE;
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
 * Revoke: kind "all" (id unused), "sub" (a user) or "sid" (a session).
 * "all" and "sub" revoke every token issued up to this millisecond
 * (*before_ms, when asked); "sid" the session whatever the issue time.
 * The entry lasts the refresh lifetime.
 */

ngx_int_t
ngx_http_linguamate_session_revoke(ngx_http_linguamate_zone_t *zone,
    ngx_pool_t *pool, const char *kind, ngx_str_t *id, int64_t *before_ms,
    ngx_log_t *log)
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

    if (kind[0] == 'a') {
        ngx_str_set(&key, "all");

    } else if (ngx_http_linguamate_session_key(pool, kind[1] == 'u'
                                               ? "sub:" : "sid:", id, &key)
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

    if (kind[1] == 'i') {
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

    ngx_http_linguamate_journal_append(zone, &key, &copy, log);

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

    ngx_http_linguamate_journal_append(zone, &key, &copy, log);

    return rc;
}


ngx_uint_t
ngx_http_linguamate_session_generation(ngx_http_linguamate_zone_t *zone)
{
    return zone->sh->generation;
}
