/*
 * Copyright (C) ngx_linguamate developers
 *
 * Parse layer: the streaming scan of a tRPC 207 batch answer.  The
 * answer is an array, one element per procedure, {"result":...} or
 * {"error":{...,"code":"UNAUTHORIZED",...,"httpStatus":401}}; yajl's
 * callbacks set a bit per element that failed (400/401, UNAUTHORIZED,
 * BAD_REQUEST) and one per element that succeeded.  Answers over 1 MB
 * and answers that are not JSON are "broken": every auth procedure then
 * counts as failed.
 */


#include "ngx_http_linguamate_trpc_parse.h"


static void ngx_http_linguamate_trpc_scan_cleanup(void *data);
static int ngx_http_linguamate_trpc_start_map(void *data);
static int ngx_http_linguamate_trpc_start_array(void *data);
static int ngx_http_linguamate_trpc_end(void *data);
static int ngx_http_linguamate_trpc_key(void *data, const unsigned char *k,
    size_t len);
static int ngx_http_linguamate_trpc_string(void *data,
    const unsigned char *s, size_t len);
static int ngx_http_linguamate_trpc_number(void *data, const char *n,
    size_t len);
static int ngx_http_linguamate_trpc_scalar(void *data);
static int ngx_http_linguamate_trpc_bool(void *data, int b);
static void ngx_http_linguamate_trpc_fail(
    ngx_http_linguamate_trpc_scan_t *sc);


static yajl_callbacks  ngx_http_linguamate_trpc_callbacks = {
    ngx_http_linguamate_trpc_scalar,
    ngx_http_linguamate_trpc_bool,
    NULL,
    NULL,
    ngx_http_linguamate_trpc_number,
    ngx_http_linguamate_trpc_string,
    ngx_http_linguamate_trpc_start_map,
    ngx_http_linguamate_trpc_key,
    ngx_http_linguamate_trpc_end,
    ngx_http_linguamate_trpc_start_array,
    ngx_http_linguamate_trpc_end
};


/* a scan whose yajl handle is freed with the pool; NULL: no memory */

ngx_http_linguamate_trpc_scan_t *
ngx_http_linguamate_trpc_scan_create(ngx_pool_t *pool)
{
    ngx_pool_cleanup_t               *cln;
    ngx_http_linguamate_trpc_scan_t  *sc;

    sc = ngx_pcalloc(pool, sizeof(ngx_http_linguamate_trpc_scan_t));
    if (sc == NULL) {
        return NULL;
    }

    cln = ngx_pool_cleanup_add(pool, 0);
    if (cln == NULL) {
        return NULL;
    }

    sc->yajl = yajl_alloc(&ngx_http_linguamate_trpc_callbacks, NULL, sc);
    if (sc->yajl == NULL) {
        return NULL;
    }

    cln->handler = ngx_http_linguamate_trpc_scan_cleanup;
    cln->data = sc;

    return sc;
}


/* the next piece of the answer, of any size (0 included) */

void
ngx_http_linguamate_trpc_scan_feed(ngx_http_linguamate_trpc_scan_t *sc,
    const u_char *p, size_t len)
{
    if (sc->broken) {
        return;
    }

    sc->bytes += len;

    if (sc->bytes > NGX_HTTP_LINGUAMATE_TRPC_SCAN
        || (len && yajl_parse(sc->yajl, p, len) != yajl_status_ok))
    {
        sc->broken = 1;
    }
}


/* a piece that cannot be read (in a file): the answer is not scanned */

void
ngx_http_linguamate_trpc_scan_break(ngx_http_linguamate_trpc_scan_t *sc)
{
    sc->broken = 1;
}


/*
 * The answer is over: the counts of the auth procedures (bits of auth,
 * auth_n of them) that failed and succeeded; an answer not read to the
 * end counts them all as failed.  Called once.
 */

void
ngx_http_linguamate_trpc_scan_finish(ngx_http_linguamate_trpc_scan_t *sc,
    uint64_t auth, ngx_uint_t auth_n, ngx_uint_t *failed,
    ngx_uint_t *succeeded)
{
    uint64_t    f, s;
    ngx_uint_t  i;

    if (sc->broken || yajl_complete_parse(sc->yajl) != yajl_status_ok) {
        *failed = auth_n;
        *succeeded = 0;
        return;
    }

    f = sc->failed & auth;
    s = sc->succeeded & auth;
    *failed = 0;
    *succeeded = 0;

    for (i = 0; i < NGX_HTTP_LINGUAMATE_TRPC_SCAN_BITS; i++) {
        *failed += (f >> i) & 1;
        *succeeded += (s >> i) & 1;
    }
}


