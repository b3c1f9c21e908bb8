/*
 * Copyright (C) ngx_linguamate developers
 *
 * Feature: the login lockout (lockout.c), ACCESS, and its accounting of
 * the answers.
 */

#ifndef _NGX_HTTP_LINGUAMATE_LOCKOUT_H_INCLUDED_
#define _NGX_HTTP_LINGUAMATE_LOCKOUT_H_INCLUDED_


#include "ngx_http_linguamate_module.h"


typedef struct {
    ngx_uint_t                  failures;
    ngx_msec_t                  remaining_ms;
    time_t                      locked_at;
    unsigned                    locked:1;
} ngx_http_linguamate_lockout_info_t;


/* a lock decided by a request, written out from its LOG phase */
typedef struct {
    ngx_str_t                  *key;
    ngx_uint_t                  failures;
    ngx_msec_t                  locked;
    time_t                      at;
} ngx_http_linguamate_lock_event_t;


char *ngx_http_linguamate_lockout_zone(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_linguamate_lockout(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
ngx_int_t ngx_http_linguamate_lockout_handler(ngx_http_request_t *r);
ngx_int_t ngx_http_linguamate_lockout_log_step(ngx_http_request_t *r);
ngx_int_t ngx_http_linguamate_lockout_account(ngx_http_request_t *r,
    ngx_http_linguamate_ctx_t *ctx);
void ngx_http_linguamate_lockout_scanned(ngx_http_request_t *r,
    ngx_http_linguamate_ctx_t *ctx, ngx_uint_t failed, ngx_uint_t succeeded);
ngx_int_t ngx_http_linguamate_lockout_status(ngx_http_linguamate_zone_t *zone,
    ngx_str_t *key, ngx_http_linguamate_lockout_info_t *info);
ngx_int_t ngx_http_linguamate_lockout_unlock(ngx_http_linguamate_zone_t *zone,
    ngx_str_t *key);


ngx_int_t ngx_http_linguamate_lockout_cluster(ngx_conf_t *cf,
    ngx_http_linguamate_main_conf_t *lmcf);


#endif /* _NGX_HTTP_LINGUAMATE_LOCKOUT_H_INCLUDED_ */
