/*
 * Copyright (C) ngx_linguamate developers
 *
 * Cluster mode (REDIS_URL): the state layer's replication backend and
 * the periodic exchange of limit counts (docs/cluster.md).
 *
 *  - Records (revocations, lockouts, live flags): every change is written
 *    to Redis with its expiry by a script that also publishes it; one
 *    worker per replica listens to the channel and applies what others
 *    changed to the shared zone and the local journal.  On every
 *    (re)connect it uploads what Redis lacks and reads back the whole
 *    state.  A change made while Redis is away waits in the worker that
 *    made it and is sent when the connection is back.
 *  - Limits: every CLUSTER_SYNC_MS one worker of the replica runs the
 *    registered sync handlers (limit.c's), which send the counts of the
 *    interval and read back the other replicas' counts.
 *
 * Nothing here runs without REDIS_URL.
 */

#ifndef _NGX_HTTP_LINGUAMATE_CLUSTER_H_INCLUDED_
#define _NGX_HTTP_LINGUAMATE_CLUSTER_H_INCLUDED_


#include "ngx_http_linguamate_module.h"
#include "ngx_http_linguamate_redis.h"


/* what the metrics and the detailed health show */
typedef struct {
    ngx_uint_t                   up;
    ngx_msec_t                   lag;           /* ms since Redis answered */
    ngx_uint_t                   unsynced;
    ngx_uint_t                   applied;       /* others' changes applied */
    ngx_uint_t                   reconnects;
    ngx_uint_t                   refused;       /* a write refused lately */
} ngx_http_linguamate_cluster_status_t;


typedef void (*ngx_http_linguamate_cluster_sync_pt)(void *data,
    ngx_msec_t now, ngx_log_t *log);
typedef void (*ngx_http_linguamate_cluster_hot_pt)(u_char *msg, size_t len);


/* a Lua script, called by its SHA1 (EVALSHA); loaded on every connect */
typedef struct {
    ngx_str_t                    body;
    u_char                       sha[40];
    unsigned                     hashed:1;
} ngx_http_linguamate_cluster_script_t;


char *ngx_http_linguamate_cluster_init(ngx_conf_t *cf,
    ngx_http_linguamate_main_conf_t *lmcf);
ngx_int_t ngx_http_linguamate_cluster_postconf(ngx_conf_t *cf,
    ngx_http_linguamate_main_conf_t *lmcf);
ngx_int_t ngx_http_linguamate_cluster_init_process(ngx_cycle_t *cycle);
void ngx_http_linguamate_cluster_exit_process(ngx_cycle_t *cycle);

ngx_uint_t ngx_http_linguamate_cluster_on(
    ngx_http_linguamate_main_conf_t *lmcf);
ngx_uint_t ngx_http_linguamate_cluster_up(
    ngx_http_linguamate_main_conf_t *lmcf);
void ngx_http_linguamate_cluster_status(ngx_http_linguamate_main_conf_t *lmcf,
    ngx_http_linguamate_cluster_status_t *cs);
u_char *ngx_http_linguamate_cluster_where(
    ngx_http_linguamate_main_conf_t *lmcf, u_char *p, u_char *last);

extern ngx_conf_enum_t  ngx_http_linguamate_cluster_fail_modes[];

/* PREACCESS: a location that fails closed while Redis is away */
ngx_int_t ngx_http_linguamate_cluster_gate(ngx_http_request_t *r);

/* limit.c's side: a handler run every CLUSTER_SYNC_MS, a command */
ngx_int_t ngx_http_linguamate_cluster_on_sync(ngx_conf_t *cf,
    ngx_http_linguamate_cluster_sync_pt handler, void *data);
void ngx_http_linguamate_cluster_on_hot(
    ngx_http_linguamate_cluster_hot_pt handler);
ngx_int_t ngx_http_linguamate_cluster_publish_hot(u_char *msg, size_t len);
ngx_int_t ngx_http_linguamate_cluster_command(int argc, const char **argv,
    const size_t *argvlen, ngx_http_linguamate_redis_reply_pt handler,
    void *data);
u_char *ngx_http_linguamate_cluster_key(u_char *p, const char *kind,
    ngx_str_t *zone, u_char *key, size_t len);
ngx_int_t ngx_http_linguamate_cluster_script(
    ngx_http_linguamate_cluster_script_t *script);
ngx_uint_t ngx_http_linguamate_cluster_noscript(redisReply *reply);
void ngx_http_linguamate_cluster_synced(ngx_msec_t now);
void ngx_http_linguamate_cluster_unsynced(ngx_int_t delta);
uint64_t ngx_http_linguamate_cluster_replica(void);


#endif /* _NGX_HTTP_LINGUAMATE_CLUSTER_H_INCLUDED_ */
