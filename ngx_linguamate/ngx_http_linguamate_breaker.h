/*
 * Copyright (C) ngx_linguamate developers
 *
 * Feature: the circuit breakers (breaker.c): the ACCESS gate, the LOG
 * count, their state for health, metrics and the operations API.
 */

#ifndef _NGX_HTTP_LINGUAMATE_BREAKER_H_INCLUDED_
#define _NGX_HTTP_LINGUAMATE_BREAKER_H_INCLUDED_


#include "ngx_http_linguamate_module.h"


char *ngx_http_linguamate_breaker(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_linguamate_circuit_breaker(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
ngx_http_linguamate_breaker_conf_t *ngx_http_linguamate_breaker_find(
    ngx_http_linguamate_main_conf_t *lmcf, ngx_str_t *name);
ngx_int_t ngx_http_linguamate_breakers_init(ngx_conf_t *cf,
    ngx_http_linguamate_main_conf_t *lmcf);
ngx_int_t ngx_http_linguamate_breaker_gate(ngx_http_request_t *r);
ngx_int_t ngx_http_linguamate_breaker_log(ngx_http_request_t *r);
ngx_int_t ngx_http_linguamate_breaker_reset(
    ngx_http_linguamate_main_conf_t *lmcf, ngx_str_t *name);
ngx_uint_t ngx_http_linguamate_breakers_open(
    ngx_http_linguamate_main_conf_t *lmcf);
size_t ngx_http_linguamate_breakers_json_len(
    ngx_http_linguamate_main_conf_t *lmcf);
u_char *ngx_http_linguamate_breakers_json(
    ngx_http_linguamate_main_conf_t *lmcf, u_char *p, ngx_uint_t *open);
void ngx_http_linguamate_breaker_attempts(ngx_http_request_t *r,
    ngx_uint_t *statuses, ngx_uint_t n);
const char *ngx_http_linguamate_breaker_state_name(
    ngx_http_linguamate_main_conf_t *lmcf,
    ngx_http_linguamate_breaker_conf_t *bc);
u_char *ngx_http_linguamate_breakers_metrics(
    ngx_http_linguamate_main_conf_t *lmcf, u_char *p, u_char *end);


#endif /* _NGX_HTTP_LINGUAMATE_BREAKER_H_INCLUDED_ */
