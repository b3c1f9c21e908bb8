/*
 * Copyright (C) ngx_linguamate developers
 *
 * Feature: CORS (cors.c): the preflight in REWRITE, the headers of every
 * answer.
 */

#ifndef _NGX_HTTP_LINGUAMATE_CORS_H_INCLUDED_
#define _NGX_HTTP_LINGUAMATE_CORS_H_INCLUDED_


#include "ngx_http_linguamate_module.h"


ngx_int_t ngx_http_linguamate_cors_check(ngx_conf_t *cf,
    ngx_http_linguamate_main_conf_t *lmcf);
ngx_int_t ngx_http_linguamate_cors_preflight(ngx_http_request_t *r);
ngx_int_t ngx_http_linguamate_cors_headers(ngx_http_request_t *r);


#endif /* _NGX_HTTP_LINGUAMATE_CORS_H_INCLUDED_ */
