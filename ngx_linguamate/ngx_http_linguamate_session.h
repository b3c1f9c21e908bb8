/*
 * Copyright (C) ngx_linguamate developers
 *
 * State: session revocations and rotations in the session zone, with
 * their journal (session.c).
 */

#ifndef _NGX_HTTP_LINGUAMATE_SESSION_H_INCLUDED_
#define _NGX_HTTP_LINGUAMATE_SESSION_H_INCLUDED_


#include "ngx_http_linguamate_module.h"


char *ngx_http_linguamate_session_zone(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
void ngx_http_linguamate_session_init_process(void);
ngx_int_t ngx_http_linguamate_session_revoked(ngx_http_linguamate_zone_t *zone,
    ngx_str_t *sub, ngx_str_t *sid, int64_t issued_ms);
ngx_int_t ngx_http_linguamate_session_revoke(ngx_http_linguamate_zone_t *zone,
    ngx_pool_t *pool, ngx_http_linguamate_revoke_e kind, ngx_str_t *id,
    int64_t *before_ms, ngx_log_t *log);
int64_t ngx_http_linguamate_now_ms(void);
ngx_int_t ngx_http_linguamate_session_rotate(ngx_http_linguamate_zone_t *zone,
    ngx_pool_t *pool, ngx_str_t *sid, ngx_str_t *old, ngx_str_t *next,
    ngx_log_t *log);
ngx_uint_t ngx_http_linguamate_session_generation(
    ngx_http_linguamate_zone_t *zone);


#endif /* _NGX_HTTP_LINGUAMATE_SESSION_H_INCLUDED_ */
