/*
 * Copyright (C) ngx_linguamate developers
 *
 * Endpoint: the content handler of "linguamate_endpoint" (health.c):
 * health, info, the error page, and the dispatch to the other endpoints.
 */

#ifndef _NGX_HTTP_LINGUAMATE_HEALTH_H_INCLUDED_
#define _NGX_HTTP_LINGUAMATE_HEALTH_H_INCLUDED_


#include "ngx_http_linguamate_module.h"


ngx_int_t ngx_http_linguamate_endpoint_handler(ngx_http_request_t *r);


#endif /* _NGX_HTTP_LINGUAMATE_HEALTH_H_INCLUDED_ */
