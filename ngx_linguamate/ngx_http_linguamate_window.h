/*
 * Copyright (C) ngx_linguamate developers
 *
 * A sliding window log kept in a shared memory node: the times of the
 * events still inside the window, in a ring that grows on demand; and a
 * bucketed window: a fixed ring of counters, for counts too large to log.
 */

#ifndef _NGX_HTTP_LINGUAMATE_WINDOW_H_INCLUDED_
#define _NGX_HTTP_LINGUAMATE_WINDOW_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_http_linguamate_shm.h"


#define NGX_HTTP_LINGUAMATE_RING_MIN  4

/* counters of a bucketed window: its width is ceil(window / 63) ms */
#define NGX_HTTP_LINGUAMATE_WINDOW_BUCKETS  64


typedef struct {
    uint32_t                    cap;
    uint32_t                    head;
    uint32_t                    count;
    uint32_t                    pad;
    uint32_t                    ring[1];
} ngx_http_linguamate_window_t;


typedef struct {
    uint64_t                    newest;     /* its number: msec / width */
    uint32_t                    width;      /* ms per bucket, 0: unused */
    uint32_t                    pad;
    uint32_t                    count[NGX_HTTP_LINGUAMATE_WINDOW_BUCKETS];
} ngx_http_linguamate_buckets_t;


/* the window of a node whose value starts with "off" bytes of its own */
#define ngx_http_linguamate_node_window(node, off)                           \
    ((ngx_http_linguamate_window_t *)                                        \
         ((u_char *) ngx_http_linguamate_node_value(node) + (off)))

#define ngx_http_linguamate_node_buckets(node, off)                          \
    ((ngx_http_linguamate_buckets_t *)                                       \
         ((u_char *) ngx_http_linguamate_node_value(node) + (off)))


size_t ngx_http_linguamate_window_vlen(size_t off, uint32_t cap);
uint32_t ngx_http_linguamate_window_age(uint32_t now, uint32_t stamp);
void ngx_http_linguamate_window_expire(ngx_http_linguamate_window_t *w,
    uint32_t now, ngx_msec_t window);
uint32_t ngx_http_linguamate_window_oldest(ngx_http_linguamate_window_t *w);
uint32_t ngx_http_linguamate_window_newest(ngx_http_linguamate_window_t *w);
ngx_http_linguamate_node_t *ngx_http_linguamate_window_reserve(
    ngx_http_linguamate_zone_t *zone, ngx_http_linguamate_node_t *node,
    size_t off, uint32_t max, uint32_t hash, ngx_str_t *key, ngx_log_t *log);
uint32_t ngx_http_linguamate_window_push(ngx_http_linguamate_window_t *w,
    uint32_t now);
void ngx_http_linguamate_window_remove(ngx_http_linguamate_window_t *w,
    uint32_t stamp);

size_t ngx_http_linguamate_buckets_vlen(size_t off);
uint64_t ngx_http_linguamate_buckets_advance(ngx_http_linguamate_buckets_t *b,
    ngx_msec_t msec, ngx_msec_t window);
uint64_t ngx_http_linguamate_buckets_sum(ngx_http_linguamate_buckets_t *b,
    uint64_t first);
ngx_msec_t ngx_http_linguamate_buckets_leave(ngx_http_linguamate_buckets_t *b,
    uint64_t k, ngx_msec_t msec, ngx_msec_t window);
ngx_msec_t ngx_http_linguamate_buckets_retry(ngx_http_linguamate_buckets_t *b,
    uint64_t first, ngx_msec_t msec, ngx_msec_t window, uint64_t need);
ngx_msec_t ngx_http_linguamate_buckets_reset(ngx_http_linguamate_buckets_t *b,
    uint64_t first, ngx_msec_t msec, ngx_msec_t window);
void ngx_http_linguamate_buckets_remove(ngx_http_linguamate_buckets_t *b,
    uint64_t k, uint32_t n);
void ngx_http_linguamate_buckets_from_window(
    ngx_http_linguamate_buckets_t *b, ngx_http_linguamate_window_t *w,
    ngx_msec_t msec, ngx_msec_t window);
void ngx_http_linguamate_buckets_to_window(ngx_http_linguamate_buckets_t *b,
    uint64_t first, ngx_http_linguamate_window_t *w, ngx_msec_t msec);


#endif /* _NGX_HTTP_LINGUAMATE_WINDOW_H_INCLUDED_ */
