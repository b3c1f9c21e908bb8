/*
 * Copyright (C) ngx_linguamate developers
 *
 * The state layer: one line format, one writer, one loader for what must
 * survive a restart.  See ngx_http_linguamate_state.h and
 * docs/reliability.md ("State files").
 *
 * A line (version 2):
 *
 *     v2 TYPE KEY N0 N1 N2 AUX CRC
 *
 * eight fields separated by single spaces; TYPE one of session, lock,
 * unlock, flag, unflag; KEY and AUX %-escaped (every byte outside
 * printable ASCII, the space and "%" itself), AUX "-" when empty; N0..N2
 * decimal, 0 to 2^63-1; CRC the CRC-32 of the line before " CRC", in
 * eight lower-case hex digits.  A line that does not hold all of that is
 * skipped and counted, never applied.
 *
 * Every v2 line is followed, in the same write(), by the same record in
 * the line format of the build before this layer (its "shadow"), so that
 * a rollback to that build still reads every revocation, lock and live
 * flag; the loader here skips a shadow that repeats the v2 line before
 * it, and reads any other line of those formats (a file written by the
 * previous build) as the record it means.
 *
 * Appends are a single write() in append mode, not synced: they survive
 * a crash or a restart of nginx, and an OS crash may lose the last
 * seconds of them.  A compaction (the live state into a temporary file,
 * fsync, rename over the file, fsync of the directory) is atomic: a
 * reader sees the old file or the new one.  Writers of one file exclude
 * a compaction by flock(): appends share the lock, a compaction holds it
 * alone, and either one that finds the file renamed under it once locked
 * reopens it.  The snapshot is taken into memory under the zone's mutex
 * and written after it.
 */


#include <sys/file.h>

#include "ngx_http_linguamate_module.h"
#include "ngx_http_linguamate_state.h"


#define NGX_HTTP_LINGUAMATE_STATE_LOG_EVERY  60000
#define NGX_HTTP_LINGUAMATE_STATE_N_MAX      0x7fffffffffffffffLL
/* a lock taken on a file a compaction renamed over meanwhile: tries */
#define NGX_HTTP_LINGUAMATE_STATE_TRIES      8
/* a compaction's memory: its first chunk, its largest */
#define NGX_HTTP_LINGUAMATE_STATE_CHUNK      (64 * 1024)
#define NGX_HTTP_LINGUAMATE_STATE_CHUNK_MAX  (4 * 1024 * 1024)


typedef struct {
    ngx_str_t                    name;
    ngx_uint_t                   kind;      /* the zone kind it belongs to */
} ngx_http_linguamate_state_type_t;


/* a compaction's lines, in this process's memory, in growing chunks */
typedef struct ngx_http_linguamate_state_chunk_s
    ngx_http_linguamate_state_chunk_t;

struct ngx_http_linguamate_state_chunk_s {
    ngx_http_linguamate_state_chunk_t  *next;
    u_char                             *last;
    u_char                             *end;
    size_t                              size;
};


typedef struct {
    ngx_http_linguamate_state_t        *st;
    ngx_http_linguamate_state_chunk_t  *first;
    ngx_http_linguamate_state_chunk_t  *chunk;
    ngx_log_t                          *log;
    ngx_uint_t                          records;
    ngx_uint_t                          failed;
} ngx_http_linguamate_state_sink_t;


static ngx_int_t ngx_http_linguamate_state_file_append(
    ngx_http_linguamate_state_t *st, ngx_http_linguamate_state_rec_t *rec,
    ngx_uint_t n, ngx_log_t *log);
static ngx_int_t ngx_http_linguamate_state_file_append1(
    ngx_http_linguamate_state_t *st, ngx_http_linguamate_state_rec_t *rec,
    ngx_log_t *log);
static ngx_int_t ngx_http_linguamate_state_file_load(
    ngx_http_linguamate_state_t *st, ngx_log_t *log);
static ngx_int_t ngx_http_linguamate_state_file_compact(
    ngx_http_linguamate_state_t *st, ngx_log_t *log);
static ngx_core_conf_t *ngx_http_linguamate_state_owner(
    ngx_http_linguamate_state_t *st);
static ngx_fd_t ngx_http_linguamate_state_lock(
    ngx_http_linguamate_state_t *st, ngx_core_conf_t *ccf,
    ngx_uint_t create);
static ngx_int_t ngx_http_linguamate_state_compact_locked(
    ngx_http_linguamate_state_t *st, ngx_fd_t lock, ngx_core_conf_t *ccf,
    ngx_log_t *log);
static ngx_fd_t ngx_http_linguamate_state_open_locked(
    ngx_http_linguamate_state_t *st);
static ngx_fd_t ngx_http_linguamate_state_flock(
    ngx_http_linguamate_state_t *st, ngx_uint_t mode, ngx_uint_t create,
    int op, ngx_core_conf_t *ccf);
static ngx_uint_t ngx_http_linguamate_state_at_path(
    ngx_http_linguamate_state_t *st, ngx_fd_t fd);
static ngx_int_t ngx_http_linguamate_state_write_sink(
    ngx_http_linguamate_state_sink_t *sink, ngx_fd_t fd);
static void ngx_http_linguamate_state_free_sink(
    ngx_http_linguamate_state_sink_t *sink);
static ngx_int_t ngx_http_linguamate_state_emit(void *data,
    ngx_http_linguamate_state_rec_t *rec);
static void ngx_http_linguamate_state_error(ngx_http_linguamate_state_t *st,
    ngx_log_t *log, ngx_err_t err, const char *fmt, ...);
static ngx_int_t ngx_http_linguamate_state_split(u_char *line, size_t len,
    ngx_str_t *f, ngx_uint_t n, ngx_uint_t rest);
static ngx_int_t ngx_http_linguamate_state_number(ngx_str_t *s,
    int64_t *n);
static ngx_int_t ngx_http_linguamate_state_unescape(ngx_str_t *s,
    u_char *dst, size_t max, ngx_str_t *out);
static u_char *ngx_http_linguamate_state_escape(u_char *p, ngx_str_t *s);
static ngx_int_t ngx_http_linguamate_state_parse_v2(u_char *line,
    size_t len, ngx_http_linguamate_state_rec_t *rec, u_char *scratch);
