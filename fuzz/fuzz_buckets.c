/*
 * Copyright (C) ngx_linguamate developers
 *
 * libFuzzer harness, differential: the bucketed window of
 * ngx_http_linguamate_window.c (linked) against an exact log of the same
 * requests.  The input is a window (1 s to about 66 s), a limit (1 to
 * 4096), a clock offset, then steps of 3 bytes: how far the clock moves
 * (0 to 255 ms, or that many buckets), a weight (1 to 4), and an action:
 * a request, a request taken back (undo), a new window (a reload), or a
 * round trip through a log (the conversions across the exact range).
 *
 * After every step it checks the stated bound: the buckets count every
 * request of the last "window" ms, and beyond that exactly the requests
 * of the oldest bucket that are already older (so more than the limit
 * never pass, and a refusal is early by at most that bucket); that
 * Retry-After is the first moment the request would pass; that the
 * conversions keep every live request.  A failed check aborts.
 */

#include "fuzz_ngx.h"

#include "ngx_http_linguamate_window.h"


#define FUZZ_EVENTS  2048

/* a failed check names itself */
#define fuzz_fail()                                                          \
    do {                                                                     \
        (void) fprintf(stderr, "fuzz_buckets: check at line %d failed\n",  \
                       __LINE__);                                            \
        abort();                                                             \
    } while (0)


typedef struct {
    ngx_msec_t                  t;
    uint32_t                    n;
} fuzz_event_t;


static fuzz_event_t  ev[FUZZ_EVENTS];
static ngx_uint_t    nev;


/* the exact count of the last "window" ms */

static uint64_t
fuzz_exact(ngx_msec_t msec, ngx_msec_t window)
{
    uint64_t    sum;
    ngx_uint_t  i;

    sum = 0;

    for (i = 0; i < nev; i++) {
        if (msec - ev[i].t < window) {
            sum += ev[i].n;
        }
    }

    return sum;
}


/* the requests of bucket k already older than "window" */

static uint64_t
fuzz_stale(uint64_t k, uint32_t width, ngx_msec_t msec, ngx_msec_t window)
{
    uint64_t    sum;
    ngx_uint_t  i;

    sum = 0;

    for (i = 0; i < nev; i++) {
        if (ev[i].t / width == k && msec - ev[i].t >= window) {
            sum += ev[i].n;
        }
    }

    return sum;
}


/* would a request of weight n pass at msec?  On a copy: nothing changes */

