/*
 * Copyright (C) ngx_linguamate developers
 *
 * libFuzzer harness for the pure parsers of ngx_http_linguamate_parse.c:
 * the first byte picks the parser, the rest is its input.
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined \
 *       -I ../ngx_linguamate fuzz_parse.c \
 *       ../ngx_linguamate/ngx_http_linguamate_parse.c
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ngx_http_linguamate_parse.h"


static int
count_pair(void *data, const unsigned char *key, size_t key_len,
    const unsigned char *val, size_t val_len, unsigned line)
{
    size_t *n = data;

    /* touch every byte handed out: ASan checks the bounds */

    volatile unsigned char  c = 0;
    size_t                  i;

    for (i = 0; i < key_len; i++) {
        c ^= key[i];
    }

    for (i = 0; i < val_len; i++) {
        c ^= val[i];
    }

    (void) c;
    (void) line;
    (*n)++;

    return 0;
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int             b;
    size_t          span[2], n, plen, olen;
    int64_t         secs;
    uint64_t        v;
    unsigned        line;
    const char     *err;
    unsigned char  *buf, *scratch, *cut, *pat, *org;
    unsigned char   out[NGX_HTTP_LINGUAMATE_UUID_LEN];
    static const char  *logs_path[] = { "logs", NULL };
    static const char  *ts_path[] = { "sig", "ts", NULL };

    if (size < 1) {
        return 0;
    }

    /* exact-size copies: reading past the input is a finding */

    buf = malloc(size - 1 ? size - 1 : 1);
    scratch = malloc(size);
    if (buf == NULL || scratch == NULL) {
        free(buf);
        free(scratch);
        return 0;
    }

    memcpy(buf, data + 1, size - 1);
    size--;

    switch (data[0] % 11) {
    case 0:
        n = 0;
        (void) ngx_http_linguamate_dotenv_parse(buf, size, scratch,
                                                count_pair, &n, &line, &err);
        break;
    case 1:
        (void) ngx_http_linguamate_parse_duration(buf, size, &secs);
        break;
    case 2:
        (void) ngx_http_linguamate_parse_uint(buf, size, UINT64_MAX, &v);
        (void) ngx_http_linguamate_parse_uint(buf, size, 65535, &v);
        break;
    case 3:
        (void) ngx_http_linguamate_parse_bool(buf, size, &b);
        break;
    case 4:
        (void) ngx_http_linguamate_corr_id_valid(buf, size);
        break;
    case 6:
        /* "pattern\norigin", each part in its own exact-size copy */
        cut = memchr(buf, '\n', size);
        plen = cut ? (size_t) (cut - buf) : size;
        olen = cut ? size - plen - 1 : 0;
        pat = malloc(plen ? plen : 1);
        org = malloc(olen ? olen : 1);
        if (pat && org) {
            memcpy(pat, buf, plen);
            if (olen) {
                memcpy(org, cut + 1, olen);
            }
            /* wildcards only ever add matches */
            if (ngx_http_linguamate_origin_match(pat, plen, org, olen, 0)
                && !ngx_http_linguamate_origin_match(pat, plen, org, olen, 1))
            {
                abort();
            }
        }
        free(pat);
        free(org);
        break;
    case 8:
        /* the signed spans of an ingest batch: inside the input, never
           empty */
        if ((ngx_http_linguamate_json_member_span(buf, size, logs_path, span)
             == 0 && (span[0] >= span[1] || span[1] > size))
            || (ngx_http_linguamate_json_member_span(buf, size, ts_path, span)
                == 0 && (span[0] >= span[1] || span[1] > size)))
        {
            abort();
        }
        break;
    case 9:
        (void) ngx_http_linguamate_secret_key(buf, size);
        (void) ngx_http_linguamate_secret_value(buf, size);
        break;
    case 10:
        (void) ngx_http_linguamate_parse_iso8601(buf, size, &secs);
        break;
    default:
        /* 5 too: the JWT split it fuzzed is fuzz_jread.c's reference now */
        (void) ngx_http_linguamate_json_depth_ok(buf, size, 8);
        if (size >= 16) {
            ngx_http_linguamate_uuid4(buf, out);
        }
    }

    free(buf);
    free(scratch);

    return 0;
}