static ngx_int_t ngx_http_linguamate_state_parse_old(ngx_uint_t kind,
    u_char *line, size_t len, ngx_http_linguamate_state_rec_t *rec,
    u_char *scratch);


/* indexed by record type */
static ngx_http_linguamate_state_type_t  ngx_http_linguamate_state_types[] = {
    { ngx_null_string, 0 },
    { ngx_string("session"), NGX_HTTP_LINGUAMATE_ZONE_SESSION },
    { ngx_string("lock"), NGX_HTTP_LINGUAMATE_ZONE_LOCKOUT },
    { ngx_string("unlock"), NGX_HTTP_LINGUAMATE_ZONE_LOCKOUT },
    { ngx_string("flag"), NGX_HTTP_LINGUAMATE_ZONE_FLAGS },
    { ngx_string("unflag"), NGX_HTTP_LINGUAMATE_ZONE_FLAGS }
};


ngx_http_linguamate_state_backend_t  ngx_http_linguamate_state_file = {
    ngx_string("file"),
    ngx_http_linguamate_state_file_append,
    ngx_http_linguamate_state_file_load,
    ngx_http_linguamate_state_file_compact
};


/*
 * A feature's state, kept in STATE_DIR/FILE, FILE a format of the zone's
 * name ("sessions-%V.journal"); STATE_DIR is read when first needed
 */

ngx_http_linguamate_state_t *
ngx_http_linguamate_state_create(ngx_conf_t *cf,
    ngx_http_linguamate_zone_t *zone, ngx_str_t *dir, const char *file,
    ngx_http_linguamate_state_apply_pt apply,
    ngx_http_linguamate_state_snapshot_pt snapshot, void *data)
{
    ngx_http_linguamate_state_t  *st;

    st = ngx_pcalloc(cf->pool, sizeof(ngx_http_linguamate_state_t));
    if (st == NULL) {
        return NULL;
    }

    st->file.data = ngx_pnalloc(cf->pool, ngx_strlen(file) + zone->name.len);
    if (st->file.data == NULL) {
        return NULL;
    }

    st->file.len = ngx_sprintf(st->file.data, file, &zone->name)
                   - st->file.data;

    st->kind = zone->kind;
    st->zone = zone;
    st->cycle = cf->cycle;
    st->dir = dir;
    st->apply = apply;
    st->snapshot = snapshot;
    st->data = data;
    st->backends[0] = &ngx_http_linguamate_state_file;
    st->nbackends = 1;

    zone->state = st;

    return st;
}


