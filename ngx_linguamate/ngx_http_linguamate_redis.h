/*
 * Copyright (C) ngx_linguamate developers
 *
 * A Redis client on nginx's event loop: nginx's own connections, events,
 * timers and (for rediss://) its OpenSSL layer carry the bytes; hiredis
 * only formats commands and parses replies (redisFormatCommandArgv, the
 * redisReader).  Nothing here blocks: the connect is non-blocking, the
 * replies come back through callbacks, a lost connection is retried with
 * a growing delay.  One client per worker for commands; the worker that
 * listens to the channel has a second one in subscriber mode.
 */

#ifndef _NGX_HTTP_LINGUAMATE_REDIS_H_INCLUDED_
#define _NGX_HTTP_LINGUAMATE_REDIS_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include <ngx_event_connect.h>

#include <hiredis/hiredis.h>


/* REDIS_URL, read once at configuration */
typedef struct {
    ngx_str_t                    host;      /* as written, for messages */
    in_port_t                    port;
    ngx_str_t                    user;      /* "" : AUTH with password only */
    ngx_str_t                    password;  /* "" : no AUTH */
    ngx_uint_t                   db;
    ngx_addr_t                  *addrs;
    ngx_uint_t                   naddrs;
    unsigned                     tls:1;
} ngx_http_linguamate_redis_url_t;


typedef struct ngx_http_linguamate_redis_s  ngx_http_linguamate_redis_t;

/* a reply, or NULL when the connection was lost before it came */
typedef void (*ngx_http_linguamate_redis_reply_pt)(
    ngx_http_linguamate_redis_t *rc, redisReply *reply, void *data);

/* the connection is ready (after AUTH and SELECT) or lost */
typedef void (*ngx_http_linguamate_redis_state_pt)(
    ngx_http_linguamate_redis_t *rc, ngx_uint_t up);


/* the (at most) 64-bit numbers the callbacks need */
#define NGX_HTTP_LINGUAMATE_REDIS_BACKOFF_MIN  100
#define NGX_HTTP_LINGUAMATE_REDIS_BACKOFF_MAX  5000
/* a command without a reply for this long: the connection is dead */
#define NGX_HTTP_LINGUAMATE_REDIS_TIMEOUT      2000
/* replies owed at most: a command beyond it is refused (NGX_BUSY) */
#define NGX_HTTP_LINGUAMATE_REDIS_INFLIGHT     4096


ngx_int_t ngx_http_linguamate_redis_url_parse(ngx_conf_t *cf,
    ngx_str_t *value, ngx_http_linguamate_redis_url_t *u, ngx_str_t *err);

ngx_http_linguamate_redis_t *ngx_http_linguamate_redis_create(
    ngx_http_linguamate_redis_url_t *u, const char *role, ngx_log_t *log,
    ngx_http_linguamate_redis_state_pt on_state,
    ngx_http_linguamate_redis_reply_pt on_push, void *data);
void ngx_http_linguamate_redis_connect(ngx_http_linguamate_redis_t *rc);
void ngx_http_linguamate_redis_destroy(ngx_http_linguamate_redis_t *rc);
void ngx_http_linguamate_redis_drop(ngx_http_linguamate_redis_t *rc,
    const char *why);

ngx_uint_t ngx_http_linguamate_redis_ready(ngx_http_linguamate_redis_t *rc);
void *ngx_http_linguamate_redis_data(ngx_http_linguamate_redis_t *rc);

/* NGX_OK: sent or queued, the callback will run exactly once;
   NGX_DECLINED: not connected; NGX_BUSY: too many replies owed;
   NGX_ERROR: no memory */
ngx_int_t ngx_http_linguamate_redis_command(ngx_http_linguamate_redis_t *rc,
    int argc, const char **argv, const size_t *argvlen,
    ngx_http_linguamate_redis_reply_pt handler, void *data);


#endif /* _NGX_HTTP_LINGUAMATE_REDIS_H_INCLUDED_ */
