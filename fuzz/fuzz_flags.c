/*
 * Copyright (C) ngx_linguamate developers
 *
 * libFuzzer harness for the PATCH /api/admin/flags body
 * (ngx_http_linguamate_flags.c): the body taken as flags_patch() takes it
 * (no NUL, nesting at most 8, a yajl tree), then patch_parse() and
 * patch_value(), and the answer's values written as flags_patch() writes
 * them.
 */

#include "fuzz_ngx.h"

#include "../ngx_linguamate/ngx_http_linguamate_flags.c"


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    u_char                             *body, out[64], *p;
    yajl_val                            root;
    ngx_int_t                           rc, set[NGX_HTTP_LINGUAMATE_NFLAGS];
    ngx_uint_t                          i, value[NGX_HTTP_LINGUAMATE_NFLAGS];
    ngx_http_linguamate_flags_error_t   err;

    body = fuzz_ngx_strdup(data, size);
    root = NULL;
    err.field = "body";
    err.message = "must be a JSON object";

    if (size && ngx_strlen(body) == size
        && ngx_http_linguamate_json_depth_ok(body, size, 8))
    {
        root = yajl_tree_parse((const char *) body, NULL, 0);
    }

    rc = ngx_http_linguamate_patch_parse(root, set, value, &err);

    if (rc == NGX_OK) {
        for (i = 0; i < NGX_HTTP_LINGUAMATE_NFLAGS; i++) {
            if (set[i] == 1) {
                if (!ngx_http_linguamate_flag_valid(i, value[i])) {
                    abort();    /* saved, it would not be read back */
                }

                p = ngx_http_linguamate_flag_value(out, i, value[i]);
                if (p > out + sizeof(out)) {
                    abort();
                }
            }
        }

    } else if (err.field == NULL || err.message == NULL) {
        abort();

    } else {
        (void) ngx_strlen(err.field);   /* still readable: before the free */
    }

    yajl_tree_free(root);
    free(body);

    return 0;
}
