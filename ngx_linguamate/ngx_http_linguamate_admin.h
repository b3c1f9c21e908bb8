/*
 * Copyright (C) ngx_linguamate developers
 *
 * Endpoint: the operations API (admin.c).
 */

#ifndef _NGX_HTTP_LINGUAMATE_ADMIN_H_INCLUDED_
#define _NGX_HTTP_LINGUAMATE_ADMIN_H_INCLUDED_


#include "ngx_http_linguamate_module.h"


ngx_int_t ngx_http_linguamate_admin_handler(ngx_http_request_t *r);
ngx_int_t ngx_http_linguamate_admin_tokens(ngx_conf_t *cf,
    ngx_http_linguamate_main_conf_t *lmcf);


#endif /* _NGX_HTTP_LINGUAMATE_ADMIN_H_INCLUDED_ */
