/*
 * Copyright (C) ngx_linguamate developers
 *
 * A sliding window log kept in a shared memory node: the times of the
 * events still inside the window, in a ring that grows on demand.
 */

#ifndef _NGX_HTTP_LINGUAMATE_WINDOW_H_INCLUDED_
#define _NGX_HTTP_LINGUAMATE_WINDOW_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_http_linguamate_shm.h"


#define NGX_HTTP_LINGUAMATE_RING_MIN  4


typedef struct {
    uint32_t                    cap;
    uint32_t                    head;
    uint32_t                    count;
    uint32_t                    pad;
    uint32_t                    ring[1];
} ngx_http_linguamate_window_t;


/* the window of a node whose value starts with "off" bytes of its own */
#define ngx_http_linguamate_node_window(node, off)                           \
    ((ngx_http_linguamate_window_t *)                                        \
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


#endif /* _NGX_HTTP_LINGUAMATE_WINDOW_H_INCLUDED_ */