ngx_int_t
ngx_http_linguamate_state_path(ngx_http_linguamate_state_t *st)
{
    if (st->path.data) {
        return NGX_OK;
    }

    if (st->dir->len + st->file.len + sizeof("/.tmp.") + NGX_INT64_LEN
        >= NGX_MAX_PATH)
    {
        return NGX_ERROR;
    }

    st->path.len = st->dir->len + 1 + st->file.len;
    st->path.data = ngx_pnalloc(st->cycle->pool, st->path.len + 1);
    if (st->path.data == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf(st->path.data, "%V/%V%Z", st->dir, &st->file);

    return NGX_OK;
}


/*
 * The n records of one change, to every backend.  The zone already holds
 * them: a backend that fails has logged it, and the change holds until
 * the next restart.  Never called with the zone's mutex held (a
 * compaction takes it).
 */

ngx_int_t
ngx_http_linguamate_state_write(ngx_http_linguamate_state_t *st,
    ngx_http_linguamate_state_rec_t *rec, ngx_uint_t n, ngx_log_t *log)
{
    ngx_int_t   rc;
    ngx_uint_t  i;

#if (NGX_DEBUG)
    for (i = 0; i < n; i++) {
        ngx_log_debug5(NGX_LOG_DEBUG_CORE, log, 0,
                       "linguamate state: write %V \"%V\" %L %L %L",
                       &ngx_http_linguamate_state_types[rec[i].type].name,
                       &rec[i].key, rec[i].n[0], rec[i].n[1], rec[i].n[2]);
    }
#endif

    rc = NGX_OK;

    for (i = 0; i < st->nbackends; i++) {
        if (st->backends[i]->append(st, rec, n, log) != NGX_OK) {
            rc = NGX_ERROR;
        }
    }

    return rc;
}


/*
 * At start: every backend's records into the zone.  NGX_OK: some were
 * applied; NGX_DECLINED: none; NGX_ERROR: a backend could not be read.
 */

ngx_int_t
ngx_http_linguamate_state_load(ngx_http_linguamate_state_t *st,
    ngx_log_t *log)
{
    ngx_int_t   rc, n;
    ngx_uint_t  i;

    rc = NGX_DECLINED;

    for (i = 0; i < st->nbackends; i++) {
        n = st->backends[i]->load(st, log);

        if (n == NGX_ERROR || (n == NGX_OK && rc != NGX_ERROR)) {
            rc = n;
        }
    }

    return rc;
}


ngx_int_t
ngx_http_linguamate_state_compact(ngx_http_linguamate_state_t *st,
    ngx_log_t *log)
{
    ngx_int_t   rc;
    ngx_uint_t  i;

    rc = NGX_OK;

    for (i = 0; i < st->nbackends; i++) {
        if (st->backends[i]->compact(st, log) != NGX_OK) {
            rc = NGX_ERROR;
        }
    }

    return rc;
}


/*
 * The one way a record reaches a zone: from the loader, and from a
 * backend that receives the changes of other replicas.
 */

ngx_int_t
ngx_http_linguamate_state_apply(ngx_http_linguamate_state_t *st,
    ngx_http_linguamate_state_rec_t *rec, ngx_log_t *log)
{
    if (rec->type == 0 || rec->type >= NGX_HTTP_LINGUAMATE_STATE_NTYPES
        || ngx_http_linguamate_state_types[rec->type].kind != st->kind
        || rec->key.len == 0
        || rec->key.len > NGX_HTTP_LINGUAMATE_STATE_KEY_MAX
        || rec->aux.len > NGX_HTTP_LINGUAMATE_STATE_AUX_MAX
        || rec->n[0] < 0 || rec->n[1] < 0 || rec->n[2] < 0)
    {
        return NGX_ERROR;
    }

    return st->apply(st, rec, log);
}


ngx_uint_t
ngx_http_linguamate_state_same(ngx_http_linguamate_state_rec_t *a,
    ngx_http_linguamate_state_rec_t *b)
{
    return a->type == b->type
           && a->n[0] == b->n[0] && a->n[1] == b->n[1] && a->n[2] == b->n[2]
           && a->key.len == b->key.len && a->aux.len == b->aux.len
           && ngx_memcmp(a->key.data, b->key.data, a->key.len) == 0
           && (a->aux.len == 0
               || ngx_memcmp(a->aux.data, b->aux.data, a->aux.len) == 0);
}


/*
 * The records of a buffer, a line at a time, applied.  A line that is
 * broken (unknown, a bad field, a wrong CRC, cut short at the end) is
 * skipped and counted.
 */

ngx_int_t
ngx_http_linguamate_state_parse_buf(ngx_http_linguamate_state_t *st,
    u_char *buf, size_t len, ngx_http_linguamate_state_stats_t *stats,
    ngx_log_t *log)
{
    u_char                               *line, *eol, *end;
    ngx_int_t                             rc;
    ngx_uint_t                            v2, prev_v2;
    ngx_http_linguamate_state_rec_t       rec, prev;
    ngx_http_linguamate_state_scratch_t   scratch[2];

    ngx_memzero(stats, sizeof(ngx_http_linguamate_state_stats_t));
    ngx_memzero(&prev, sizeof(ngx_http_linguamate_state_rec_t));

    prev_v2 = 0;
    end = buf + len;

    for (line = buf; line < end; line = eol + 1) {

        stats->lines++;

        eol = ngx_strlchr(line, end, '\n');

        if (eol == NULL) {
            /* cut short: a write that did not finish */
            eol = end;
            rc = NGX_ERROR;

        } else {
            v2 = (eol - line > 3 && line[0] == 'v' && line[1] == '2'
                  && line[2] == ' ');

            rc = v2 ? ngx_http_linguamate_state_parse_v2(line, eol - line,
                                              &rec, scratch[stats->lines & 1])
                    : ngx_http_linguamate_state_parse_old(st->kind, line,
                                   eol - line, &rec,
                                   scratch[stats->lines & 1]);

            if (rc == NGX_OK && !v2 && prev_v2
                && ngx_http_linguamate_state_same(&rec, &prev))
            {
                /* the shadow of the line before */
                stats->shadows++;
                prev_v2 = 0;
                continue;
            }

            if (rc == NGX_OK) {
                prev = rec;
                prev_v2 = v2;
                rc = ngx_http_linguamate_state_apply(st, &rec, log);
            }
        }

        if (rc == NGX_OK) {
            stats->applied++;

        } else if (rc == NGX_DECLINED) {
            stats->declined++;

        } else {
            prev_v2 = 0;
            stats->bad++;

            if (stats->first_bad == 0) {
                stats->first_bad = stats->lines;
            }
        }
    }

    return NGX_OK;
}


/* ---- the line format --------------------------------------------------- */


/* exactly n fields separated by single spaces; rest: the last to eol */

static ngx_int_t
ngx_http_linguamate_state_split(u_char *line, size_t len, ngx_str_t *f,
    ngx_uint_t n, ngx_uint_t rest)
{
    u_char      *p, *end, *sp;
    ngx_uint_t   i;

    p = line;
    end = line + len;

    for (i = 0; i < n; i++) {
        sp = (i == n - 1 && rest) ? NULL : ngx_strlchr(p, end, ' ');

        if (i == n - 1) {
            if (sp != NULL) {
                return NGX_ERROR;
            }

            sp = end;

        } else if (sp == NULL) {
            return NGX_ERROR;
        }

        f[i].data = p;
        f[i].len = sp - p;

        if (f[i].len == 0) {
            return NGX_ERROR;
        }

        p = sp + 1;
    }

    return NGX_OK;
}


/* 0 to 2^63-1, decimal digits only */

static ngx_int_t
ngx_http_linguamate_state_number(ngx_str_t *s, int64_t *n)
{
    size_t    i;
    uint64_t  v;

    if (s->len == 0 || s->len > 19) {
        return NGX_ERROR;
    }

    v = 0;

    for (i = 0; i < s->len; i++) {
        if (s->data[i] < '0' || s->data[i] > '9') {
            return NGX_ERROR;
        }

        v = v * 10 + (s->data[i] - '0');
    }

    if (v > (uint64_t) NGX_HTTP_LINGUAMATE_STATE_N_MAX) {
        return NGX_ERROR;
    }

    *n = (int64_t) v;

    return NGX_OK;
}


/* %XX and printable ASCII; nothing else, at most max bytes out */

static ngx_int_t
ngx_http_linguamate_state_unescape(ngx_str_t *s, u_char *dst, size_t max,
    ngx_str_t *out)
{
    u_char      c, *p, *end;
    size_t      n;
    ngx_int_t   hi, lo;

    p = s->data;
    end = s->data + s->len;
    n = 0;

    while (p < end) {
        c = *p++;

        if (c == '%') {
            if (end - p < 2) {
                return NGX_ERROR;
            }

            hi = ngx_hextoi(p, 1);
            lo = ngx_hextoi(p + 1, 1);

            if (hi == NGX_ERROR || lo == NGX_ERROR) {
                return NGX_ERROR;
            }

            c = (u_char) (hi * 16 + lo);
            p += 2;

        } else if (c <= 0x20 || c >= 0x7f) {
            return NGX_ERROR;
        }

        if (n == max) {
            return NGX_ERROR;
        }

        dst[n++] = c;
    }

    out->data = dst;
    out->len = n;

    return NGX_OK;
}


static u_char *
ngx_http_linguamate_state_escape(u_char *p, ngx_str_t *s)
{
    u_char   c;
    size_t   i;
    static u_char  hex[] = "0123456789ABCDEF";

    for (i = 0; i < s->len; i++) {
        c = s->data[i];

        if (c <= 0x20 || c >= 0x7f || c == '%') {
            *p++ = '%';
            *p++ = hex[c >> 4];
            *p++ = hex[c & 0xf];

        } else {
            *p++ = c;
        }
    }

    return p;
}


/* a v2 line, at most NGX_HTTP_LINGUAMATE_STATE_LINE_MAX with its "\n" */

u_char *
ngx_http_linguamate_state_line(u_char *p, ngx_http_linguamate_state_rec_t *rec)
{
    u_char  *start;

    start = p;

    p = ngx_sprintf(p, "v2 %V ",
                    &ngx_http_linguamate_state_types[rec->type].name);
    p = ngx_http_linguamate_state_escape(p, &rec->key);
    p = ngx_sprintf(p, " %L %L %L ", rec->n[0], rec->n[1], rec->n[2]);

    if (rec->aux.len == 1 && rec->aux.data[0] == '-') {
        p = ngx_cpymem(p, "%2D", 3);     /* not "none" */

    } else if (rec->aux.len) {
        p = ngx_http_linguamate_state_escape(p, &rec->aux);

    } else {
        *p++ = '-';
    }

    p = ngx_sprintf(p, " %08xD\n", ngx_crc32_long(start, p - start));

    return p;
}


/*
 * The same record in the line format of the build before this layer:
 *   sessions  "UNTIL BEFORE REVOKED JTI KEY BEFORE_MS", BEFORE the second
 *             after BEFORE_MS (what the version before milliseconds
 *             reads: the whole second refused, fail closed)
 *   lockouts  "L UNTIL_MS LOCKED_AT KEY", "U 0 0 KEY"
 *   flags     "NAME VALUE BASE SINCE"
 * An unflag has none: flags.state is a snapshot, a flag not in it is not
 * live.
 */

u_char *
ngx_http_linguamate_state_legacy(u_char *p, ngx_uint_t kind,
    ngx_http_linguamate_state_rec_t *rec)
{
    switch (rec->type) {

    case NGX_HTTP_LINGUAMATE_STATE_SESSION:
        p = ngx_sprintf(p, "%L %L %d ", rec->n[0],
                        rec->n[1] ? rec->n[1] / 1000 + 1 : 0,
                        rec->n[2] ? 1 : 0);

        if (rec->aux.len == 1 && rec->aux.data[0] == '-') {
            p = ngx_cpymem(p, "%2D", 3);

        } else if (rec->aux.len) {
            p = (u_char *) ngx_escape_uri(p, rec->aux.data, rec->aux.len,
                                          NGX_ESCAPE_ARGS);
        } else {
            *p++ = '-';
        }

        *p++ = ' ';
        p = (u_char *) ngx_escape_uri(p, rec->key.data, rec->key.len,
                                      NGX_ESCAPE_ARGS);
        return ngx_sprintf(p, " %L\n", rec->n[1]);

    case NGX_HTTP_LINGUAMATE_STATE_LOCK:
    case NGX_HTTP_LINGUAMATE_STATE_UNLOCK:
        if (rec->type == NGX_HTTP_LINGUAMATE_STATE_LOCK) {
            p = ngx_sprintf(p, "L %L %L ", rec->n[0], rec->n[1]);

        } else {
            p = ngx_cpymem(p, "U 0 0 ", 6);
        }

        p = (u_char *) ngx_escape_uri(p, rec->key.data, rec->key.len,
                                      NGX_ESCAPE_URI_COMPONENT);
        *p++ = '\n';
        return p;

    case NGX_HTTP_LINGUAMATE_STATE_FLAG:
        return ngx_sprintf(p, "%V %L %L %L\n", &rec->key, rec->n[0],
                           rec->n[1], rec->n[2]);

    default:
        return p;
    }
}


/* a line without its "\n"; scratch holds the key and the aux */

ngx_int_t
ngx_http_linguamate_state_parse(ngx_uint_t kind, u_char *line, size_t len,
    ngx_http_linguamate_state_rec_t *rec, u_char *scratch)
{
    if (len > 3 && line[0] == 'v' && line[1] == '2' && line[2] == ' ') {
        return ngx_http_linguamate_state_parse_v2(line, len, rec, scratch);
    }

    return ngx_http_linguamate_state_parse_old(kind, line, len, rec, scratch);
}


static ngx_int_t
ngx_http_linguamate_state_parse_v2(u_char *line, size_t len,
    ngx_http_linguamate_state_rec_t *rec, u_char *scratch)
{
    ngx_str_t   f[8];
    ngx_int_t   crc;
    ngx_uint_t  i, t;

    if (len >= NGX_HTTP_LINGUAMATE_STATE_LINE_MAX
        || ngx_http_linguamate_state_split(line, len, f, 8, 0) != NGX_OK
        || f[7].len != 8)
    {
        return NGX_ERROR;
    }

    crc = ngx_hextoi(f[7].data, 8);

    if (crc == NGX_ERROR
        || (uint32_t) crc != ngx_crc32_long(line, f[7].data - 1 - line))
    {
        return NGX_ERROR;
    }

    ngx_memzero(rec, sizeof(ngx_http_linguamate_state_rec_t));

    for (t = 1; t < NGX_HTTP_LINGUAMATE_STATE_NTYPES; t++) {
        if (ngx_http_linguamate_state_types[t].name.len == f[1].len
            && ngx_strncmp(ngx_http_linguamate_state_types[t].name.data,
                           f[1].data, f[1].len) == 0)
        {
            break;
        }
    }

    if (t == NGX_HTTP_LINGUAMATE_STATE_NTYPES) {
        return NGX_ERROR;
    }

    rec->type = t;

    if (ngx_http_linguamate_state_unescape(&f[2], scratch,
                                           NGX_HTTP_LINGUAMATE_STATE_KEY_MAX,
                                           &rec->key)
        != NGX_OK
        || rec->key.len == 0)
    {
        return NGX_ERROR;
    }

    for (i = 0; i < 3; i++) {
        if (ngx_http_linguamate_state_number(&f[3 + i], &rec->n[i])
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    if (!(f[6].len == 1 && f[6].data[0] == '-')
        && (ngx_http_linguamate_state_unescape(&f[6],
                             scratch + NGX_HTTP_LINGUAMATE_STATE_KEY_MAX,
                             NGX_HTTP_LINGUAMATE_STATE_AUX_MAX, &rec->aux)
            != NGX_OK
            || rec->aux.len == 0))
    {
        return NGX_ERROR;
    }

    /* what each type may hold */

    switch (t) {

    case NGX_HTTP_LINGUAMATE_STATE_SESSION:
        return rec->n[2] <= 1 ? NGX_OK : NGX_ERROR;

    case NGX_HTTP_LINGUAMATE_STATE_LOCK:
        return (rec->aux.len == 0 && rec->n[2] == 0) ? NGX_OK : NGX_ERROR;

    case NGX_HTTP_LINGUAMATE_STATE_FLAG:
        return rec->aux.len == 0 ? NGX_OK : NGX_ERROR;

    default:    /* unlock, unflag */
        return (rec->aux.len == 0 && rec->n[0] == 0 && rec->n[1] == 0
                && rec->n[2] == 0) ? NGX_OK : NGX_ERROR;
    }
}


/* a line of the formats before v2, read as the file's kind writes them */

static ngx_int_t
ngx_http_linguamate_state_parse_old(ngx_uint_t kind, u_char *line,
    size_t len, ngx_http_linguamate_state_rec_t *rec, u_char *scratch)
{
    ngx_str_t   f[6];
    ngx_uint_t  i, n;

    if (len >= NGX_HTTP_LINGUAMATE_STATE_LINE_MAX) {
        return NGX_ERROR;
    }

    ngx_memzero(rec, sizeof(ngx_http_linguamate_state_rec_t));

    switch (kind) {

    case NGX_HTTP_LINGUAMATE_ZONE_SESSION:

        /* "UNTIL BEFORE REVOKED JTI KEY[ BEFORE_MS]" */

        n = 6;

        if (ngx_http_linguamate_state_split(line, len, f, 6, 0) != NGX_OK) {
            n = 5;

            if (ngx_http_linguamate_state_split(line, len, f, 5, 0)
                != NGX_OK)
            {
                return NGX_ERROR;
            }
        }

        rec->type = NGX_HTTP_LINGUAMATE_STATE_SESSION;

        if (ngx_http_linguamate_state_number(&f[0], &rec->n[0]) != NGX_OK
            || ngx_http_linguamate_state_number(&f[1], &rec->n[1]) != NGX_OK
            || f[2].len != 1 || (f[2].data[0] != '0' && f[2].data[0] != '1')
            || ngx_http_linguamate_state_unescape(&f[4], scratch,
                                          NGX_HTTP_LINGUAMATE_STATE_KEY_MAX,
                                          &rec->key)
               != NGX_OK
            || rec->key.len == 0)
        {
            return NGX_ERROR;
        }

        rec->n[2] = (f[2].data[0] == '1');

        if (n == 6) {
            if (ngx_http_linguamate_state_number(&f[5], &rec->n[1])
                != NGX_OK)
            {
                return NGX_ERROR;
            }

        } else if (rec->n[1]) {
            /* the version before milliseconds: to the end of its second */

            if (rec->n[1] > NGX_HTTP_LINGUAMATE_STATE_N_MAX / 1000 - 1) {
                return NGX_ERROR;
            }

            rec->n[1] = rec->n[1] * 1000 + 999;
        }

        if (!(f[3].len == 1 && f[3].data[0] == '-')
            && ngx_http_linguamate_state_unescape(&f[3],
                                 scratch + NGX_HTTP_LINGUAMATE_STATE_KEY_MAX,
                                 NGX_HTTP_LINGUAMATE_STATE_AUX_MAX, &rec->aux)
               != NGX_OK)
        {
            return NGX_ERROR;
        }

        return NGX_OK;

    case NGX_HTTP_LINGUAMATE_ZONE_LOCKOUT:

        /* "L UNTIL_MS LOCKED_AT KEY", "U 0 0 KEY" */

        if (ngx_http_linguamate_state_split(line, len, f, 4, 0) != NGX_OK
            || f[0].len != 1
            || (f[0].data[0] != 'L' && f[0].data[0] != 'U'))
        {
            return NGX_ERROR;
        }

        rec->type = (f[0].data[0] == 'L') ? NGX_HTTP_LINGUAMATE_STATE_LOCK
                                          : NGX_HTTP_LINGUAMATE_STATE_UNLOCK;

        if (ngx_http_linguamate_state_unescape(&f[3], scratch,
                                          NGX_HTTP_LINGUAMATE_STATE_KEY_MAX,
                                          &rec->key)
            != NGX_OK
            || rec->key.len == 0)
        {
            return NGX_ERROR;
        }

        if (rec->type == NGX_HTTP_LINGUAMATE_STATE_UNLOCK) {
            return NGX_OK;
        }

        if (ngx_http_linguamate_state_number(&f[1], &rec->n[0]) != NGX_OK
            || ngx_http_linguamate_state_number(&f[2], &rec->n[1]) != NGX_OK)
        {
            return NGX_ERROR;
        }

        return NGX_OK;

    case NGX_HTTP_LINGUAMATE_ZONE_FLAGS:

        /* "NAME VALUE BASE SINCE" */

        if (ngx_http_linguamate_state_split(line, len, f, 4, 0) != NGX_OK
            || ngx_http_linguamate_state_unescape(&f[0], scratch,
                                          NGX_HTTP_LINGUAMATE_STATE_KEY_MAX,
                                          &rec->key)
               != NGX_OK)
        {
            return NGX_ERROR;
        }

        rec->type = NGX_HTTP_LINGUAMATE_STATE_FLAG;

        for (i = 0; i < 3; i++) {
            if (ngx_http_linguamate_state_number(&f[1 + i], &rec->n[i])
                != NGX_OK)
            {
                return NGX_ERROR;
            }
        }

        return NGX_OK;

    default:
        return NGX_ERROR;
    }
}


/* ---- the local file backend --------------------------------------------- */


/*
 * The file open for append with the shared lock, the file that is at the
 * path now (a compaction may have renamed another over it meanwhile)
 */

static ngx_fd_t
ngx_http_linguamate_state_open_locked(ngx_http_linguamate_state_t *st)
{
    return ngx_http_linguamate_state_flock(st, NGX_FILE_APPEND,
                                           NGX_FILE_CREATE_OR_OPEN, LOCK_SH,
                                           NULL);
}


/*
 * Whether the file locked is the one at the path: a compaction that held
 * the lock before may have renamed another over it meanwhile
 */

static ngx_uint_t
ngx_http_linguamate_state_at_path(ngx_http_linguamate_state_t *st,
    ngx_fd_t fd)
{
    ngx_file_info_t  fi, pi;

    return ngx_fd_info(fd, &fi) != NGX_FILE_ERROR
           && ngx_file_info(st->path.data, &pi) != NGX_FILE_ERROR
           && pi.st_ino == fi.st_ino && pi.st_dev == fi.st_dev;
}


/* a snapshot-only file is rewritten whole, once for all n records */

static ngx_int_t
ngx_http_linguamate_state_file_append(ngx_http_linguamate_state_t *st,
    ngx_http_linguamate_state_rec_t *rec, ngx_uint_t n, ngx_log_t *log)
{
    ngx_int_t   rc;
    ngx_uint_t  i;

    if (st->snapshot_only) {
        return ngx_http_linguamate_state_file_compact(st, log);
    }

    rc = NGX_OK;

    for (i = 0; i < n; i++) {
        if (ngx_http_linguamate_state_file_append1(st, &rec[i], log)
            != NGX_OK)
        {
            rc = NGX_ERROR;
        }
    }

    return rc;
}


/*
 * A record: its v2 line and its shadow, in one write().  A file at its
 * cap is compacted first (at most once a minute per process); one that
 * is still at it takes no more until the next start.
 */

static ngx_int_t
ngx_http_linguamate_state_file_append1(ngx_http_linguamate_state_t *st,
    ngx_http_linguamate_state_rec_t *rec, ngx_log_t *log)
{
    u_char           *p, buf[2 * NGX_HTTP_LINGUAMATE_STATE_LINE_MAX];
    ngx_fd_t          fd;
    ngx_uint_t        retried;
    ngx_file_info_t   fi;

    if (ngx_http_linguamate_state_path(st) != NGX_OK) {
        return NGX_ERROR;
    }

    if (rec->key.len > NGX_HTTP_LINGUAMATE_STATE_KEY_MAX
        || rec->aux.len > NGX_HTTP_LINGUAMATE_STATE_AUX_MAX)
    {
        ngx_http_linguamate_state_error(st, log, 0,
            "a key of %uz bytes is not written to \"%V\": the change holds "
            "until the next restart", rec->key.len, &st->path);
        return NGX_ERROR;
    }

    p = ngx_http_linguamate_state_line(buf, rec);
    p = ngx_http_linguamate_state_legacy(p, st->kind, rec);

    retried = 0;

again:

    fd = ngx_http_linguamate_state_open_locked(st);

    if (fd == NGX_INVALID_FILE) {
        ngx_http_linguamate_state_error(st, log, ngx_errno,
            "cannot append to \"%V\"; the change holds until the next "
            "restart", &st->path);
        return NGX_ERROR;
    }

    if (ngx_fd_info(fd, &fi) != NGX_FILE_ERROR
        && ngx_file_size(&fi) + (p - buf) > NGX_HTTP_LINGUAMATE_STATE_CAP)
    {
        (void) ngx_close_file(fd);

        if (!retried
            && (st->compacted == 0
                || ngx_current_msec - st->compacted
                   >= NGX_HTTP_LINGUAMATE_STATE_LOG_EVERY))
        {
            retried = 1;
            st->compacted = ngx_current_msec;

            ngx_log_debug1(NGX_LOG_DEBUG_CORE, log, 0,
                           "linguamate state: \"%V\" at its cap, compacting",
                           &st->path);

            if (ngx_http_linguamate_state_file_compact(st, log) == NGX_OK) {
                goto again;
            }
        }

        ngx_http_linguamate_state_error(st, log, 0,
            "\"%V\" is full (%d MB) until the next start: the change "
            "holds until then", &st->path,
            NGX_HTTP_LINGUAMATE_STATE_CAP / (1024 * 1024));
        return NGX_ERROR;
    }

    if (ngx_write_fd(fd, buf, p - buf) != p - buf) {
        ngx_http_linguamate_state_error(st, log, ngx_errno,
            "cannot append to \"%V\"; the change holds until the next "
            "restart", &st->path);
        (void) ngx_close_file(fd);
        return NGX_ERROR;
    }

    (void) ngx_close_file(fd);

    return NGX_OK;
}


/*
 * At start: the file read and applied, then rewritten compacted, under
 * one exclusive lock, so that no append of a process still running (the
 * old workers of a binary upgrade) falls between the two; a missing file
 * is made (empty).  A file that cannot be read is left as it is.
 */

static ngx_int_t
ngx_http_linguamate_state_file_load(ngx_http_linguamate_state_t *st,
    ngx_log_t *log)
{
    u_char                             *buf;
    off_t                               size;
    ssize_t                             n;
    ngx_fd_t                            lock;
    ngx_file_info_t                     fi;
    ngx_core_conf_t                    *ccf;
    ngx_http_linguamate_state_stats_t   stats;

    if (ngx_http_linguamate_state_path(st) != NGX_OK) {
        return NGX_ERROR;
    }

    ccf = ngx_http_linguamate_state_owner(st);
    lock = ngx_http_linguamate_state_lock(st, ccf, 1);

    if (lock == NGX_INVALID_FILE) {
        if (ngx_errno == NGX_ENOENT) {
            /* no STATE_DIR: nothing to restore, the writes will say */
            ngx_log_debug1(NGX_LOG_DEBUG_CORE, log, 0,
                           "linguamate state: no directory for \"%V\"",
                           &st->path);
            return NGX_DECLINED;
        }

        ngx_log_error(NGX_LOG_ERR, log, ngx_errno,
                      "linguamate: cannot read \"%V\": its state is not "
                      "restored", &st->path);
        return NGX_ERROR;
    }

    if (ngx_fd_info(lock, &fi) == NGX_FILE_ERROR
        || (size = ngx_file_size(&fi)) > NGX_HTTP_LINGUAMATE_STATE_READ_MAX)
    {
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "linguamate: \"%V\" is unreadable or larger than "
                      "%d MB: its state is not restored", &st->path,
                      NGX_HTTP_LINGUAMATE_STATE_READ_MAX / (1024 * 1024));
        (void) ngx_close_file(lock);
        return NGX_ERROR;
    }

    buf = ngx_alloc((size_t) size + 1, log);
    if (buf == NULL) {
        (void) ngx_close_file(lock);
        return NGX_ERROR;
    }

    n = ngx_read_fd(lock, buf, (size_t) size);

    if (n < 0) {
        ngx_log_error(NGX_LOG_ERR, log, ngx_errno,
                      "linguamate: cannot read \"%V\": its state is not "
                      "restored", &st->path);
        ngx_free(buf);
        (void) ngx_close_file(lock);
        return NGX_ERROR;
    }

    (void) ngx_http_linguamate_state_parse_buf(st, buf, n, &stats, log);

    ngx_free(buf);

    ngx_log_debug6(NGX_LOG_DEBUG_CORE, log, 0,
                   "linguamate state: loaded \"%V\": %ui lines, %ui applied, "
                   "%ui no longer in force, %ui shadows, %ui bad",
                   &st->path, stats.lines, stats.applied, stats.declined,
                   stats.shadows, stats.bad);

    if (stats.bad) {
        ngx_log_error(NGX_LOG_WARN, log, 0,
                      "linguamate: a bad value in \"%V\" or a broken line: "
                      "%ui lines skipped, the first at line %ui", &st->path,
                      stats.bad, stats.first_bad);
    }

    if (stats.applied) {
        ngx_log_error(NGX_LOG_NOTICE, log, 0,
                      "linguamate: %ui records restored from \"%V\"",
                      stats.applied, &st->path);
    }

    (void) ngx_http_linguamate_state_compact_locked(st, lock, ccf, log);

    return stats.applied ? NGX_OK : NGX_DECLINED;
}


/* a record of the snapshot: its v2 line and its shadow */

static ngx_int_t
ngx_http_linguamate_state_emit(void *data,
    ngx_http_linguamate_state_rec_t *rec)
{
    size_t                              size;
    ngx_http_linguamate_state_sink_t   *sink = data;
    ngx_http_linguamate_state_chunk_t  *c;

    if (sink->failed
        || rec->key.len == 0
        || rec->key.len > NGX_HTTP_LINGUAMATE_STATE_KEY_MAX
        || rec->aux.len > NGX_HTTP_LINGUAMATE_STATE_AUX_MAX)
    {
        /* never written by an append either: not kept */
        return NGX_OK;
    }

    c = sink->chunk;

    if (c == NULL
        || c->end - c->last < 2 * NGX_HTTP_LINGUAMATE_STATE_LINE_MAX)
    {
        /* called under the zone's mutex: memory only, no write() here */

        size = c ? ngx_min(2 * c->size, NGX_HTTP_LINGUAMATE_STATE_CHUNK_MAX)
                 : NGX_HTTP_LINGUAMATE_STATE_CHUNK;

        c = ngx_alloc(sizeof(ngx_http_linguamate_state_chunk_t) + size,
                      sink->log);
        if (c == NULL) {
            sink->failed = 1;
            return NGX_ERROR;
        }

        c->next = NULL;
        c->size = size;
        c->last = (u_char *) (c + 1);
        c->end = c->last + size;

        if (sink->chunk) {
            sink->chunk->next = c;

        } else {
            sink->first = c;
        }

        sink->chunk = c;
    }

    c->last = ngx_http_linguamate_state_line(c->last, rec);
    c->last = ngx_http_linguamate_state_legacy(c->last, sink->st->kind, rec);
    sink->records++;

    return NGX_OK;
}


/* the lines kept in memory into the file, after the zone's mutex */

static ngx_int_t
ngx_http_linguamate_state_write_sink(ngx_http_linguamate_state_sink_t *sink,
    ngx_fd_t fd)
{
    ssize_t                             n;
    ngx_http_linguamate_state_chunk_t  *c;

    for (c = sink->first; c; c = c->next) {
        n = c->last - (u_char *) (c + 1);

        if (ngx_write_fd(fd, c + 1, n) != n) {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


static void
ngx_http_linguamate_state_free_sink(ngx_http_linguamate_state_sink_t *sink)
{
    ngx_http_linguamate_state_chunk_t  *c, *next;

    for (c = sink->first; c; c = next) {
        next = c->next;
        ngx_free(c);
    }

    sink->first = NULL;
    sink->chunk = NULL;
}


static ngx_int_t
ngx_http_linguamate_state_file_compact(ngx_http_linguamate_state_t *st,
    ngx_log_t *log)
{
    ngx_fd_t          lock;
    ngx_core_conf_t  *ccf;

    if (ngx_http_linguamate_state_path(st) != NGX_OK) {
        return NGX_ERROR;
    }

    ccf = ngx_http_linguamate_state_owner(st);
    lock = ngx_http_linguamate_state_lock(st, ccf, 1);

    if (lock == NGX_INVALID_FILE && ngx_errno != NGX_ENOENT) {
        /* never replaced without the lock: an append would be lost */
        ngx_http_linguamate_state_error(st, log, ngx_errno,
            "cannot lock \"%V\" to compact it: its changes will not "
            "survive a restart", &st->path);
        return NGX_ERROR;
    }

    /* no directory: the write of PATH.tmp.PID says why */

    return ngx_http_linguamate_state_compact_locked(st, lock, ccf, log);
}


/* the workers' user and group when the master runs as root, or NULL */

static ngx_core_conf_t *
ngx_http_linguamate_state_owner(ngx_http_linguamate_state_t *st)
{
    ngx_core_conf_t  *ccf;

    ccf = (ngx_core_conf_t *) ngx_get_conf(st->cycle->conf_ctx,
                                           ngx_core_module);

    if (geteuid() != 0 || ccf == NULL
        || ccf->user == (ngx_uid_t) NGX_CONF_UNSET_UINT)
    {
        return NULL;
    }

    return ccf;
}


/*
 * The file itself is the lock, open for reading with LOCK_EX; made if
 * missing and asked, for the workers who append to it.  As for an append,
 * the lock holds only if the file is still the one at the path once it
 * is taken: a compaction waiting on a file another renamed a new one over
 * would replace that one unlocked, and lose its appends.
 */

static ngx_fd_t
ngx_http_linguamate_state_lock(ngx_http_linguamate_state_t *st,
    ngx_core_conf_t *ccf, ngx_uint_t create)
{
    return ngx_http_linguamate_state_flock(st, NGX_FILE_RDONLY,
                               create ? NGX_FILE_CREATE_OR_OPEN : NGX_FILE_OPEN,
                               LOCK_EX, ccf);
}


/* the file at the path, open and locked (op: LOCK_SH or LOCK_EX) */

static ngx_fd_t
ngx_http_linguamate_state_flock(ngx_http_linguamate_state_t *st,
    ngx_uint_t mode, ngx_uint_t create, int op, ngx_core_conf_t *ccf)
{
    ngx_fd_t    fd;
    ngx_err_t   err;
    ngx_uint_t  tries;

    for (tries = 0; tries < NGX_HTTP_LINGUAMATE_STATE_TRIES; tries++) {
        fd = ngx_open_file(st->path.data, mode, create, 0600);
        if (fd == NGX_INVALID_FILE) {
            return fd;
        }

        if ((ccf && fchown(fd, ccf->user, ccf->group) == -1)
            || flock(fd, op) == -1)
        {
            err = ngx_errno;
            (void) ngx_close_file(fd);
            ngx_set_errno(err);
            return NGX_INVALID_FILE;
        }

        if (ngx_http_linguamate_state_at_path(st, fd)) {
            return fd;
        }

        (void) ngx_close_file(fd);
    }

    ngx_set_errno(NGX_EAGAIN);

    return NGX_INVALID_FILE;
}


/*
 * The live state into PATH.tmp.PID, synced, renamed over PATH, with the
 * directory synced; under the exclusive lock of PATH (closed here), so
 * that no append lands in the file being replaced.  The snapshot fills
 * memory under the zone's mutex; the write()s come after it, so that the
 * lookups of the other workers do not wait on the disk.  No lock (no
 * directory, ENOENT, only): the write of PATH.tmp.PID says why.
 */

static ngx_int_t
ngx_http_linguamate_state_compact_locked(ngx_http_linguamate_state_t *st,
    ngx_fd_t lock, ngx_core_conf_t *ccf, ngx_log_t *log)
{
    u_char                            tmp[NGX_MAX_PATH];
    ngx_fd_t                          fd, dir;
    ngx_err_t                         err;
    ngx_http_linguamate_state_sink_t  sink;

    /* this process's own: two compactions never write one file */

    ngx_sprintf(tmp, "%V.tmp.%P%Z", &st->path, ngx_pid);

    ngx_memzero(&sink, sizeof(ngx_http_linguamate_state_sink_t));
    sink.st = st;
    sink.log = log;

    fd = ngx_open_file(tmp, NGX_FILE_WRONLY, NGX_FILE_TRUNCATE, 0600);

    if (fd == NGX_INVALID_FILE) {
        err = ngx_errno;
        goto failed;
    }

    if (st->snapshot(st, ngx_http_linguamate_state_emit, &sink, log)
        != NGX_OK
        || sink.failed)
    {
        err = 0;
        goto failed;
    }

    if (ngx_http_linguamate_state_write_sink(&sink, fd) != NGX_OK
        || fsync(fd) == -1)
    {
        err = ngx_errno;
        goto failed;
    }

    ngx_http_linguamate_state_free_sink(&sink);

    /* the workers append to it */

    if (ccf && fchown(fd, ccf->user, ccf->group) == -1) {
        ngx_log_error(NGX_LOG_WARN, log, ngx_errno,
                      "linguamate: cannot chown \"%s\"", tmp);
    }

    (void) ngx_close_file(fd);

    if (ngx_rename_file(tmp, st->path.data) == NGX_FILE_ERROR) {
        ngx_http_linguamate_state_error(st, log, ngx_errno,
            "cannot rename \"%s\" to \"%V\": its changes will not survive "
            "a restart", tmp, &st->path);
        (void) ngx_delete_file(tmp);

        if (lock != NGX_INVALID_FILE) {
            (void) ngx_close_file(lock);
        }

        return NGX_ERROR;
    }

    if (lock != NGX_INVALID_FILE) {
        (void) ngx_close_file(lock);
    }

    /* the rename itself, on disk: the directory, "PATH" up to its "/" */

    *(ngx_cpymem(tmp, st->path.data, st->path.len - st->file.len - 1)) = '\0';

    dir = ngx_open_file(tmp, NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);

    if (dir != NGX_INVALID_FILE) {
        (void) fsync(dir);
        (void) ngx_close_file(dir);
    }

    ngx_log_debug2(NGX_LOG_DEBUG_CORE, log, 0,
                   "linguamate state: compacted \"%V\": %ui records",
                   &st->path, sink.records);

    return NGX_OK;

failed:

    ngx_http_linguamate_state_error(st, log, err,
        "cannot write \"%s\": its changes will not survive a restart", tmp);

    ngx_http_linguamate_state_free_sink(&sink);

    if (fd != NGX_INVALID_FILE) {
        (void) ngx_close_file(fd);
        (void) ngx_delete_file(tmp);
    }

    if (lock != NGX_INVALID_FILE) {
        (void) ngx_close_file(lock);
    }

    return NGX_ERROR;
}


/*
 * A write that failed: logged at most once a minute per file and process,
 * with the count of those not logged since.
 */

static void
ngx_http_linguamate_state_error(ngx_http_linguamate_state_t *st,
    ngx_log_t *log, ngx_err_t err, const char *fmt, ...)
{
    u_char   *p, buf[NGX_MAX_ERROR_STR];
    va_list   args;

    if (st->logged
        && ngx_current_msec - st->logged < NGX_HTTP_LINGUAMATE_STATE_LOG_EVERY)
    {
        st->unlogged++;
        return;
    }

    st->logged = ngx_current_msec ? ngx_current_msec : 1;

    va_start(args, fmt);
    p = ngx_vslprintf(buf, buf + sizeof(buf), fmt, args);
    va_end(args);

    if (st->unlogged) {
        p = ngx_slprintf(p, buf + sizeof(buf), " (and %ui more not logged "
                         "in the minute before)", st->unlogged);
    }

    ngx_log_error(NGX_LOG_ERR, log, err, "linguamate: %*s", p - buf, buf);

    st->unlogged = 0;
}
