/*
 * Copyright (C) ngx_linguamate developers
 *
 * What a harness that includes a module source file needs of a running
 * nginx: a request with a real pool (nginx's own ngx_palloc.c is linked),
 * a log that drops everything, the cached time, and the main conf.  The
 * harness defines FUZZ_NGX_MAIN once; see fuzz/fuzz_ngx.c.
 */

#ifndef _FUZZ_NGX_H_INCLUDED_
#define _FUZZ_NGX_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_linguamate_module.h"


/* a fresh request of its own pool, with lmcf as the module's main conf */
ngx_http_request_t *fuzz_ngx_request(ngx_http_linguamate_main_conf_t *lmcf);
void fuzz_ngx_request_free(ngx_http_request_t *r);

/* a configuration context of that request's pool */
ngx_conf_t *fuzz_ngx_conf(ngx_http_request_t *r);

/* a chain of exact-size memory buffers cut every "cut" bytes, last_buf */
ngx_chain_t *fuzz_ngx_chain(ngx_pool_t *pool, const uint8_t *data,
    size_t size, size_t cut);

/* an exact-size NUL-terminated copy: reading past it is a finding */
u_char *fuzz_ngx_strdup(const uint8_t *data, size_t size);

/* a compact JWS of the header and claims bytes, HS256 with secret */
ngx_str_t fuzz_ngx_jwt(ngx_pool_t *pool, const char *secret,
    const uint8_t *hdr, size_t hlen, const uint8_t *data, size_t size);


#endif /* _FUZZ_NGX_H_INCLUDED_ */
