/*
 * Copyright (C) ngx_linguamate developers
 *
 * Parse layer of the live flags (flags_parse.c): the PATCH
 * /api/admin/flags body (a yajl tree) read into the changes it asks for,
 * and a flag's value checked and written as the API shows it.  Pure
 * functions over the lists of ngx_http_linguamate_lists.h and the
 * settings' table: no request, no conf, no zone.
 */

#ifndef _NGX_HTTP_LINGUAMATE_FLAGS_PARSE_H_INCLUDED_
#define _NGX_HTTP_LINGUAMATE_FLAGS_PARSE_H_INCLUDED_


#include <yajl/yajl_tree.h>

#include "ngx_http_linguamate_module.h"


/* the changes a PATCH asks for, by flag */

typedef struct {
    ngx_int_t                   set[NGX_HTTP_LINGUAMATE_NFLAGS];
                                            /* 0, 1: to value, 2: cleared */
    ngx_uint_t                  value[NGX_HTTP_LINGUAMATE_NFLAGS];
} ngx_http_linguamate_flags_patch_t;


/* the API's names of the flags ("features.chat"), by flag */
extern ngx_str_t  ngx_http_linguamate_flag_names[];


ngx_int_t ngx_http_linguamate_patch_parse(yajl_val root,
    ngx_http_linguamate_flags_patch_t *patch,
    ngx_http_linguamate_flags_error_t *err);
size_t ngx_http_linguamate_flag_group(ngx_uint_t flag);
ngx_uint_t ngx_http_linguamate_flag_valid(ngx_uint_t flag, ngx_int_t v);
u_char *ngx_http_linguamate_flag_value(u_char *p, ngx_uint_t flag,
    ngx_uint_t value);


#endif /* _NGX_HTTP_LINGUAMATE_FLAGS_PARSE_H_INCLUDED_ */
