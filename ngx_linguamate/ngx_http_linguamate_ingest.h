/*
 * Copyright (C) ngx_linguamate developers
 *
 * Endpoint: the client log and analytics batches (ingest.c).
 */

#ifndef _NGX_HTTP_LINGUAMATE_INGEST_H_INCLUDED_
#define _NGX_HTTP_LINGUAMATE_INGEST_H_INCLUDED_


#include "ngx_http_linguamate_module.h"


char *ngx_http_linguamate_event_log(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
ngx_int_t ngx_http_linguamate_ingest_handler(ngx_http_request_t *r);


#endif /* _NGX_HTTP_LINGUAMATE_INGEST_H_INCLUDED_ */
