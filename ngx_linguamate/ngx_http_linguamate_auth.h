/*
 * Copyright (C) ngx_linguamate developers
 *
 * Feature: JWT verification and the auth endpoints (jwt.c), ACCESS.
 */

#ifndef _NGX_HTTP_LINGUAMATE_AUTH_H_INCLUDED_
#define _NGX_HTTP_LINGUAMATE_AUTH_H_INCLUDED_


#include "ngx_http_linguamate_module.h"


ngx_int_t ngx_http_linguamate_jwt_variables(ngx_conf_t *cf);
ngx_int_t ngx_http_linguamate_jwt_init_process(ngx_cycle_t *cycle);
void ngx_http_linguamate_jwt_exit_process(void);
ngx_uint_t ngx_http_linguamate_jwt_verify(ngx_http_request_t *r,
    ngx_str_t *token, const char *type, ngx_http_linguamate_claims_t *claims);
ngx_int_t ngx_http_linguamate_auth_handler(ngx_http_request_t *r);
ngx_int_t ngx_http_linguamate_auth_reject(ngx_http_request_t *r,
    ngx_uint_t reason, ngx_uint_t phase);
ngx_int_t ngx_http_linguamate_user_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
ngx_int_t ngx_http_linguamate_auth_session(ngx_http_request_t *r);
ngx_int_t ngx_http_linguamate_auth_refresh(ngx_http_request_t *r);
ngx_int_t ngx_http_linguamate_auth_logout(ngx_http_request_t *r);


#endif /* _NGX_HTTP_LINGUAMATE_AUTH_H_INCLUDED_ */
