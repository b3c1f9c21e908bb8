/*
 * Copyright (C) ngx_linguamate developers
 *
 * Core: the JSON writer (json.c): escaping, ISO-8601 times, the body
 * reader, and the one way to refuse: the contract's envelope, or the
 * tRPC shape when the core read the request as a tRPC call.
 */

#ifndef _NGX_HTTP_LINGUAMATE_JSON_H_INCLUDED_
#define _NGX_HTTP_LINGUAMATE_JSON_H_INCLUDED_


#include "ngx_http_linguamate_module.h"


size_t ngx_http_linguamate_json_escape_len(u_char *src, size_t size);
u_char *ngx_http_linguamate_json_escape(u_char *dst, u_char *src,
    size_t size);
u_char *ngx_http_linguamate_mask_email(u_char *p, u_char *last, u_char *v,
    size_t len);
u_char *ngx_http_linguamate_iso_time(u_char *buf, time_t sec,
    ngx_msec_t msec);
ngx_int_t ngx_http_linguamate_send_json(ngx_http_request_t *r,
    ngx_uint_t status, ngx_buf_t *b);
ngx_int_t ngx_http_linguamate_body(ngx_http_request_t *r, size_t max,
    ngx_str_t *body);
ngx_int_t ngx_http_linguamate_send_not_allowed(ngx_http_request_t *r,
    const char *allow);
ngx_int_t ngx_http_linguamate_send_error(ngx_http_request_t *r,
    ngx_uint_t status, const char *code, const char *message,
    ngx_str_t *extra);
ngx_buf_t *ngx_http_linguamate_error_buf(ngx_http_request_t *r,
    ngx_http_linguamate_ctx_t *ctx, ngx_uint_t status, const char *code,
    const char *message, ngx_str_t *extra);
ngx_int_t ngx_http_linguamate_phase_error(ngx_http_request_t *r,
    ngx_uint_t status, const char *code, const char *message,
    ngx_str_t *extra);
void ngx_http_linguamate_status_error(ngx_uint_t status, const char **code,
    const char **message);
ngx_int_t ngx_http_linguamate_phase_status(ngx_http_request_t *r,
    ngx_uint_t status);
ngx_uint_t ngx_http_linguamate_refusal_pending(ngx_http_request_t *r,
    ngx_http_linguamate_ctx_t *ctx);
ngx_int_t ngx_http_linguamate_send_refusal(ngx_http_request_t *r,
    ngx_http_linguamate_ctx_t *ctx);
ngx_buf_t *ngx_http_linguamate_refusal_buf(ngx_http_request_t *r,
    ngx_http_linguamate_ctx_t *ctx);
ngx_int_t ngx_http_linguamate_validation_error(ngx_http_request_t *r,
    const char *field, const char *message);


#endif /* _NGX_HTTP_LINGUAMATE_JSON_H_INCLUDED_ */
