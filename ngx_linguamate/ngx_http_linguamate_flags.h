/*
 * Copyright (C) ngx_linguamate developers
 *
 * Feature: the live flags (flags.c): maintenance and feature gates in
 * REWRITE, cache headers, the operations API's view and changes.
 */

#ifndef _NGX_HTTP_LINGUAMATE_FLAGS_H_INCLUDED_
#define _NGX_HTTP_LINGUAMATE_FLAGS_H_INCLUDED_


#include "ngx_http_linguamate_module.h"


ngx_int_t ngx_http_linguamate_flags_init(ngx_conf_t *cf,
    ngx_http_linguamate_main_conf_t *lmcf);
char *ngx_http_linguamate_feature(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
ngx_uint_t ngx_http_linguamate_flag(ngx_http_linguamate_main_conf_t *lmcf,
    ngx_uint_t flag);
ngx_int_t ngx_http_linguamate_maintenance_on(
    ngx_http_linguamate_main_conf_t *lmcf);
ngx_int_t ngx_http_linguamate_maintenance_step(ngx_http_request_t *r);
ngx_int_t ngx_http_linguamate_feature_step(ngx_http_request_t *r);
ngx_int_t ngx_http_linguamate_cache_headers(ngx_http_request_t *r);
size_t ngx_http_linguamate_flags_json_len(void);
u_char *ngx_http_linguamate_flags_json(ngx_http_linguamate_main_conf_t *lmcf,
    u_char *p);
ngx_int_t ngx_http_linguamate_flags_patch(ngx_http_request_t *r,
    u_char *body, size_t len, ngx_str_t *changes, ngx_buf_t **out,
    ngx_http_linguamate_flags_error_t *err);
ngx_int_t ngx_http_linguamate_cache_key_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
ngx_atomic_uint_t ngx_http_linguamate_cache_purge(
    ngx_http_linguamate_main_conf_t *lmcf, ngx_str_t *procedure);


#endif /* _NGX_HTTP_LINGUAMATE_FLAGS_H_INCLUDED_ */
