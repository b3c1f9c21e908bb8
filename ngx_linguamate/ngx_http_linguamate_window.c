/*
 * Copyright (C) ngx_linguamate developers
 *
 * The sliding window log that rate limits and login lockouts share.
 *
 * Stamps are the low 32 bits of ngx_current_msec, the monotonic clock all
 * workers share; ages are computed modulo 2^32, which is exact because no
 * stamp outlives its window (a day at most) and nodes whose every stamp
 * expired are reset before use.  The ring starts with room for 4 stamps
 * and doubles up to the limit, so a key seen once costs one small node.
 * Every function expects the zone's mutex to be held.
 */


#include "ngx_http_linguamate_module.h"
#include "ngx_http_linguamate_window.h"


size_t
ngx_http_linguamate_window_vlen(size_t off, uint32_t cap)
{
    return off + offsetof(ngx_http_linguamate_window_t, ring)
           + cap * sizeof(uint32_t);
}


void
ngx_http_linguamate_window_expire(ngx_http_linguamate_window_t *w,
    uint32_t now, ngx_msec_t window)
{
    while (w->count && (uint32_t) (now - w->ring[w->head]) >= window) {
        w->head = (w->head + 1) % w->cap;
        w->count--;
    }
}


uint32_t
ngx_http_linguamate_window_oldest(ngx_http_linguamate_window_t *w)
{
    return w->ring[w->head];
}


uint32_t
ngx_http_linguamate_window_newest(ngx_http_linguamate_window_t *w)
{
    return w->ring[(w->head + w->count - 1) % w->cap];
}


/*
 * Make room for one more stamp, up to "max": a full ring is replaced by a
 * node twice its size (never two nodes for one key).  Returns the node to
 * use, or NULL when the zone had no room even after eviction (the key's
 * history is then lost and the caller lets the request through).
 */

ngx_http_linguamate_node_t *
ngx_http_linguamate_window_reserve(ngx_http_linguamate_zone_t *zone,
    ngx_http_linguamate_node_t *node, size_t off, uint32_t max,
    uint32_t hash, ngx_str_t *key, ngx_log_t *log)
{
    u_char                        prefix[64];
    uint32_t                      cap, count, j;
    uint32_t                      stamps[NGX_HTTP_LINGUAMATE_LIMIT_MAX * 2];
    ngx_http_linguamate_window_t *w;

    if (node) {
        w = ngx_http_linguamate_node_window(node, off);

        if (w->count < w->cap || w->cap >= max) {
            return node;
        }

        cap = ngx_min(max, w->cap * 2);
        count = w->count;

        for (j = 0; j < count; j++) {
            stamps[j] = w->ring[(w->head + j) % w->cap];
        }

        ngx_memcpy(prefix, ngx_http_linguamate_node_value(node), off);

        ngx_http_linguamate_node_free(zone, node);

    } else {
        cap = ngx_min(max, NGX_HTTP_LINGUAMATE_RING_MIN);
        count = 0;
        ngx_memzero(prefix, off);
    }

    node = ngx_http_linguamate_node_alloc(zone, hash, key->data, key->len,
                                  ngx_http_linguamate_window_vlen(off, cap),
                                  log);
    if (node == NULL) {
        return NULL;
    }

    ngx_memcpy(ngx_http_linguamate_node_value(node), prefix, off);

    w = ngx_http_linguamate_node_window(node, off);
    w->cap = cap;
    w->head = 0;
    w->count = count;
    ngx_memcpy(w->ring, stamps, count * sizeof(uint32_t));

    return node;
}


/* append a stamp, kept in order even if this worker's clock lags a bit */

uint32_t
ngx_http_linguamate_window_push(ngx_http_linguamate_window_t *w,
    uint32_t now)
{
    uint32_t  newest;

    if (w->count) {
        newest = ngx_http_linguamate_window_newest(w);

        if ((int32_t) (now - newest) < 0) {
            now = newest;
        }
    }

    w->ring[(w->head + w->count) % w->cap] = now;
    w->count++;

    return now;
}


/* take back one stamp (searched from the newest end) */

void
ngx_http_linguamate_window_remove(ngx_http_linguamate_window_t *w,
    uint32_t stamp)
{
    uint32_t  j, k, idx, next;

    for (j = w->count; j > 0; j--) {
        idx = (w->head + j - 1) % w->cap;

        if (w->ring[idx] != stamp) {
            continue;
        }

        for (k = j; k < w->count; k++) {
            next = (w->head + k) % w->cap;
            w->ring[idx] = w->ring[next];
            idx = next;
        }

        w->count--;
        return;
    }
}
