/*
 * Copyright (C) ngx_linguamate developers
 *
 * The shared-state core: named shared memory zones holding keyed nodes in
 * an rbtree with an LRU queue, in the manner of nginx's limit_req.
 */

#ifndef _NGX_HTTP_LINGUAMATE_SHM_H_INCLUDED_
#define _NGX_HTTP_LINGUAMATE_SHM_H_INCLUDED_


#include "ngx_http_linguamate_module.h"


#define NGX_HTTP_LINGUAMATE_ZONE_LIMIT    1
#define NGX_HTTP_LINGUAMATE_ZONE_LOCKOUT  2
#define NGX_HTTP_LINGUAMATE_ZONE_SESSION  3
#define NGX_HTTP_LINGUAMATE_ZONE_METRICS  4
#define NGX_HTTP_LINGUAMATE_ZONE_BREAKERS 5
#define NGX_HTTP_LINGUAMATE_ZONE_FLAGS    6

/* at most this many entries are evicted to make room for one */
#define NGX_HTTP_LINGUAMATE_EVICT_MAX     8


typedef struct {
    ngx_rbtree_t                 rbtree;
    ngx_rbtree_node_t            sentinel;
    ngx_queue_t                  queue;         /* LRU: head is newest */
    ngx_atomic_t                 rejected;      /* requests refused */
    ngx_atomic_t                 evicted;       /* live entries dropped */
    ngx_atomic_t                 nodes;
    ngx_atomic_t                 generation;    /* bumped on every change */
    ngx_msec_t                   evict_logged;
    ngx_uint_t                   kind;
    void                        *data;          /* the kind's own state */
} ngx_http_linguamate_shctx_t;


/*
 * A node follows its ngx_rbtree_node_t; "data" holds the value ("vlen"
 * bytes, 8-byte aligned) and then the key ("len" bytes).
 */
typedef struct {
    u_char                       color;
    u_char                       dummy;
    u_short                      len;
    uint32_t                     vlen;
    ngx_queue_t                  queue;
    ngx_msec_t                   expire;        /* ngx_current_msec */
    u_char                       data[1];
} ngx_http_linguamate_node_t;


struct ngx_http_linguamate_zone_s {
    ngx_str_t                    name;
    ngx_uint_t                   kind;
    ngx_shm_zone_t              *shm_zone;
    ngx_http_linguamate_shctx_t *sh;
    ngx_slab_pool_t             *shpool;

    /* this worker's "could not allocate" lines: at most one a second */
    ngx_msec_t                   nomem_logged;
    ngx_uint_t                   nomem;

    /* what must not change across a reload, checked by init_zone */
    ngx_str_t                    signature;

    void                        *data;          /* the kind's own conf */

    /* what of it is kept across restarts (state.c), NULL: nothing */
    struct ngx_http_linguamate_state_s  *state;

    /* called in the master when the zone starts empty (not on reload) */
    ngx_int_t                  (*init_fresh)(ngx_http_linguamate_zone_t *z,
                                             ngx_log_t *log);
    /* may this live node be evicted to make room?  NULL: yes */
    ngx_uint_t                 (*evictable)(ngx_http_linguamate_node_t *n);

    /* called in the master when a reload keeps the zone */
    ngx_int_t                  (*init_kept)(ngx_http_linguamate_zone_t *z,
                                            ngx_log_t *log);
};


#define ngx_http_linguamate_node_value(node)  ((void *) (node)->data)
#define ngx_http_linguamate_node_key(node)    ((node)->data + (node)->vlen)


ngx_http_linguamate_zone_t *ngx_http_linguamate_zone_add(ngx_conf_t *cf,
    ngx_http_linguamate_main_conf_t *lmcf, ngx_str_t *name,
    size_t size, ngx_uint_t kind, ngx_str_t *signature);
ssize_t ngx_http_linguamate_zone_size(ngx_conf_t *cf, ngx_str_t *zone,
    ngx_str_t *value);
ngx_http_linguamate_node_t *ngx_http_linguamate_node_lookup(
    ngx_http_linguamate_zone_t *zone, uint32_t hash, u_char *key, size_t len);
ngx_http_linguamate_node_t *ngx_http_linguamate_node_find(
    ngx_http_linguamate_zone_t *zone, uint32_t hash, u_char *key, size_t len);
ngx_http_linguamate_node_t *ngx_http_linguamate_node_alloc(
    ngx_http_linguamate_zone_t *zone, uint32_t hash, u_char *key, size_t len,
    size_t vlen, ngx_log_t *log);
void ngx_http_linguamate_node_free(ngx_http_linguamate_zone_t *zone,
    ngx_http_linguamate_node_t *ln);
void ngx_http_linguamate_zone_expire(ngx_http_linguamate_zone_t *zone,
    ngx_msec_t now, ngx_uint_t n);
size_t ngx_http_linguamate_node_size(size_t vlen, size_t len);
ngx_http_linguamate_zone_t *ngx_http_linguamate_zone_find(
    ngx_http_linguamate_main_conf_t *lmcf, ngx_str_t *name, ngx_uint_t kind);


#endif /* _NGX_HTTP_LINGUAMATE_SHM_H_INCLUDED_ */
