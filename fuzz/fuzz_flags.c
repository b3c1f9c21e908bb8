/*
 * Copyright (C) ngx_linguamate developers
 *
 * libFuzzer harness for the PATCH /api/admin/flags body, linked with its
 * parse layer (ngx_http_linguamate_flags_parse.c): the body taken as
 * flags_patch() takes it (no NUL, nesting at most 8, a yajl tree), then
 * patch_parse(), and the answer's values written as flags_patch() writes
 * them.
 */

#include "fuzz_ngx.h"

#include "ngx_http_linguamate_parse.h"
#include "ngx_http_linguamate_flags_parse.h"


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    u_char                             *body, out[64], *p;
    yajl_val                            root;
    ngx_int_t                           rc;
    ngx_uint_t                          i;
    ngx_http_linguamate_flags_patch_t   patch;
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

    rc = ngx_http_linguamate_patch_parse(root, &patch, &err);

    if (rc == NGX_OK) {
        for (i = 0; i < NGX_HTTP_LINGUAMATE_NFLAGS; i++) {
            if (patch.set[i] == 1) {
                if (!ngx_http_linguamate_flag_valid(i, patch.value[i])) {
                    abort();    /* saved, it would not be read back */
                }

                p = ngx_http_linguamate_flag_value(out, i, patch.value[i]);
                if (p > out + sizeof(out)) {
                    abort();
                }

            } else if (patch.set[i] != 0 && patch.set[i] != 2) {
                abort();
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
