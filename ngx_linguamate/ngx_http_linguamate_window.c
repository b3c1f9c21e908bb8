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


/*
 * The bucketed window, for limits above the exact range: per key a fixed
 * ring of 64 counters, bucket k counting the events of the milliseconds
 * [k * width, (k + 1) * width) of ngx_current_msec, the clock the log's
 * stamps come from.  width = ceil(window / 63), so that every bucket that
 * may still hold an event younger than "window" fits in the ring.
 *
 * Bucket k has left the window once its last millisecond is "window" old:
 * msec - ((k + 1) * width - 1) >= window.  The buckets still in it are
 * counted whole.  Every bucket but the oldest of them lies entirely inside
 * the last "window" ms, so the count is the exact sliding count plus the
 * events of the oldest bucket that are already older than the window:
 *
 *     exact <= count <= exact + (events of the oldest bucket)
 *
 * A decision "count + weight <= max" therefore never lets more than max
 * through in any sliding window (the error is one-sided), and refuses a
 * request early by at most the events of the oldest bucket, which at a
 * steady rate is max * width / window, about max / 63.
 *
 * Memory does not depend on the limit: a key costs one node of
 * sizeof(ngx_http_linguamate_buckets_t) (272 bytes) plus its key.  Counts
 * are uint32_t: a bucket never holds more than the limit (at most 10^8).
 * ngx_msec_t must not wrap (64 bits); a clock that goes back by more than
 * the ring covers starts the ring afresh.  The zone's mutex is held.
 */

size_t
ngx_http_linguamate_buckets_vlen(size_t off)
{
    return off + sizeof(ngx_http_linguamate_buckets_t);
}


static uint32_t
ngx_http_linguamate_buckets_width(ngx_msec_t window)
{
    uint32_t  width;

    width = (uint32_t) ((window + NGX_HTTP_LINGUAMATE_WINDOW_BUCKETS - 2)
                        / (NGX_HTTP_LINGUAMATE_WINDOW_BUCKETS - 1));

    /* windows are 1 s at least: never 0, whatever the caller */
    return width ? width : 1;
}


/*
 * Another window (a reload changed it): each old bucket's events are put
 * at its last millisecond, or now if that is later than now, in the new
 * bucket holding it.  "Now" is the later of msec and the start of the
 * newest bucket (a time a worker has seen): no event happened after it.
 * An event only ever moves later, so nothing leaves the window earlier
 * than it would have: still never more than the limit.
 */

static void
ngx_http_linguamate_buckets_rescale(ngx_http_linguamate_buckets_t *b,
    uint32_t width, ngx_msec_t msec)
{
    uint32_t  count[NGX_HTTP_LINGUAMATE_WINDOW_BUCKETS];
    uint64_t  j, k, last, now, newest;

    ngx_memzero(count, sizeof(count));

    if (b->width == 0) {
        newest = msec / width;
        goto done;
    }

    now = ngx_max((uint64_t) msec, b->newest * b->width);
    newest = now / width;

    for (j = 0; j < NGX_HTTP_LINGUAMATE_WINDOW_BUCKETS && j <= b->newest;
         j++)
    {
        k = b->newest - j;
        last = ngx_min((k + 1) * b->width - 1, now) / width;

        if (newest - last < NGX_HTTP_LINGUAMATE_WINDOW_BUCKETS) {
            count[last % NGX_HTTP_LINGUAMATE_WINDOW_BUCKETS]
                += b->count[k % NGX_HTTP_LINGUAMATE_WINDOW_BUCKETS];
        }
    }

done:

    ngx_memcpy(b->count, count, sizeof(count));
    b->newest = newest;
    b->width = width;
}


/*
 * Move the ring on to msec: buckets passed since the last call are
 * emptied.  Returns the number of the oldest bucket still in the window;
 * the buckets from it to b->newest are the ones to count.  A worker whose
 * cached clock lags a little counts into the newest bucket, as the log
 * keeps its stamps in order.
 */

uint64_t
ngx_http_linguamate_buckets_advance(ngx_http_linguamate_buckets_t *b,
    ngx_msec_t msec, ngx_msec_t window)
{
    uint32_t  width;
    uint64_t  n, k, first;

    width = ngx_http_linguamate_buckets_width(window);

    if (b->width != width) {
        ngx_http_linguamate_buckets_rescale(b, width, msec);
    }

    n = msec / width;

    if (n > b->newest || b->newest - n >= NGX_HTTP_LINGUAMATE_WINDOW_BUCKETS)
    {
        if (n <= b->newest
            || n - b->newest >= NGX_HTTP_LINGUAMATE_WINDOW_BUCKETS)
        {
            ngx_memzero(b->count, sizeof(b->count));

        } else {
            for (k = b->newest + 1; k <= n; k++) {
                b->count[k % NGX_HTTP_LINGUAMATE_WINDOW_BUCKETS] = 0;
            }
        }

        b->newest = n;
    }

    first = (msec + 1 > window) ? (msec + 1 - window) / width : 0;

    if (first + NGX_HTTP_LINGUAMATE_WINDOW_BUCKETS <= b->newest) {
        first = b->newest - NGX_HTTP_LINGUAMATE_WINDOW_BUCKETS + 1;
    }

    return first;
}


