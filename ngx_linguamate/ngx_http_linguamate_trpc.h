/*
 * Copyright (C) ngx_linguamate developers
 *
 * Feature: the app's tRPC calls at the edge (trpc.c): the refusal of a
 * path that is not canonical, the gate, the scan of a 207 batch answer.
 */

#ifndef _NGX_HTTP_LINGUAMATE_TRPC_H_INCLUDED_
#define _NGX_HTTP_LINGUAMATE_TRPC_H_INCLUDED_


#include "ngx_http_linguamate_module.h"


ngx_int_t ngx_http_linguamate_trpc_refuse(ngx_http_request_t *r);
ngx_int_t ngx_http_linguamate_trpc_gate(ngx_http_request_t *r);
ngx_int_t ngx_http_linguamate_trpc_log(ngx_http_request_t *r);
ngx_int_t ngx_http_linguamate_trpc_scan(ngx_http_request_t *r,
    ngx_http_linguamate_ctx_t *ctx, ngx_chain_t *in, ngx_uint_t *failed,
    ngx_uint_t *succeeded);
ngx_int_t ngx_http_linguamate_app_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);


#endif /* _NGX_HTTP_LINGUAMATE_TRPC_H_INCLUDED_ */
