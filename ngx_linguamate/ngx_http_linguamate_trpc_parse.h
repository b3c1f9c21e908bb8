/*
 * Copyright (C) ngx_linguamate developers
 *
 * Parse layer: the streaming scan of a tRPC 207 batch answer (yajl),
 * fed the answer's bytes in any pieces; it finds which elements are
 * errors with httpStatus 400/401 or code UNAUTHORIZED / BAD_REQUEST
 * and which are results.  No request, no conf: trpc.c feeds it from its
 * body filter, fuzz/fuzz_trpc.c from the fuzzer's bytes.
 */

#ifndef _NGX_HTTP_LINGUAMATE_TRPC_PARSE_H_INCLUDED_
#define _NGX_HTTP_LINGUAMATE_TRPC_PARSE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>

#include <yajl/yajl_parse.h>


/* one bit per element of a batch: NGX_HTTP_LINGUAMATE_TRPC_MAX */
#define NGX_HTTP_LINGUAMATE_TRPC_SCAN_BITS  64

/* answers larger than this are not scanned */
#define NGX_HTTP_LINGUAMATE_TRPC_SCAN       (1024 * 1024)


/* the state of the scan of a 207 answer */
typedef struct {
    yajl_handle                 yajl;
    ngx_uint_t                  depth;
    ngx_uint_t                  index;      /* element of the array */
    ngx_uint_t                  bytes;
    uint64_t                    failed;     /* bit per element */
    uint64_t                    succeeded;
    unsigned                    in_error:1;
    unsigned                    key_status:1;
    unsigned                    key_code:1;
    unsigned                    broken:1;
} ngx_http_linguamate_trpc_scan_t;


ngx_http_linguamate_trpc_scan_t *ngx_http_linguamate_trpc_scan_create(
    ngx_pool_t *pool);
void ngx_http_linguamate_trpc_scan_feed(ngx_http_linguamate_trpc_scan_t *sc,
    const u_char *p, size_t len);
void ngx_http_linguamate_trpc_scan_break(ngx_http_linguamate_trpc_scan_t *sc);
void ngx_http_linguamate_trpc_scan_finish(
    ngx_http_linguamate_trpc_scan_t *sc, uint64_t auth, ngx_uint_t auth_n,
    ngx_uint_t *failed, ngx_uint_t *succeeded);


#endif /* _NGX_HTTP_LINGUAMATE_TRPC_PARSE_H_INCLUDED_ */
