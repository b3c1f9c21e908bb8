/*
 * Copyright (C) ngx_linguamate developers
 *
 * Parse layer of the lockout: the account(s) of a login body, read as a
 * stream (login_parse.c).  Fed the body's bytes piece by piece, it keeps
 * the "email" strings where a login names its account, trimmed and
 * lower-cased, or the reason the edge cannot read the body as the app
 * will.  Pure: nginx core types and yajl only, no request.
 */

#ifndef _NGX_HTTP_LINGUAMATE_LOGIN_PARSE_H_INCLUDED_
#define _NGX_HTTP_LINGUAMATE_LOGIN_PARSE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>

#include <yajl/yajl_parse.h>


#define NGX_HTTP_LINGUAMATE_EMAIL_MAX      254
#define NGX_HTTP_LINGUAMATE_JSON_DEPTH     32
#define NGX_HTTP_LINGUAMATE_ACCOUNTS       64
#define NGX_HTTP_LINGUAMATE_KEY_SHORT      24


/*
 * Why the edge cannot read the account of a login body the way the app
 * will (tRPC's fetch Request.json(), then superjson.deserialize()): a
 * tRPC call with an auth procedure is then refused, never passed on
 * with the client address alone counted.
 */

enum {
    NGX_HTTP_LINGUAMATE_UNREAD_NONE = 0,
    NGX_HTTP_LINGUAMATE_UNREAD_TYPE,
    NGX_HTTP_LINGUAMATE_UNREAD_ENCODING,
    NGX_HTTP_LINGUAMATE_UNREAD_FILE,
    NGX_HTTP_LINGUAMATE_UNREAD_BOM,
    NGX_HTTP_LINGUAMATE_UNREAD_UTF8,
    NGX_HTTP_LINGUAMATE_UNREAD_SURROGATE,
    NGX_HTTP_LINGUAMATE_UNREAD_JSON,
    NGX_HTTP_LINGUAMATE_UNREAD_DEPTH,
    NGX_HTTP_LINGUAMATE_UNREAD_META,
    NGX_HTTP_LINGUAMATE_UNREAD_NOT_STRING,
    NGX_HTTP_LINGUAMATE_UNREAD_CONTROL,
    NGX_HTTP_LINGUAMATE_UNREAD_ASCII,
    NGX_HTTP_LINGUAMATE_UNREAD_EMPTY,
    NGX_HTTP_LINGUAMATE_UNREAD_LONG,
    NGX_HTTP_LINGUAMATE_UNREAD_ACCOUNTS,
    NGX_HTTP_LINGUAMATE_NUNREAD
};


/* the reader's state: zeroed by the caller, then login_start() */

typedef struct {
    ngx_pool_t                 *pool;
    ngx_uint_t                  depth;
    /* key[d]: the current key of the object at depth d; parent[d]: the
       key the container at depth d sits under (both cut to 24 bytes) */
    u_char                      key[NGX_HTTP_LINGUAMATE_JSON_DEPTH + 2]
                                   [NGX_HTTP_LINGUAMATE_KEY_SHORT];
    size_t                      key_len[NGX_HTTP_LINGUAMATE_JSON_DEPTH + 2];
    u_char                      parent[NGX_HTTP_LINGUAMATE_JSON_DEPTH + 2]
                                      [NGX_HTTP_LINGUAMATE_KEY_SHORT];
    size_t                      parent_len[NGX_HTTP_LINGUAMATE_JSON_DEPTH + 2];
    /* the accounts, trimmed and lower-cased */
    ngx_str_t                   email[NGX_HTTP_LINGUAMATE_ACCOUNTS];
    ngx_uint_t                  n;
    ngx_uint_t                  unread;
    /* depth of an input's meta.values, of its meta.referentialEqualities */
    ngx_uint_t                  values;
    ngx_uint_t                  refs;
    /* the bytes, across buffers: UTF-8 and \u escapes */
    size_t                      offset;
    ngx_uint_t                  need;
    ngx_uint_t                  esc;
    ngx_uint_t                  code;
    u_char                      lo;
    u_char                      hi;
    unsigned                    high:1;
    yajl_handle                 yajl;
} ngx_http_linguamate_login_parse_t;


ngx_int_t ngx_http_linguamate_login_start(ngx_http_linguamate_login_parse_t *lp,
    ngx_pool_t *pool);
void ngx_http_linguamate_login_feed(ngx_http_linguamate_login_parse_t *lp,
    u_char *p, u_char *last);
ngx_uint_t ngx_http_linguamate_login_end(ngx_http_linguamate_login_parse_t *lp);


#endif /* _NGX_HTTP_LINGUAMATE_LOGIN_PARSE_H_INCLUDED_ */
