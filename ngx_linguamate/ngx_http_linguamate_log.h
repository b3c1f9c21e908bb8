/*
 * Copyright (C) ngx_linguamate developers
 *
 * Core: the pino-shaped log (log.c): module events and the request line.
 */

#ifndef _NGX_HTTP_LINGUAMATE_LOG_H_INCLUDED_
#define _NGX_HTTP_LINGUAMATE_LOG_H_INCLUDED_


#include "ngx_http_linguamate_module.h"


void ngx_http_linguamate_log_event(ngx_http_linguamate_main_conf_t *lmcf,
    ngx_uint_t level, const char *evt, ngx_str_t *msg, ngx_str_t *extra);
void ngx_http_linguamate_log_request(ngx_http_request_t *r,
    ngx_uint_t level, const char *evt, ngx_str_t *msg, ngx_str_t *extra);
ngx_int_t ngx_http_linguamate_log_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
ngx_int_t ngx_http_linguamate_log_enabled_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
const char *ngx_http_linguamate_level_name(ngx_uint_t level);


#endif /* _NGX_HTTP_LINGUAMATE_LOG_H_INCLUDED_ */