uint64_t
ngx_http_linguamate_buckets_sum(ngx_http_linguamate_buckets_t *b,
    uint64_t first)
{
    uint64_t  k, sum;

    sum = 0;

    for (k = first; k <= b->newest; k++) {
        sum += b->count[k % NGX_HTTP_LINGUAMATE_WINDOW_BUCKETS];
    }

    return sum;
}


/* the ms until bucket k leaves the window */

ngx_msec_t
ngx_http_linguamate_buckets_leave(ngx_http_linguamate_buckets_t *b,
    uint64_t k, ngx_msec_t msec, ngx_msec_t window)
{
    uint64_t  gone;

    gone = (k + 1) * b->width - 1 + window;

    return gone > msec ? (ngx_msec_t) (gone - msec) : 0;
}


/* the ms until "need" of the counted events have left the window */

ngx_msec_t
ngx_http_linguamate_buckets_retry(ngx_http_linguamate_buckets_t *b,
    uint64_t first, ngx_msec_t msec, ngx_msec_t window, uint64_t need)
{
    uint64_t  k, freed;

    freed = 0;

    for (k = first; k < b->newest; k++) {
        freed += b->count[k % NGX_HTTP_LINGUAMATE_WINDOW_BUCKETS];

        if (freed >= need) {
            break;
        }
    }

    return ngx_http_linguamate_buckets_leave(b, k, msec, window);
}


/* the ms until every counted event has left: the newest one in use */

ngx_msec_t
ngx_http_linguamate_buckets_reset(ngx_http_linguamate_buckets_t *b,
    uint64_t first, ngx_msec_t msec, ngx_msec_t window)
{
    uint64_t  k;

    for (k = b->newest; k > first; k--) {
        if (b->count[k % NGX_HTTP_LINGUAMATE_WINDOW_BUCKETS]) {
            break;
        }
    }

    return ngx_http_linguamate_buckets_leave(b, k, msec, window);
}


/* take back n events counted in bucket k, if it is still in the ring */

void
ngx_http_linguamate_buckets_remove(ngx_http_linguamate_buckets_t *b,
    uint64_t k, uint32_t n)
{
    uint32_t  *c;

    if (k > b->newest || b->newest - k >= NGX_HTTP_LINGUAMATE_WINDOW_BUCKETS)
    {
        return;
    }

    c = &b->count[k % NGX_HTTP_LINGUAMATE_WINDOW_BUCKETS];
    *c = (*c > n) ? *c - n : 0;
}


/* a fresh ring holding the stamps of an expired log: each in its bucket */

void
ngx_http_linguamate_buckets_from_window(ngx_http_linguamate_buckets_t *b,
    ngx_http_linguamate_window_t *w, ngx_msec_t msec, ngx_msec_t window)
{
    uint32_t  j, age;
    uint64_t  k;

    b->width = 0;
    (void) ngx_http_linguamate_buckets_advance(b, msec, window);

    for (j = 0; j < w->count; j++) {
        age = ngx_http_linguamate_window_age((uint32_t) msec,
                                             w->ring[(w->head + j) % w->cap]);
        k = (msec > age ? msec - age : 0) / b->width;

        if (b->newest - k < NGX_HTTP_LINGUAMATE_WINDOW_BUCKETS) {
            b->count[k % NGX_HTTP_LINGUAMATE_WINDOW_BUCKETS]++;
        }
    }
}


/*
 * An empty log of w->cap stamps filled from the buckets first..newest,
 * each event stamped with the last millisecond of its bucket (never later
 * than now): no event leaves earlier than counted.  If there are more
 * than the ring holds, the newest are kept; they alone decide when the
 * next request may pass.
 */

void
ngx_http_linguamate_buckets_to_window(ngx_http_linguamate_buckets_t *b,
    uint64_t first, ngx_http_linguamate_window_t *w, ngx_msec_t msec)
{
    uint32_t  stamp;
    uint64_t  k, c, sum, skip, take;

    sum = ngx_http_linguamate_buckets_sum(b, first);
    skip = sum > w->cap ? sum - w->cap : 0;

    w->head = 0;
    w->count = 0;

    for (k = first; k <= b->newest; k++) {
        c = b->count[k % NGX_HTTP_LINGUAMATE_WINDOW_BUCKETS];
        take = ngx_min(c, skip);
        skip -= take;
        c -= take;

        stamp = (uint32_t) ngx_min((k + 1) * b->width - 1, (uint64_t) msec);

        while (c--) {
            w->ring[w->count++] = stamp;
        }
    }
}
