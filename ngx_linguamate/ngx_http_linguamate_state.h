/*
 * Copyright (C) ngx_linguamate developers
 *
 * The state layer: what must survive a restart (revocations, lockouts,
 * live flags) as typed records, one line format for all of them, one
 * writer and one loader.  A feature keeps its state in a shared zone and
 * describes it to this layer with two callbacks: apply (one record into
 * the zone) and snapshot (the zone's live state as records).  Where the
 * records go is a backend: the local file under STATE_DIR today; a
 * replication backend (issue 17) is another entry of the same ops table
 * beside it, and what it receives from other replicas goes through
 * ngx_http_linguamate_state_apply() as the loader's records do.
 */

#ifndef _NGX_HTTP_LINGUAMATE_STATE_H_INCLUDED_
#define _NGX_HTTP_LINGUAMATE_STATE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_http_linguamate_shm.h"


/* record types */
#define NGX_HTTP_LINGUAMATE_STATE_SESSION   1   /* a session zone entry */
#define NGX_HTTP_LINGUAMATE_STATE_LOCK      2
#define NGX_HTTP_LINGUAMATE_STATE_UNLOCK    3
#define NGX_HTTP_LINGUAMATE_STATE_FLAG      4   /* a live flag change */
#define NGX_HTTP_LINGUAMATE_STATE_UNFLAG    5   /* a live change cleared */
#define NGX_HTTP_LINGUAMATE_STATE_NTYPES    6

/* a key ("sid:" and 512 bytes), an aux (a jti), a line of either */
#define NGX_HTTP_LINGUAMATE_STATE_KEY_MAX   516
#define NGX_HTTP_LINGUAMATE_STATE_AUX_MAX   48
#define NGX_HTTP_LINGUAMATE_STATE_LINE_MAX  2048
/* what a parse needs beside the line: the key and the aux unescaped */
#define NGX_HTTP_LINGUAMATE_STATE_SCRATCH                                    \
    (NGX_HTTP_LINGUAMATE_STATE_KEY_MAX + NGX_HTTP_LINGUAMATE_STATE_AUX_MAX)

/* a file stops growing here; it is compacted first, at most once a minute */
#define NGX_HTTP_LINGUAMATE_STATE_CAP       (48 * 1024 * 1024)
/* a file larger than this is not read */
#define NGX_HTTP_LINGUAMATE_STATE_READ_MAX  (64 * 1024 * 1024)

#define NGX_HTTP_LINGUAMATE_STATE_BACKENDS  2


/*
 * One record.  The meaning of n[] by type:
 *   session  key "all", "sub:USER" or "sid:SESSION"; n[0] until (epoch s,
 *            forget after it), n[1] before (epoch ms: issued at or before
 *            it is revoked; 0 none), n[2] revoked (0 or 1: sid), aux the
 *            jti of the session's current refresh token ("" none)
 *   lock     key; n[0] until (epoch ms), n[1] locked at (epoch s)
 *   unlock   key
 *   flag     key the flag's API name; n[0] value, n[1] the configured
 *            value it overrode, n[2] since (epoch s)
 *   unflag   key the flag's API name
 * Unused numbers are 0.  Applying a record twice changes nothing.
 */
typedef struct {
    ngx_uint_t                   type;
    ngx_str_t                    key;
    int64_t                      n[3];
    ngx_str_t                    aux;
} ngx_http_linguamate_state_rec_t;


typedef u_char  ngx_http_linguamate_state_scratch_t[
                    NGX_HTTP_LINGUAMATE_STATE_SCRATCH];

typedef struct ngx_http_linguamate_state_s  ngx_http_linguamate_state_t;

/* a record into the zone: NGX_OK, NGX_DECLINED (expired, no longer in
   force, refused), NGX_ERROR (a value this kind cannot hold: a bad line) */
typedef ngx_int_t (*ngx_http_linguamate_state_apply_pt)(
    ngx_http_linguamate_state_t *st, ngx_http_linguamate_state_rec_t *rec,
    ngx_log_t *log);

typedef ngx_int_t (*ngx_http_linguamate_state_emit_pt)(void *sink,
    ngx_http_linguamate_state_rec_t *rec);

/* the live state, a record at a time, through emit */
typedef ngx_int_t (*ngx_http_linguamate_state_snapshot_pt)(
    ngx_http_linguamate_state_t *st, ngx_http_linguamate_state_emit_pt emit,
    void *sink, ngx_log_t *log);


