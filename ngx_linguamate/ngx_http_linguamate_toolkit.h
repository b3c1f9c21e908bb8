/*
 * Copyright (C) ngx_linguamate developers
 *
 * Feature: the toolkit proxy with retries (toolkit.c), behind a breaker.
 */

#ifndef _NGX_HTTP_LINGUAMATE_TOOLKIT_H_INCLUDED_
#define _NGX_HTTP_LINGUAMATE_TOOLKIT_H_INCLUDED_


#include "ngx_http_linguamate_module.h"


char *ngx_http_linguamate_toolkit(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
ngx_int_t ngx_http_linguamate_toolkit_handler(ngx_http_request_t *r);
ngx_int_t ngx_http_linguamate_toolkit_header(ngx_http_request_t *sr,
    ngx_http_linguamate_toolkit_t *tk);
ngx_int_t ngx_http_linguamate_toolkit_body_filter(ngx_http_request_t *sr,
    ngx_http_linguamate_toolkit_t *tk, ngx_chain_t *in);
ngx_int_t ngx_http_linguamate_toolkit_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
ngx_int_t ngx_http_linguamate_toolkit_health(ngx_http_request_t *r);
ngx_int_t ngx_http_linguamate_toolkit_log(ngx_http_request_t *r);
ngx_int_t ngx_http_linguamate_toolkit_owns(ngx_http_request_t *sr,
    ngx_http_linguamate_toolkit_t **tk);
ngx_http_upstream_t *ngx_http_linguamate_toolkit_upstream(
    ngx_http_linguamate_toolkit_t *tk);


#endif /* _NGX_HTTP_LINGUAMATE_TOOLKIT_H_INCLUDED_ */
