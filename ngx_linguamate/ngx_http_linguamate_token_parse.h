/*
 * Copyright (C) ngx_linguamate developers
 *
 * Parse layer: the JWT token reader (moved from ngx_http_linguamate_jwt.c,
 * unchanged): the base64url decoder of the segments, the strict one-pass
 * JSON reader of the header and the claims into fixed arrays of members
 * (ngx_http_linguamate_jparse()), and the header's checks.  Pure
 * functions over bytes and the small structs below: no request, no conf,
 * no logging; nginx core only (ngx_str_t, ngx_pool_t).
 * fuzz/fuzz_jread.c links this object and holds it to the yajl-based
 * reading it replaced.
 */

#ifndef _NGX_HTTP_LINGUAMATE_TOKEN_PARSE_H_INCLUDED_
#define _NGX_HTTP_LINGUAMATE_TOKEN_PARSE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>


#define NGX_HTTP_LINGUAMATE_JSON_MAX_DEPTH  16



/* what one member of the header or the claims held (the last of a name) */
typedef enum {
    NGX_HTTP_LINGUAMATE_JV_NONE = 0,
    NGX_HTTP_LINGUAMATE_JV_STRING,
    NGX_HTTP_LINGUAMATE_JV_INTEGER,         /* in long long, not LLONG_MIN */
    NGX_HTTP_LINGUAMATE_JV_NUMBER,          /* any other number */
    NGX_HTTP_LINGUAMATE_JV_TRUE,
    NGX_HTTP_LINGUAMATE_JV_FALSE,
    NGX_HTTP_LINGUAMATE_JV_OTHER            /* null, object, array */
} ngx_http_linguamate_jv_type_e;


typedef struct {
    ngx_http_linguamate_jv_type_e  type;
    ngx_str_t                      str;     /* string, or a number's text */
    int64_t                        num;
} ngx_http_linguamate_jv_t;


/* the members of the header and of the claims that are read */
typedef enum {
    NGX_HTTP_LINGUAMATE_H_ALG = 0,
    NGX_HTTP_LINGUAMATE_H_TYP,
    NGX_HTTP_LINGUAMATE_H_CRIT,
    NGX_HTTP_LINGUAMATE_H_N
} ngx_http_linguamate_header_e;


typedef enum {
    NGX_HTTP_LINGUAMATE_C_EXP = 0,
    NGX_HTTP_LINGUAMATE_C_NBF,
    NGX_HTTP_LINGUAMATE_C_IAT,
    NGX_HTTP_LINGUAMATE_C_IAT_MS,
    NGX_HTTP_LINGUAMATE_C_SUB,
    NGX_HTTP_LINGUAMATE_C_SID,
    NGX_HTTP_LINGUAMATE_C_TYPE,
    NGX_HTTP_LINGUAMATE_C_JTI,
    NGX_HTTP_LINGUAMATE_C_N
} ngx_http_linguamate_claim_e;


typedef struct {
    ngx_pool_t                 *pool;
    u_char                     *end;        /* of the text: a NUL byte */
    ngx_str_t                  *names;      /* the members wanted */
    ngx_uint_t                  n;
    ngx_http_linguamate_jv_t   *values;     /* n of them */
    ngx_int_t                   member;     /* of names, at depth 1; or -1 */
    ngx_http_linguamate_jv_t    first_alg;  /* of a header */
    unsigned                    first_alg_wanted:1;
    unsigned                    first_alg_next:1;
    unsigned                    lenient:1;  /* read as yajl read a header */
    unsigned                    lax:1;      /* what JSON.parse refuses */
    unsigned                    refused:1;  /* what jansson refuses */
    unsigned                    escaped:1;  /* the last string's escapes */
} ngx_http_linguamate_jparse_t;


/* the names of the members read, in the order of the enums above */
extern ngx_str_t  ngx_http_linguamate_header_names[];
extern ngx_str_t  ngx_http_linguamate_claim_names[];


ngx_int_t ngx_http_linguamate_b64url(u_char *dst, u_char *src, size_t len);
ngx_uint_t ngx_http_linguamate_jwt_header_ok(ngx_http_linguamate_jv_t *hv);
ngx_int_t ngx_http_linguamate_jparse(ngx_http_linguamate_jparse_t *jp,
    ngx_pool_t *pool, ngx_str_t *text, ngx_str_t *names,
    ngx_http_linguamate_jv_t *values, ngx_uint_t n, ngx_uint_t max_depth);


#endif /* _NGX_HTTP_LINGUAMATE_TOKEN_PARSE_H_INCLUDED_ */