static ngx_uint_t
fuzz_passes(ngx_http_linguamate_buckets_t *b, ngx_msec_t msec,
    ngx_msec_t window, uint64_t max, uint32_t n)
{
    uint64_t                       first;
    ngx_http_linguamate_buckets_t  c;

    c = *b;
    first = ngx_http_linguamate_buckets_advance(&c, msec, window);

    return ngx_http_linguamate_buckets_sum(&c, first) + n <= max;
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t                          i;
    uint32_t                        n, cap;
    uint64_t                        max, first, sum, exact, stale, live;
    ngx_msec_t                      msec, window, retry;
    ngx_uint_t                      exact_window, j, k;
    ngx_http_linguamate_buckets_t   b, from;
    ngx_http_linguamate_window_t   *w;

    static uint32_t                 log[sizeof(ngx_http_linguamate_window_t)
                                        / sizeof(uint32_t) + FUZZ_EVENTS * 4];

    if (size < 6) {
        return 0;
    }

    window = 1000 + ((data[0] << 8 | data[1]) % 65000);
    max = 1 + ((data[2] << 8 | data[3]) % 4096);
    msec = ((ngx_msec_t) 1 << 40) + (data[4] << 8 | data[5]);

    ngx_memzero(&b, sizeof(b));
    nev = 0;

    /* no window change yet: the upper bound is then an equality */
    exact_window = 1;

    for (i = 6; i + 3 <= size; i += 3) {

        msec += (data[i] & 0x80) ? (ngx_msec_t) (data[i] & 0x7f) * b.width
                                 : data[i];
        n = 1 + (data[i + 1] & 3);

        first = ngx_http_linguamate_buckets_advance(&b, msec, window);
        sum = ngx_http_linguamate_buckets_sum(&b, first);
        exact = fuzz_exact(msec, window);

#ifdef FUZZ_TRACE
        (void) fprintf(stderr, "step %zu: msec %lu window %lu width %u "
                       "newest %lu first %lu sum %lu exact %lu action %d "
                       "n %u\n", i, (unsigned long) msec,
                       (unsigned long) window, b.width,
                       (unsigned long) b.newest, (unsigned long) first,
                       (unsigned long) sum, (unsigned long) exact,
                       data[i + 2] % 8, n);
#endif

        /* never fewer than the exact count: never more than max pass */
        if (sum < exact) {
            fuzz_fail();
        }

        /* and beyond it, only the oldest bucket's stale requests */
        stale = fuzz_stale(first, b.width, msec, window);

        if (exact_window && sum != exact + stale) {
            fuzz_fail();
        }

        if (b.newest - first >= NGX_HTTP_LINGUAMATE_WINDOW_BUCKETS) {
            fuzz_fail();
        }

        switch (data[i + 2] % 8) {

        case 6:
            /*
             * a reload with another window: what left the old one is
             * forgotten (by the log too); the rest must still count
             */
            for (j = 0, k = 0; j < nev; j++) {
                if (msec - ev[j].t < window) {
                    ev[k++] = ev[j];
                }
            }

            nev = k;
            window = 1000 + ((data[i + 1] << 8 | data[i + 2]) % 65000);
            exact_window = 0;
            continue;

        case 7:
            /* a round trip through a log, as two reloads across 10,000 */
            cap = (uint32_t) ngx_min(ngx_max(sum,
                                             NGX_HTTP_LINGUAMATE_RING_MIN),
                                     max);
            w = (ngx_http_linguamate_window_t *) log;
            w->cap = cap;
            ngx_http_linguamate_buckets_to_window(&b, first, w, msec);

            ngx_http_linguamate_window_expire(w, (uint32_t) msec, window);

            /* every live request is still there, up to the ring */
            if (w->count < ngx_min(exact, (uint64_t) cap)) {
                fuzz_fail();
            }

            /* and back: every stamp in its bucket, all of them live */
            ngx_memzero(&from, sizeof(from));
            ngx_http_linguamate_buckets_from_window(&from, w, msec, window);
            live = ngx_http_linguamate_buckets_sum(&from,
                       ngx_http_linguamate_buckets_advance(&from, msec,
                                                           window));
            if (live != w->count) {
                fuzz_fail();
            }

            continue;

        default:
            break;
        }

        if (sum + n > max) {
            if (n > max) {
                continue;
            }

            retry = ngx_http_linguamate_buckets_retry(&b, first, msec, window,
                                                      sum + n - max);

            /* Retry-After: it passes then, and not a millisecond before */
            if (retry == 0
                || !fuzz_passes(&b, msec + retry, window, max, n)
                || fuzz_passes(&b, msec + retry - 1, window, max, n))
            {
                fuzz_fail();
            }

            continue;
        }

        if (nev == FUZZ_EVENTS) {
            break;
        }

        b.count[b.newest % NGX_HTTP_LINGUAMATE_WINDOW_BUCKETS] += n;

        if (data[i + 2] % 8 == 5) {
            /* a later limit refused it: taken back */
            ngx_http_linguamate_buckets_remove(&b, b.newest, n);
            continue;
        }

        ev[nev].t = msec;
        ev[nev].n = n;
        nev++;

        /* the reset is when the newest counted bucket has left */
        if (ngx_http_linguamate_buckets_reset(&b, first, msec, window)
            != ngx_http_linguamate_buckets_leave(&b, b.newest, msec, window))
        {
            fuzz_fail();
        }
    }

    return 0;
}
