/*
 * Copyright (C) ngx_linguamate developers
 *
 * libFuzzer harness for the state layer's line format and loader
 * (ngx_http_linguamate_state.c): the first byte picks the file's kind
 * (a sessions journal, a lockouts journal, flags.state), the rest is the
 * file, handed to the loader (parse_buf) as it reads one at start.  Each
 * record the loader applies is checked: its type belongs to the file, its
 * key and aux are within bounds, and it comes back the same through the
 * writer (its v2 line) and, where the previous build could hold it,
 * through its shadow line; every line is counted once.
 */

#include "fuzz_ngx.h"

#include "ngx_http_linguamate_state.h"


/* a v2 line and its shadow */
#define FUZZ_STATE_LINES  (2 * NGX_HTTP_LINGUAMATE_STATE_LINE_MAX)


static ngx_int_t fuzz_state_apply(ngx_http_linguamate_state_t *st,
    ngx_http_linguamate_state_rec_t *rec, ngx_log_t *log);
static void fuzz_state_roundtrip(ngx_uint_t kind,
    ngx_http_linguamate_state_rec_t *rec);


static ngx_uint_t  fuzz_kinds[] = {
    NGX_HTTP_LINGUAMATE_ZONE_SESSION,
    NGX_HTTP_LINGUAMATE_ZONE_LOCKOUT,
    NGX_HTTP_LINGUAMATE_ZONE_FLAGS
};


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    u_char                             *buf;
    ngx_log_t                           log;
    ngx_http_linguamate_state_t         st;
    ngx_http_linguamate_state_stats_t   stats;

    if (size < 1) {
        return 0;
    }

    ngx_memzero(&st, sizeof(ngx_http_linguamate_state_t));
    ngx_memzero(&log, sizeof(ngx_log_t));

    st.kind = fuzz_kinds[data[0] % 3];
    st.apply = fuzz_state_apply;

    /* an exact-size copy: reading past the file is a finding */

    buf = malloc(size - 1 ? size - 1 : 1);
    if (buf == NULL) {
        return 0;
    }

    ngx_memcpy(buf, data + 1, size - 1);

    (void) ngx_http_linguamate_state_parse_buf(&st, buf, size - 1, &stats,
                                               &log);

    if (stats.applied + stats.declined + stats.shadows + stats.bad
        != stats.lines
        || (stats.bad && (stats.first_bad == 0
                          || stats.first_bad > stats.lines)))
    {
        abort();
    }

    free(buf);

    return 0;
}


static ngx_int_t
fuzz_state_apply(ngx_http_linguamate_state_t *st,
    ngx_http_linguamate_state_rec_t *rec, ngx_log_t *log)
{
    volatile u_char  c;
    size_t           i;

    /* state_apply() let through only what this file may hold */

    if (rec->type == 0 || rec->type >= NGX_HTTP_LINGUAMATE_STATE_NTYPES
        || rec->key.len == 0
        || rec->key.len > NGX_HTTP_LINGUAMATE_STATE_KEY_MAX
        || rec->aux.len > NGX_HTTP_LINGUAMATE_STATE_AUX_MAX
        || rec->n[0] < 0 || rec->n[1] < 0 || rec->n[2] < 0)
    {
        abort();
    }

    switch (st->kind) {

    case NGX_HTTP_LINGUAMATE_ZONE_SESSION:
        if (rec->type != NGX_HTTP_LINGUAMATE_STATE_SESSION || rec->n[2] > 1) {
            abort();
        }
        break;

    case NGX_HTTP_LINGUAMATE_ZONE_LOCKOUT:
        if ((rec->type != NGX_HTTP_LINGUAMATE_STATE_LOCK
             && rec->type != NGX_HTTP_LINGUAMATE_STATE_UNLOCK)
            || rec->aux.len)
        {
            abort();
        }
        break;

    default:
        if ((rec->type != NGX_HTTP_LINGUAMATE_STATE_FLAG
             && rec->type != NGX_HTTP_LINGUAMATE_STATE_UNFLAG)
            || rec->aux.len)
        {
            abort();
        }
    }

    /* touch every byte handed out: ASan checks the bounds */

    c = 0;

    for (i = 0; i < rec->key.len; i++) {
        c ^= rec->key.data[i];
    }

    for (i = 0; i < rec->aux.len; i++) {
        c ^= rec->aux.data[i];
    }

    (void) c;

    fuzz_state_roundtrip(st->kind, rec);

    /* some are no longer in force */

    return (rec->n[0] & 1) ? NGX_OK : NGX_DECLINED;
}


/* the record through the writer's lines and back */

static void
fuzz_state_roundtrip(ngx_uint_t kind, ngx_http_linguamate_state_rec_t *rec)
{
    u_char                               *p, *q;
    size_t                                i;
    ngx_http_linguamate_state_rec_t       back;
    ngx_http_linguamate_state_scratch_t   scratch;
    u_char                                line[FUZZ_STATE_LINES];

    p = ngx_http_linguamate_state_line(line, rec);

    if (p - line > NGX_HTTP_LINGUAMATE_STATE_LINE_MAX || p[-1] != '\n'
        || ngx_http_linguamate_state_parse(kind, line, p - line - 1, &back,
                                           scratch)
           != NGX_OK
        || !ngx_http_linguamate_state_same(rec, &back))
    {
        abort();
    }

    q = ngx_http_linguamate_state_legacy(p, kind, rec);

    if (q - p > NGX_HTTP_LINGUAMATE_STATE_LINE_MAX) {
        abort();
    }

    if (rec->type == NGX_HTTP_LINGUAMATE_STATE_UNFLAG) {
        if (q != p) {
            abort();
        }

        return;
    }

    /* a flag's name is written as it is: only the names it can have */

    if (rec->type == NGX_HTTP_LINGUAMATE_STATE_FLAG) {
        for (i = 0; i < rec->key.len; i++) {
            if (rec->key.data[i] <= 0x20 || rec->key.data[i] >= 0x7f
                || rec->key.data[i] == '%')
            {
                return;
            }
        }
    }

    /* an unlock's numbers are not in its shadow */

    if (rec->type == NGX_HTTP_LINGUAMATE_STATE_UNLOCK
        && (rec->n[0] || rec->n[1] || rec->n[2]))
    {
        return;
    }

    if (q[-1] != '\n'
        || ngx_http_linguamate_state_parse(kind, p, q - p - 1, &back,
                                           scratch)
           != NGX_OK
        || !ngx_http_linguamate_state_same(rec, &back))
    {
        abort();
    }
}
