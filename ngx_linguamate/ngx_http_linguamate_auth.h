/*
 * Copyright (C) ngx_linguamate developers
 *
 * Feature: JWT verification and the auth endpoints (jwt.c), ACCESS.
 */

#ifndef _NGX_HTTP_LINGUAMATE_AUTH_H_INCLUDED_
#define _NGX_HTTP_LINGUAMATE_AUTH_H_INCLUDED_


#include "ngx_http_linguamate_module.h"
#include "ngx_http_linguamate_token_parse.h"


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

/*
 * the steps of jwt_verify() before its cache and its time checks, for
 * fuzz/fuzz_jread.c's whole-token differential: the worker's HMAC keys
 * of lmcf, the check of a token's bytes, the checks of its claims
 */
ngx_int_t ngx_http_linguamate_jwt_keys(ngx_http_linguamate_main_conf_t *lmcf,
    ngx_log_t *log);
ngx_uint_t ngx_http_linguamate_jwt_check(ngx_http_request_t *r,
    ngx_http_linguamate_main_conf_t *lmcf, ngx_str_t *token,
    ngx_http_linguamate_claims_t *c);
ngx_uint_t ngx_http_linguamate_jwt_claims(ngx_http_linguamate_jv_t *v,
    ngx_http_linguamate_claims_t *c);


#endif /* _NGX_HTTP_LINGUAMATE_AUTH_H_INCLUDED_ */
