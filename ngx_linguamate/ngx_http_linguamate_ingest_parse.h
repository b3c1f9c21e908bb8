/*
 * Copyright (C) ngx_linguamate developers
 *
 * The ingest bodies, parsed (ingest_parse.c): the checks of a client log
 * batch (records, sig, sig.ts) and of an analytics batch, the HMAC of a
 * signed batch, and the bounded re-serialisation of a parsed value.
 * Over a yajl tree, the body's bytes and a pool; no request, no conf.
 */

#ifndef _NGX_HTTP_LINGUAMATE_INGEST_PARSE_H_INCLUDED_
#define _NGX_HTTP_LINGUAMATE_INGEST_PARSE_H_INCLUDED_


#include <yajl/yajl_tree.h>

#include "ngx_http_linguamate_module.h"


#define NGX_HTTP_LINGUAMATE_INGEST_BODY_MAX   (1024 * 1024)
#define NGX_HTTP_LINGUAMATE_INGEST_BATCH_MAX  100
#define NGX_HTTP_LINGUAMATE_INGEST_DEPTH      32
#define NGX_HTTP_LINGUAMATE_INGEST_SKEW_MS    (5 * 60 * 1000)
#define NGX_HTTP_LINGUAMATE_INGEST_PROBLEMS   20
#define NGX_HTTP_LINGUAMATE_INGEST_PROBLEM    192

/* a module event's extra fields must stay under 1 KB (log_event) */
#define NGX_HTTP_LINGUAMATE_INGEST_EXTRA      1000
#define NGX_HTTP_LINGUAMATE_INGEST_SHORT      64    /* ts, cat */
#define NGX_HTTP_LINGUAMATE_INGEST_EVT        128
#define NGX_HTTP_LINGUAMATE_INGEST_MSG        2048
#define NGX_HTTP_LINGUAMATE_INGEST_STRING     256   /* a value in data */

#define NGX_HTTP_LINGUAMATE_EVENT_NAME        128
#define NGX_HTTP_LINGUAMATE_EVENT_LINE        8192
#define NGX_HTTP_LINGUAMATE_EVENT_TIME_MAX    253402300799999LL

#define NGX_HTTP_LINGUAMATE_REDACTED          "\"[REDACTED]\""


typedef struct {
    const char                 *array;      /* "logs", "events" */
    u_char                     *start;
    u_char                     *pos;
    u_char                     *end;
    ngx_uint_t                  count;
    ngx_uint_t                  skew;       /* of them: sig.ts too far */
} ngx_http_linguamate_problems_t;


typedef void (*ngx_http_linguamate_check_pt)(yajl_val v, ngx_int_t i,
    ngx_http_linguamate_problems_t *pb);


typedef struct {
    ngx_str_t                   name;
    ngx_uint_t                  level;
    ngx_uint_t                  counter;
    ngx_uint_t                  security;
} ngx_http_linguamate_client_level_t;


ngx_int_t ngx_http_linguamate_numbers_ok(yajl_val v);
yajl_val ngx_http_linguamate_check_batch(yajl_val root,
    ngx_http_linguamate_problems_t *pb, ngx_http_linguamate_check_pt check);
void ngx_http_linguamate_check_logs(yajl_val root,
    ngx_http_linguamate_problems_t *pb, int64_t now);
yajl_val ngx_http_linguamate_member(yajl_val obj, const char *name,
    ngx_uint_t *dup);
ngx_http_linguamate_client_level_t *ngx_http_linguamate_client_level(
    const char *name);
ngx_int_t ngx_http_linguamate_signature_ok(ngx_pool_t *pool,
    ngx_str_t *key, ngx_str_t *body, yajl_val hmac);
u_char *ngx_http_linguamate_put_member(u_char *p, u_char *end,
    const char *name, yajl_val v, ngx_uint_t *cut);
size_t ngx_http_linguamate_utf8_cut(u_char *s, size_t len,
    size_t max);
u_char *ngx_http_linguamate_put_string(u_char *p, u_char *end,
    u_char *s, size_t len, size_t max);
u_char *ngx_http_linguamate_put_value(u_char *p, u_char *end,
    yajl_val v);
void ngx_http_linguamate_check_event(yajl_val ev, ngx_int_t i,
    ngx_http_linguamate_problems_t *pb);
ngx_int_t ngx_http_linguamate_event_time(yajl_val v, int64_t *ms);
ngx_int_t ngx_http_linguamate_problems_init(ngx_pool_t *pool,
    ngx_http_linguamate_problems_t *pb, const char *array);


#endif /* _NGX_HTTP_LINGUAMATE_INGEST_PARSE_H_INCLUDED_ */
