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
#include "ngx_http_linguamate_shm.h"
#include "ngx_http_linguamate_window.h"


size_t
ngx_http_linguamate_window_vlen(size_t off, uint32_t cap)
{
    return off + offsetof(ngx_http_linguamate_window_t, ring)
           + cap * sizeof(uint32_t);
}


/*
 * The age of a stamp; a stamp a little "in the future" (written by a
 * worker whose cached clock is a few ms ahead) is 0 ms old, not 49 days.
 */

uint32_t
ngx_http_linguamate_window_age(uint32_t now, uint32_t stamp)
{
    return ((int32_t) (now - stamp) < 0) ? 0 : now - stamp;
}


void
ngx_http_linguamate_window_expire(ngx_http_linguamate_window_t *w,
    uint32_t now, ngx_msec_t window)
{
    while (w->count
           && ngx_http_linguamate_window_age(now, w->ring[w->head]) >= window)
    {
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
 * node twice its size (never two nodes for one key for longer than this
 * call).  The old node is kept out of eviction's reach while the new one
 * is allocated, and kept as it is when there is no room: its history is
 * never lost.  Returns the node to use (whose ring may still be full:
 * the caller checks count < cap), or NULL for a new key with no room.
 */

ngx_http_linguamate_node_t *
ngx_http_linguamate_window_reserve(ngx_http_linguamate_zone_t *zone,
    ngx_http_linguamate_node_t *node, size_t off, uint32_t max,
    uint32_t hash, ngx_str_t *key, ngx_log_t *log)
{
    uint32_t                       cap, j;
    ngx_http_linguamate_node_t    *grown;
    ngx_http_linguamate_window_t  *w, *nw;

    if (node == NULL) {
        cap = ngx_min(max, NGX_HTTP_LINGUAMATE_RING_MIN);

        node = ngx_http_linguamate_node_alloc(zone, hash, key->data,
                                  key->len,
                                  ngx_http_linguamate_window_vlen(off, cap),
                                  log);
        if (node == NULL) {
            return NULL;
        }

        w = ngx_http_linguamate_node_window(node, off);
        w->cap = cap;
        w->head = 0;
        w->count = 0;

        return node;
    }

    w = ngx_http_linguamate_node_window(node, off);

    if (w->count < w->cap || w->cap >= max) {
        return node;
    }

    cap = ngx_min(max, w->cap * 2);

    /* out of the LRU queue: the allocation below cannot evict it */

    ngx_queue_remove(&node->queue);
    ngx_queue_init(&node->queue);

    grown = ngx_http_linguamate_node_alloc(zone, hash, key->data, key->len,
                                  ngx_http_linguamate_window_vlen(off, cap),
                                  log);

    if (grown == NULL) {
        ngx_queue_insert_head(&zone->sh->queue, &node->queue);
        return node;
    }

    ngx_memcpy(ngx_http_linguamate_node_value(grown),
               ngx_http_linguamate_node_value(node), off);

    nw = ngx_http_linguamate_node_window(grown, off);
    nw->cap = cap;
    nw->head = 0;
    nw->count = w->count;

    for (j = 0; j < w->count; j++) {
        nw->ring[j] = w->ring[(w->head + j) % w->cap];
    }

    grown->expire = node->expire;

    ngx_http_linguamate_node_free(zone, node);

    return grown;
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
