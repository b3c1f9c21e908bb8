/*
 * Copyright (C) ngx_linguamate developers
 *
 * Feature: the sliding-window rate limits (limit.c), PREACCESS.
 */

#ifndef _NGX_HTTP_LINGUAMATE_LIMIT_H_INCLUDED_
#define _NGX_HTTP_LINGUAMATE_LIMIT_H_INCLUDED_


#include "ngx_http_linguamate_module.h"


char *ngx_http_linguamate_limit_zone(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_linguamate_limit(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
ngx_int_t ngx_http_linguamate_limit_handler(ngx_http_request_t *r);
ngx_int_t ngx_http_linguamate_limit_cluster(ngx_conf_t *cf,
    ngx_http_linguamate_main_conf_t *lmcf);
ngx_int_t ngx_http_linguamate_limit_status_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);


#endif /* _NGX_HTTP_LINGUAMATE_LIMIT_H_INCLUDED_ */
