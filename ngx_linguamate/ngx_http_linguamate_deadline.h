/*
 * Copyright (C) ngx_linguamate developers
 *
 * Feature: REQUEST_TIMEOUT_MS (deadline.c), armed in PRECONTENT.
 */

#ifndef _NGX_HTTP_LINGUAMATE_DEADLINE_H_INCLUDED_
#define _NGX_HTTP_LINGUAMATE_DEADLINE_H_INCLUDED_


#include "ngx_http_linguamate_module.h"


ngx_int_t ngx_http_linguamate_deadline_arm(ngx_http_request_t *r);


#endif /* _NGX_HTTP_LINGUAMATE_DEADLINE_H_INCLUDED_ */