static void
ngx_http_linguamate_trpc_scan_cleanup(void *data)
{
    ngx_http_linguamate_trpc_scan_t  *sc = data;

    if (sc->yajl) {
        yajl_free(sc->yajl);
        sc->yajl = NULL;
    }
}


/*
 * depth 1: the array; 2: an element ({"result":...} or {"error":...});
 * an element is an error when its key at depth 2 is "error"
 */

static int
ngx_http_linguamate_trpc_start_map(void *data)
{
    ngx_http_linguamate_trpc_scan_t  *sc = data;

    sc->depth++;
    sc->key_status = 0;
    sc->key_code = 0;

    return sc->depth < 64;
}


static int
ngx_http_linguamate_trpc_start_array(void *data)
{
    return ngx_http_linguamate_trpc_start_map(data);
}


static int
ngx_http_linguamate_trpc_end(void *data)
{
    ngx_http_linguamate_trpc_scan_t  *sc = data;

    if (sc->depth == 2) {
        /* an element is over */

        if (!sc->in_error && sc->index < NGX_HTTP_LINGUAMATE_TRPC_SCAN_BITS) {
            sc->succeeded |= (uint64_t) 1 << sc->index;
        }

        sc->in_error = 0;
        sc->index++;
    }

    if (sc->depth) {
        sc->depth--;
    }

    sc->key_status = 0;
    sc->key_code = 0;

    return 1;
}


static int
ngx_http_linguamate_trpc_key(void *data, const unsigned char *k, size_t len)
{
    ngx_http_linguamate_trpc_scan_t  *sc = data;

    sc->key_status = 0;
    sc->key_code = 0;

    if (sc->depth == 2 && len == 5 && ngx_strncmp(k, "error", 5) == 0) {
        sc->in_error = 1;
        return 1;
    }

    if (!sc->in_error) {
        return 1;
    }

    if (len == 10 && ngx_strncmp(k, "httpStatus", 10) == 0) {
        sc->key_status = 1;

    } else if (len == 4 && ngx_strncmp(k, "code", 4) == 0) {
        sc->key_code = 1;
    }

    return 1;
}


static void
ngx_http_linguamate_trpc_fail(ngx_http_linguamate_trpc_scan_t *sc)
{
    if (sc->index < NGX_HTTP_LINGUAMATE_TRPC_SCAN_BITS) {
        sc->failed |= (uint64_t) 1 << sc->index;
    }
}


static int
ngx_http_linguamate_trpc_string(void *data, const unsigned char *s,
    size_t len)
{
    ngx_http_linguamate_trpc_scan_t  *sc = data;

    if (sc->in_error && sc->key_code
        && ((len == 12 && ngx_strncmp(s, "UNAUTHORIZED", 12) == 0)
            || (len == 11 && ngx_strncmp(s, "BAD_REQUEST", 11) == 0)))
    {
        ngx_http_linguamate_trpc_fail(sc);
    }

    sc->key_status = 0;
    sc->key_code = 0;

    return 1;
}


static int
ngx_http_linguamate_trpc_number(void *data, const char *n, size_t len)
{
    ngx_http_linguamate_trpc_scan_t  *sc = data;

    if (sc->in_error && sc->key_status && len == 3
        && (ngx_strncmp(n, "400", 3) == 0 || ngx_strncmp(n, "401", 3) == 0))
    {
        ngx_http_linguamate_trpc_fail(sc);
    }

    sc->key_status = 0;
    sc->key_code = 0;

    return 1;
}


static int
ngx_http_linguamate_trpc_scalar(void *data)
{
    ngx_http_linguamate_trpc_scan_t  *sc = data;

    sc->key_status = 0;
    sc->key_code = 0;

    return 1;
}


static int
ngx_http_linguamate_trpc_bool(void *data, int b)
{
    return ngx_http_linguamate_trpc_scalar(data);
}
