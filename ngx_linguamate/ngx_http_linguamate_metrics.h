/*
 * Copyright (C) ngx_linguamate developers
 *
 * Feature: the Prometheus counters (metrics.c): route and LOG accounting,
 * the client telemetry counters, the /metrics handler, process memory.
 */

#ifndef _NGX_HTTP_LINGUAMATE_METRICS_H_INCLUDED_
#define _NGX_HTTP_LINGUAMATE_METRICS_H_INCLUDED_


#include "ngx_http_linguamate_module.h"


ngx_int_t ngx_http_linguamate_metrics_init(ngx_conf_t *cf,
    ngx_http_linguamate_main_conf_t *lmcf);
ngx_int_t ngx_http_linguamate_route_handler(ngx_http_request_t *r);
ngx_int_t ngx_http_linguamate_metrics_log(ngx_http_request_t *r);
ngx_int_t ngx_http_linguamate_metrics_handler(ngx_http_request_t *r);
void ngx_http_linguamate_metrics_auth_failure(ngx_http_request_t *r,
    ngx_uint_t reason);
void ngx_http_linguamate_metrics_client(ngx_http_request_t *r,
    ngx_uint_t counter, ngx_uint_t n);
ngx_int_t ngx_http_linguamate_process_memory(uint64_t *rss);
uint64_t ngx_http_linguamate_memory_limit(
    ngx_http_linguamate_main_conf_t *lmcf, const char **source);


#endif /* _NGX_HTTP_LINGUAMATE_METRICS_H_INCLUDED_ */