/* where records go and come from */
typedef struct {
    ngx_str_t                    name;
    /* the records of one change, as it happens */
    ngx_int_t                  (*append)(ngx_http_linguamate_state_t *st,
                                    ngx_http_linguamate_state_rec_t *rec,
                                    ngx_uint_t n, ngx_log_t *log);
    /* every record kept, each through ngx_http_linguamate_state_apply() */
    ngx_int_t                  (*load)(ngx_http_linguamate_state_t *st,
                                    ngx_log_t *log);
    /* replace what is kept by the live state (st->snapshot) */
    ngx_int_t                  (*compact)(ngx_http_linguamate_state_t *st,
                                    ngx_log_t *log);
} ngx_http_linguamate_state_backend_t;


struct ngx_http_linguamate_state_s {
    ngx_uint_t                   kind;      /* NGX_HTTP_LINGUAMATE_ZONE_* */
    ngx_http_linguamate_zone_t  *zone;
    void                        *data;      /* the feature's own conf */
    ngx_cycle_t                 *cycle;

    ngx_str_t                   *dir;       /* STATE_DIR, set later */
    ngx_str_t                    file;      /* its name in STATE_DIR */
    ngx_str_t                    path;

    ngx_http_linguamate_state_apply_pt     apply;
    ngx_http_linguamate_state_snapshot_pt  snapshot;

    /* flags: every change rewrites the whole (small) state */
    unsigned                     snapshot_only:1;

    ngx_http_linguamate_state_backend_t
                                *backends[NGX_HTTP_LINGUAMATE_STATE_BACKENDS];
    ngx_uint_t                   nbackends;

    /* this process's error lines: one a minute per file */
    ngx_msec_t                   logged;
    ngx_uint_t                   unlogged;
    ngx_msec_t                   compacted;
};


/* what a load found */
typedef struct {
    ngx_uint_t                   lines;
    ngx_uint_t                   applied;
    ngx_uint_t                   declined;
    ngx_uint_t                   shadows;   /* compatibility lines */
    ngx_uint_t                   bad;
    ngx_uint_t                   first_bad; /* its line number */
} ngx_http_linguamate_state_stats_t;


extern ngx_http_linguamate_state_backend_t  ngx_http_linguamate_state_file;


ngx_http_linguamate_state_t *ngx_http_linguamate_state_create(ngx_conf_t *cf,
    ngx_http_linguamate_zone_t *zone, ngx_str_t *dir, const char *file,
    ngx_http_linguamate_state_apply_pt apply,
    ngx_http_linguamate_state_snapshot_pt snapshot, void *data);
ngx_int_t ngx_http_linguamate_state_write(ngx_http_linguamate_state_t *st,
    ngx_http_linguamate_state_rec_t *rec, ngx_uint_t n, ngx_log_t *log);
ngx_int_t ngx_http_linguamate_state_load(ngx_http_linguamate_state_t *st,
    ngx_log_t *log);
ngx_int_t ngx_http_linguamate_state_compact(ngx_http_linguamate_state_t *st,
    ngx_log_t *log);
ngx_int_t ngx_http_linguamate_state_apply(ngx_http_linguamate_state_t *st,
    ngx_http_linguamate_state_rec_t *rec, ngx_log_t *log);
ngx_int_t ngx_http_linguamate_state_path(ngx_http_linguamate_state_t *st);

/* pure: the line format (no I/O, no zone; fuzzed) */
ngx_int_t ngx_http_linguamate_state_parse(ngx_uint_t kind, u_char *line,
    size_t len, ngx_http_linguamate_state_rec_t *rec, u_char *scratch);
u_char *ngx_http_linguamate_state_line(u_char *p,
    ngx_http_linguamate_state_rec_t *rec);
u_char *ngx_http_linguamate_state_legacy(u_char *p, ngx_uint_t kind,
    ngx_http_linguamate_state_rec_t *rec);
ngx_int_t ngx_http_linguamate_state_parse_buf(ngx_http_linguamate_state_t *st,
    u_char *buf, size_t len, ngx_http_linguamate_state_stats_t *stats,
    ngx_log_t *log);
ngx_uint_t ngx_http_linguamate_state_same(ngx_http_linguamate_state_rec_t *a,
    ngx_http_linguamate_state_rec_t *b);


#endif /* _NGX_HTTP_LINGUAMATE_STATE_H_INCLUDED_ */
