/*
 * Copyright (C) ngx_linguamate developers
 *
 * Differential libFuzzer harness of the JWT reader: the hand-written
 * single-pass reader of ngx_http_linguamate_token_parse.c (the parse
 * layer, linked as an object) against the reading it replaced (kept here,
 * as test-only code: the split's character check, yajl's streaming parser
 * with its callbacks after the strict check, both once in parse.c, and
 * OpenSSL's HMAC()), on the same bytes; the whole-token check and the
 * claim checks are those of ngx_http_linguamate_jwt.c, linked as an
 * object too (auth.h).  Any difference in outcome or in what is read
 * aborts:
 *
 *   0: claims: accepted or not, every member read (type, bytes, value),
 *      the claim checks' reason and the claims they give; then a
 *      $linguamate_jwt_claim_NAME reading (NAME from the input) of
 *      accepted claims;
 *   1: a header (comments allowed, as yajl_tree read it): accepted or
 *      not, its first "alg" (BAD_SIGNATURE or not), what is refused once
 *      the signature held (MALFORMED or not), and the members read;
 *   2: a base64url segment: the module's decoder against the split's
 *      character check and nginx's ngx_decode_base64url();
 *   3: a whole token, the bytes as they are or (odd second byte) a header
 *      and claims split at the first 0xff byte and signed: the reason of
 *      jwt_check() (with its remembered header) against the check it
 *      replaced (split, nginx's decoder, yajl, the strict check), and the
 *      claims of a valid one.
 *
 * The input is the bytes after one selector byte.
 */

#include "fuzz_ngx.h"

#include <math.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <yajl/yajl_parse.h>

#include "ngx_http_linguamate_parse.h"
#include "ngx_http_linguamate_auth.h"


/* ----- the reading before: yajl's streaming parse (test-only) ----- */

#define OLD_ARENA  32768


typedef struct {
    u_char                     *last;
    u_char                      arena[OLD_ARENA];
} old_arena_t;


typedef struct {
    ngx_pool_t                 *pool;
    u_char                     *text;
    u_char                     *text_end;
    ngx_str_t                  *names;
    ngx_uint_t                  n;
    ngx_http_linguamate_jv_t   *values;
    ngx_uint_t                  max_depth;
    ngx_uint_t                  depth;
    ngx_int_t                   member;
    ngx_http_linguamate_jv_t    first_alg;
    unsigned                    first_alg_wanted:1;
    unsigned                    first_alg_next:1;
    unsigned                    object:1;
    unsigned                    refused:1;
} old_jparse_t;


static old_arena_t  old_arena;


static void *old_malloc(void *ctx, size_t size);
static void *old_realloc(void *ctx, void *ptr, size_t size);
static void old_free(void *ctx, void *ptr);
static int old_jv_null(void *ctx);
static int old_jv_boolean(void *ctx, int b);
static int old_jv_number(void *ctx, const char *s, size_t len);
static int old_jv_string(void *ctx, const unsigned char *s, size_t len);
static int old_jv_start_map(void *ctx);
static int old_jv_start_array(void *ctx);
static int old_jv_key(void *ctx, const unsigned char *s, size_t len);
static int old_jv_end(void *ctx);
static ngx_int_t old_jv_set(old_jparse_t *jp,
    ngx_http_linguamate_jv_type_e type, const u_char *s, size_t len,
    int64_t num);
static int old_jwt_split(const unsigned char *p, size_t len,
    size_t dots[2]);
static int old_json_strict_ok(const unsigned char *p, size_t len);
static int old_hex4(const unsigned char *p, size_t len, uint32_t *cp);


static yajl_callbacks  old_callbacks = {
    old_jv_null,
    old_jv_boolean,
    NULL,
    NULL,
    old_jv_number,
    old_jv_string,
    old_jv_start_map,
    old_jv_key,
    old_jv_end,
    old_jv_start_array,
    old_jv_end
};


static yajl_alloc_funcs  old_afs = {
    old_malloc,
    old_realloc,
    old_free,
    &old_arena
};


/*
 * One streaming parse of JSON text: values[i] receives the last member
 * named names[i] at depth 1.  A header is read as yajl_tree read it
 * (comments allowed) and its first "alg" is noted.  NGX_OK when yajl read
 * it all.
 */

static ngx_int_t
old_jparse(old_jparse_t *jp,
    ngx_pool_t *pool, ngx_str_t *text, ngx_str_t *names,
    ngx_http_linguamate_jv_t *values, ngx_uint_t n, ngx_uint_t max_depth)
{
    yajl_handle                        h;
    yajl_status                        rc;
    ngx_uint_t                         header;
    old_arena_t  *w;

    w = &old_arena;
    w->last = w->arena;

    header = (names == ngx_http_linguamate_header_names);

    ngx_memzero(jp, sizeof(old_jparse_t));
    ngx_memzero(values, n * sizeof(ngx_http_linguamate_jv_t));

    jp->pool = pool;
    jp->text = text->data;
    jp->text_end = text->data + text->len;
    jp->names = names;
    jp->n = n;
    jp->values = values;
    jp->max_depth = max_depth;
    jp->member = -1;
    jp->first_alg_wanted = header;

    h = yajl_alloc(&old_callbacks,
                   &old_afs, jp);
    if (h == NULL) {
        return NGX_ERROR;
    }

    if (header) {
        (void) yajl_config(h, yajl_allow_comments, 1);
    }

    rc = yajl_parse(h, text->data, text->len);

    if (rc == yajl_status_ok) {
        rc = yajl_complete_parse(h);
    }

    yajl_free(h);

    return rc == yajl_status_ok ? NGX_OK : NGX_ERROR;
}


/*
 * yajl's memory: a bump allocator over the worker's arena, reset at each
 * parse; past its end (a huge string) the heap.  A block keeps its size
 * before it, for realloc.
 */

static void *
old_malloc(void *ctx, size_t size)
{
    u_char                            *p;
    size_t                             n;
    old_arena_t  *w = ctx;

    n = ngx_align(size, 16) + 16;

    if (n > size && (size_t) (w->arena + sizeof(w->arena) - w->last) >= n) {
        p = w->last;
        w->last += n;
        *(size_t *) p = size;
        return p + 16;
    }

    return malloc(size);
}


static void *
old_realloc(void *ctx, void *ptr, size_t size)
{
    u_char                            *p;
    size_t                             old;
    old_arena_t  *w = ctx;

    if (ptr == NULL) {
        return old_malloc(ctx, size);
    }

    if ((u_char *) ptr < w->arena
        || (u_char *) ptr >= w->arena + sizeof(w->arena))
    {
        return realloc(ptr, size);
    }

    old = *(size_t *) ((u_char *) ptr - 16);

    p = old_malloc(ctx, size);
    if (p) {
        ngx_memcpy(p, ptr, ngx_min(old, size));
    }

    return p;
}


static void
old_free(void *ctx, void *ptr)
{
    old_arena_t  *w = ctx;

    if ((u_char *) ptr < w->arena
        || (u_char *) ptr >= w->arena + sizeof(w->arena))
    {
        free(ptr);
    }
}


/* the callbacks: a value at depth 1 is recorded under its member's name */

static ngx_int_t
old_jv_set(old_jparse_t *jp,
    ngx_http_linguamate_jv_type_e type, const u_char *s, size_t len,
    int64_t num)
{
    u_char                    *p;
    ngx_http_linguamate_jv_t   v;

    if (jp->depth != 1 || (jp->member < 0 && !jp->first_alg_next)) {
        return NGX_OK;
    }

    /* a string with escapes is yajl's decoded copy, which it reuses */

    p = (u_char *) s;

    if (s && len && (s < jp->text || s >= jp->text_end)) {
        p = ngx_pnalloc(jp->pool, len);
        if (p == NULL) {
            return NGX_ERROR;
        }

        ngx_memcpy(p, s, len);
    }

    v.type = type;
    v.str.data = p;
    v.str.len = len;
    v.num = num;

    if (jp->first_alg_next) {
        jp->first_alg_next = 0;
        jp->first_alg = v;
    }

    if (jp->member >= 0) {
        jp->values[jp->member] = v;
        jp->member = -1;
    }

    return NGX_OK;
}


static int
old_jv_null(void *ctx)
{
    return old_jv_set(ctx, NGX_HTTP_LINGUAMATE_JV_OTHER,
                                      NULL, 0, 0) == NGX_OK;
}


static int
old_jv_boolean(void *ctx, int b)
{
    return old_jv_set(ctx, b ? NGX_HTTP_LINGUAMATE_JV_TRUE
                                             : NGX_HTTP_LINGUAMATE_JV_FALSE,
                                      NULL, 0, 0) == NGX_OK;
}


/*
 * A number as jansson read it: an integer out of long long, or a real
 * that overflows, is refused; an integer that yajl_tree would not call
 * one (LLONG_MIN) is a mere number.
 */

static int
old_jv_number(void *ctx, const char *s, size_t len)
{
    old_jparse_t *jp = ctx;

    u_char                         *p, buf[64];
    size_t                          i;
    double                          d;
    uint64_t                        n, max;
    ngx_uint_t                      neg;
    ngx_http_linguamate_jv_type_e   type;

    neg = (len && s[0] == '-');
    max = neg ? (uint64_t) 1 << 63 : ((uint64_t) 1 << 63) - 1;
    n = 0;
    type = NGX_HTTP_LINGUAMATE_JV_INTEGER;

    for (i = neg; i < len; i++) {
        if (s[i] == '.' || s[i] == 'e' || s[i] == 'E') {
            type = NGX_HTTP_LINGUAMATE_JV_NUMBER;
            break;
        }
    }

    for (i = neg; type == NGX_HTTP_LINGUAMATE_JV_INTEGER && i < len; i++) {
        if (n > (max - (uint64_t) (s[i] - '0')) / 10) {
            jp->refused = 1;        /* jansson: "too big integer" */
            return 1;
        }

        n = n * 10 + (uint64_t) (s[i] - '0');
    }

    if (type == NGX_HTTP_LINGUAMATE_JV_NUMBER) {
        p = (len < sizeof(buf)) ? buf : ngx_pnalloc(jp->pool, len + 1);
        if (p == NULL) {
            return 0;
        }

        *ngx_cpymem(p, s, len) = '\0';
        d = strtod((char *) p, NULL);

        if (isinf(d)) {
            jp->refused = 1;        /* jansson: "real number overflow" */
            return 1;
        }

    } else if (neg && n == (uint64_t) 1 << 63) {
        type = NGX_HTTP_LINGUAMATE_JV_NUMBER;
    }

    return old_jv_set(jp, type, (u_char *) s, len,
                                      neg ? (int64_t) (0 - n) : (int64_t) n)
           == NGX_OK;
}


static int
old_jv_string(void *ctx, const unsigned char *s, size_t len)
{
    return old_jv_set(ctx, NGX_HTTP_LINGUAMATE_JV_STRING, s,
                                      len, 0) == NGX_OK;
}


static int
old_jv_start_map(void *ctx)
{
    old_jparse_t *jp = ctx;

    if (jp->depth == 0) {
        jp->object = 1;
    }

    return old_jv_start_array(ctx);
}


static int
old_jv_start_array(void *ctx)
{
    old_jparse_t *jp = ctx;

    if (old_jv_set(jp, NGX_HTTP_LINGUAMATE_JV_OTHER, NULL, 0,
                                   0)
        != NGX_OK)
    {
        return 0;
    }

    return ++jp->depth <= jp->max_depth;
}


static int
old_jv_end(void *ctx)
{
    old_jparse_t *jp = ctx;

    jp->depth--;

    return 1;
}


/*
 * A member's name at depth 1.  The first "alg" of a header is found as
 * yajl_tree_get() found it: names compared as C strings.
 */

static int
old_jv_key(void *ctx, const unsigned char *s, size_t len)
{
    old_jparse_t *jp = ctx;

    ngx_uint_t  i;

    jp->member = -1;

    if (jp->depth != 1) {
        return 1;
    }

    if (jp->first_alg_wanted && len >= 3 && ngx_strncmp(s, "alg", 3) == 0
        && (len == 3 || s[3] == '\0'))
    {
        jp->first_alg_wanted = 0;
        jp->first_alg_next = 1;
    }

    for (i = 0; i < jp->n; i++) {
        if (jp->names[i].len == len
            && ngx_memcmp(jp->names[i].data, s, len) == 0)
        {
            jp->member = i;
            break;
        }
    }

    return 1;
}



static ngx_uint_t
old_jwt_check(ngx_http_request_t *r,
    ngx_http_linguamate_main_conf_t *lmcf, ngx_str_t *token,
    ngx_http_linguamate_claims_t *c)
{
    size_t                         dots[2];
    u_char                         sig[33], *last;
    ngx_str_t                      src, hdr, payload, dst;
    ngx_uint_t                     i, known;
    ngx_http_linguamate_jv_t       hv[NGX_HTTP_LINGUAMATE_H_N];
    ngx_http_linguamate_jv_t       cv[NGX_HTTP_LINGUAMATE_C_N];
    u_char                         mac[EVP_MAX_MD_SIZE];
    unsigned int                   maclen;
    ngx_str_t                     *secret;
    old_jparse_t                   jp;

    if (old_jwt_split(token->data, token->len, dots) != 0) {
        return NGX_HTTP_LINGUAMATE_AUTH_MALFORMED;
    }

    /*
     * a header segment byte-identical to the last one that passed every
     * header check (1, 2 and the header's part of 4) after a valid
     * signature passes them again: all of one issuer's tokens share it
     */

    known = 0;     /* no remembered header: every check made */

    if (known) {
        goto signature;
    }

    /* 1. the header */

    src.data = token->data;
    src.len = dots[0];

    hdr.data = ngx_pnalloc(r->pool, ngx_base64_decoded_length(src.len) + 1);
    if (hdr.data == NULL) {
        return NGX_HTTP_LINGUAMATE_AUTH_MALFORMED;
    }

    if (ngx_decode_base64url(&hdr, &src) != NGX_OK
        || !ngx_http_linguamate_json_depth_ok(hdr.data, hdr.len, 4)
        || ngx_strlchr(hdr.data, hdr.data + hdr.len, '\0') != NULL)
    {
        return NGX_HTTP_LINGUAMATE_AUTH_MALFORMED;
    }

    if (old_jparse(&jp, r->pool, &hdr,
                                   ngx_http_linguamate_header_names, hv,
                                   NGX_HTTP_LINGUAMATE_H_N, 4)
        != NGX_OK
        || !jp.object)
    {
        return NGX_HTTP_LINGUAMATE_AUTH_MALFORMED;
    }

    /* 2. "alg" */

    if (jp.first_alg.type != NGX_HTTP_LINGUAMATE_JV_STRING
        || jp.first_alg.str.len < 5
        || ngx_strncmp(jp.first_alg.str.data, "HS256", 5) != 0
        || (jp.first_alg.str.len > 5 && jp.first_alg.str.data[5] != '\0'))
    {
        /* "none", HS512, RS256...: never accepted */
        return NGX_HTTP_LINGUAMATE_AUTH_BAD_SIGNATURE;
    }

signature:

    /* 3. the signature: 43 characters, 32 bytes, compared in constant time */

    src.data = token->data + dots[1] + 1;
    src.len = token->len - dots[1] - 1;

    if (src.len != 43) {
        return NGX_HTTP_LINGUAMATE_AUTH_BAD_SIGNATURE;
    }

    dst.data = sig;

    if (ngx_decode_base64url(&dst, &src) != NGX_OK || dst.len != 32) {
        return NGX_HTTP_LINGUAMATE_AUTH_BAD_SIGNATURE;
    }

    /* OpenSSL's HMAC() with each secret, not the worker's pad states */

    for (i = 0; i < 2; i++) {
        secret = i ? &lmcf->jwt_secret_previous : &lmcf->jwt_secret;

        if (secret->len
            && HMAC(EVP_sha256(), secret->data, (int) secret->len,
                    token->data, dots[1], mac, &maclen) != NULL
            && maclen == 32 && ngx_memcmp(mac, sig, 32) == 0)
        {
            break;
        }
    }

    if (i == 2) {
        return NGX_HTTP_LINGUAMATE_AUTH_BAD_SIGNATURE;
    }

    /* 4. what libjwt refused once the signature held */

    if (!known) {
        if (jp.refused
            || !old_json_strict_ok(hdr.data, hdr.len)
            || !ngx_http_linguamate_jwt_header_ok(hv))
        {
            return NGX_HTTP_LINGUAMATE_AUTH_MALFORMED;
        }
    }

    /* libjwt compared the signature as text: the canonical encoding */

    last = &src.data[42];

    if ((*last >= 'A' && *last <= 'Z' && (*last - 'A') % 4)
        || (*last >= 'a' && *last <= 'z' && (*last - 'a' + 26) % 4)
        || (*last >= '0' && *last <= '9' && (*last - '0' + 52) % 4)
        || *last == '-' || *last == '_')
    {
        return NGX_HTTP_LINGUAMATE_AUTH_MALFORMED;
    }

    /* the claims */

    src.data = token->data + dots[0] + 1;
    src.len = dots[1] - dots[0] - 1;

    payload.data = ngx_pnalloc(r->pool,
                               ngx_base64_decoded_length(src.len) + 1);
    if (payload.data == NULL) {
        return NGX_HTTP_LINGUAMATE_AUTH_MALFORMED;
    }

    if (ngx_decode_base64url(&payload, &src) != NGX_OK
        || !old_json_strict_ok(payload.data, payload.len))
    {
        return NGX_HTTP_LINGUAMATE_AUTH_MALFORMED;
    }

    payload.data[payload.len] = '\0';

    if (old_jparse(&jp, r->pool, &payload,
                                   ngx_http_linguamate_claim_names, cv,
                                   NGX_HTTP_LINGUAMATE_C_N,
                                   NGX_HTTP_LINGUAMATE_JSON_MAX_DEPTH)
        != NGX_OK
        || !jp.object || jp.refused)
    {
        return NGX_HTTP_LINGUAMATE_AUTH_MALFORMED;
    }

    ngx_memzero(c, sizeof(ngx_http_linguamate_claims_t));
    c->payload = payload;

    return ngx_http_linguamate_jwt_claims(cv, c);
}



/* ----- the checks before the reader (test-only; were parse.c's) ----- */

/*
 * A compact JWS: three base64url segments (header and payload not empty)
 * separated by exactly two dots, at most NGX_HTTP_LINGUAMATE_JWT_MAX
 * bytes.  dots[] receives the offsets of the two dots.
 */

static int
old_jwt_split(const unsigned char *p, size_t len,
    size_t dots[2])
{
    size_t                      i, n;
    unsigned char               c;

    /* 1: base64url, 2: '.', 0: anything else */
    static const unsigned char  cls[256] = {
        ['-'] = 1, ['.'] = 2, ['_'] = 1,
        ['0'] = 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
        ['A'] = 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
                1, 1, 1, 1, 1, 1,
        ['a'] = 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
                1, 1, 1, 1, 1, 1
    };

    if (len == 0 || len > NGX_HTTP_LINGUAMATE_JWT_MAX) {
        return -1;
    }

    n = 0;

    for (i = 0; i < len; i++) {
        c = cls[p[i]];

        if (c == 1) {
            continue;
        }

        if (c == 0 || n == 2) {
            return -1;
        }

        dots[n++] = i;
    }

    /* an empty signature is syntax ("alg":"none"); the check refuses it */

    if (n != 2 || dots[0] == 0 || dots[1] == dots[0] + 1) {
        return -1;
    }

    return 0;
}


/*
 * Whether JSON text that yajl accepted is also what jansson (libjwt's
 * parser) and JSON.parse accept: no NUL byte; strings in strict UTF-8
 * (no overlong form, no surrogate, nothing past U+10FFFF); \u escapes
 * that are not \u0000 and pair their surrogates; and outside strings
 * none of yajl's extras: comments, vertical tab and form feed as white
 * space, or an unterminated string after the value (which yajl takes for
 * the end of the text).  The grammar itself is yajl's to check.
 */

static int
old_json_strict_ok(const unsigned char *p, size_t len)
{
    size_t         i, n;
    uint32_t       cp, min;
    unsigned char  c;

    for (i = 0; i < len; i++) {
        c = p[i];

        if (c == '\0' || c == '\v' || c == '\f' || c == '/') {
            return 0;
        }

        if (c != '"') {
            continue;
        }

        /* a string */

        for (i++; i < len; i++) {
            c = p[i];

            if (c == '"') {
                break;
            }

            if (c == '\0') {
                return 0;
            }

            if (c == '\\') {
                if (i + 1 < len && p[i + 1] == 'u') {
                    if (old_hex4(p + i + 2, len - i - 2, &cp)
                        != 0
                        || cp == 0 || (cp >= 0xdc00 && cp <= 0xdfff))
                    {
                        return 0;
                    }

                    i += 5;

                    if (cp >= 0xd800 && cp <= 0xdbff) {
                        if (i + 2 >= len || p[i + 1] != '\\'
                            || p[i + 2] != 'u'
                            || old_hex4(p + i + 3,
                                                        len - i - 3, &cp)
                               != 0
                            || cp < 0xdc00 || cp > 0xdfff)
                        {
                            return 0;
                        }

                        i += 6;
                    }

                } else {
                    i++;
                }

                continue;
            }

            if (c < 0x80) {
                continue;
            }

            if (c >= 0xc2 && c <= 0xdf) {
                n = 1;
                cp = c & 0x1f;
                min = 0x80;

            } else if (c >= 0xe0 && c <= 0xef) {
                n = 2;
                cp = c & 0x0f;
                min = 0x800;

            } else if (c >= 0xf0 && c <= 0xf4) {
                n = 3;
                cp = c & 0x07;
                min = 0x10000;

            } else {
                return 0;
            }

            if (i + n >= len) {
                return 0;
            }

            while (n--) {
                c = p[++i];

                if ((c & 0xc0) != 0x80) {
                    return 0;
                }

                cp = (cp << 6) | (c & 0x3f);
            }

            if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
                return 0;
            }
        }

        /* yajl takes an unterminated string after the value as the end */

        if (i >= len) {
            return 0;
        }
    }

    return 1;
}


static int
old_hex4(const unsigned char *p, size_t len, uint32_t *cp)
{
    size_t         i;
    unsigned char  c;

    if (len < 4) {
        return -1;
    }

    *cp = 0;

    for (i = 0; i < 4; i++) {
        c = p[i];

        if (c >= '0' && c <= '9') {
            c -= '0';

        } else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f') {
            c = (c | 0x20) - 'a' + 10;

        } else {
            return -1;
        }

        *cp = (*cp << 4) | c;
    }

    return 0;
}


/* ----- the differences ----- */

#define FUZZ_SECRET  "fuzz-jwt-secret-0123456789abcdef"


static ngx_http_linguamate_main_conf_t  fuzz_lmcf;


static void
fuzz_same_jv(ngx_http_linguamate_jv_t *a, ngx_http_linguamate_jv_t *b)
{
    if (a->type != b->type || a->str.len != b->str.len
        || (a->str.len
            && ngx_memcmp(a->str.data, b->str.data, a->str.len) != 0)
        || a->num != b->num)
    {
        abort();
    }
}


static void
fuzz_same_str(ngx_str_t *a, ngx_str_t *b)
{
    if (a->len != b->len
        || (a->len && ngx_memcmp(a->data, b->data, a->len) != 0))
    {
        abort();
    }
}


static void
fuzz_claims(ngx_pool_t *pool, ngx_str_t *text, const u_char *name,
    size_t nlen)
{
    ngx_int_t                      ok_old, ok_new;
    ngx_str_t                      key;
    ngx_uint_t                     i, r_old, r_new;
    old_jparse_t                   ojp;
    ngx_http_linguamate_jv_t       ov[NGX_HTTP_LINGUAMATE_C_N];
    ngx_http_linguamate_jv_t       nv[NGX_HTTP_LINGUAMATE_C_N];
    ngx_http_linguamate_jv_t       o1, n1;
    ngx_http_linguamate_jparse_t   njp;
    ngx_http_linguamate_claims_t   oc, nc;

    ok_old = old_json_strict_ok(text->data, text->len)
             && old_jparse(&ojp, pool, text, ngx_http_linguamate_claim_names,
                           ov, NGX_HTTP_LINGUAMATE_C_N,
                           NGX_HTTP_LINGUAMATE_JSON_MAX_DEPTH) == NGX_OK
             && ojp.object && !ojp.refused;

    ok_new = ngx_http_linguamate_jparse(&njp, pool, text,
                                        ngx_http_linguamate_claim_names, nv,
                                        NGX_HTTP_LINGUAMATE_C_N,
                                        NGX_HTTP_LINGUAMATE_JSON_MAX_DEPTH)
             == NGX_OK && !njp.refused;

    if (ok_old != ok_new) {
        abort();
    }

    if (!ok_old) {
        return;
    }

    for (i = 0; i < NGX_HTTP_LINGUAMATE_C_N; i++) {
        fuzz_same_jv(&ov[i], &nv[i]);
    }

    ngx_memzero(&oc, sizeof(ngx_http_linguamate_claims_t));
    ngx_memzero(&nc, sizeof(ngx_http_linguamate_claims_t));

    r_old = ngx_http_linguamate_jwt_claims(ov, &oc);
    r_new = ngx_http_linguamate_jwt_claims(nv, &nc);

    if (r_old != r_new || oc.exp != nc.exp || oc.nbf != nc.nbf
        || oc.iat != nc.iat || oc.iat_ms != nc.iat_ms
        || oc.has_nbf != nc.has_nbf || oc.has_iat != nc.has_iat
        || oc.has_iat_ms != nc.has_iat_ms)
    {
        abort();
    }

    fuzz_same_str(&oc.sub, &nc.sub);
    fuzz_same_str(&oc.sid, &nc.sid);
    fuzz_same_str(&oc.type, &nc.type);
    fuzz_same_str(&oc.jti, &nc.jti);

    /* $linguamate_jwt_claim_NAME of these claims */

    if (nlen == 0) {
        return;
    }

    key.data = (u_char *) name;
    key.len = nlen;

    if ((old_jparse(&ojp, pool, text, &key, &o1, 1,
                    NGX_HTTP_LINGUAMATE_JSON_MAX_DEPTH) == NGX_OK)
        != (ngx_http_linguamate_jparse(&njp, pool, text, &key, &n1, 1,
                                   NGX_HTTP_LINGUAMATE_JSON_MAX_DEPTH)
            == NGX_OK))
    {
        abort();
    }

    fuzz_same_jv(&o1, &n1);
}


static void
fuzz_header(ngx_pool_t *pool, ngx_str_t *text)
{
    ngx_int_t                      ok_old, ok_new;
    ngx_uint_t                     i, alg_old, alg_new, post_old, post_new;
    old_jparse_t                   ojp;
    ngx_http_linguamate_jv_t       ov[NGX_HTTP_LINGUAMATE_H_N];
    ngx_http_linguamate_jv_t       nv[NGX_HTTP_LINGUAMATE_H_N];
    ngx_http_linguamate_jparse_t   njp;

    /* what both readings are given: jwt_check()'s first checks */

    if (!ngx_http_linguamate_json_depth_ok(text->data, text->len, 4)
        || ngx_strlchr(text->data, text->data + text->len, '\0') != NULL)
    {
        return;
    }

    ok_old = old_jparse(&ojp, pool, text, ngx_http_linguamate_header_names,
                        ov, NGX_HTTP_LINGUAMATE_H_N, 4) == NGX_OK
             && ojp.object;

    ok_new = ngx_http_linguamate_jparse(&njp, pool, text,
                                        ngx_http_linguamate_header_names, nv,
                                        NGX_HTTP_LINGUAMATE_H_N, 4)
             == NGX_OK;

    if (ok_old != ok_new) {
        abort();
    }

    if (!ok_old) {
        return;
    }

    fuzz_same_jv(&ojp.first_alg, &njp.first_alg);

    /* 2. (BAD_SIGNATURE), as jwt_check() reads the first "alg" */

    alg_old = ojp.first_alg.type == NGX_HTTP_LINGUAMATE_JV_STRING
              && ojp.first_alg.str.len >= 5
              && ngx_strncmp(ojp.first_alg.str.data, "HS256", 5) == 0
              && (ojp.first_alg.str.len == 5
                  || ojp.first_alg.str.data[5] == '\0');
    alg_new = njp.first_alg.type == NGX_HTTP_LINGUAMATE_JV_STRING
              && njp.first_alg.str.len >= 5
              && ngx_strncmp(njp.first_alg.str.data, "HS256", 5) == 0
              && (njp.first_alg.str.len == 5
                  || njp.first_alg.str.data[5] == '\0');

    /* 4. (MALFORMED) once the signature held */

    post_old = ojp.refused
               || !old_json_strict_ok(text->data, text->len)
               || !ngx_http_linguamate_jwt_header_ok(ov);
    post_new = njp.refused || njp.lax
               || !ngx_http_linguamate_jwt_header_ok(nv);

    if (alg_old != alg_new || post_old != post_new) {
        abort();
    }

    for (i = 0; i < NGX_HTTP_LINGUAMATE_H_N; i++) {
        fuzz_same_jv(&ov[i], &nv[i]);
    }
}


static void
fuzz_segment(ngx_pool_t *pool, const uint8_t *data, size_t size)
{
    size_t     dots[2];
    u_char    *tok, *out;
    ngx_int_t  rc, ok_old;
    ngx_str_t  src, dst;

    /* the split's check: the segment as the middle of "e30.SEG.x" */

    tok = ngx_pnalloc(pool, size + 6);
    out = ngx_pnalloc(pool, ngx_base64_decoded_length(size) + 1);
    dst.data = ngx_pnalloc(pool, ngx_base64_decoded_length(size) + 1);

    if (tok == NULL || out == NULL || dst.data == NULL) {
        abort();
    }

    ngx_memcpy(tok, "e30.", 4);
    ngx_memcpy(tok + 4, data, size);
    ngx_memcpy(tok + 4 + size, ".x", 2);

    src.data = (u_char *) data;
    src.len = size;

    ok_old = old_jwt_split(tok, size + 6, dots) == 0;

    rc = ngx_http_linguamate_b64url(out, (u_char *) data, size);

    if ((rc != NGX_ERROR) != (ok_old || size == 0)
        || (ngx_http_linguamate_b64url(NULL, (u_char *) data, size)
            == NGX_ERROR) != (rc == NGX_ERROR))
    {
        abort();
    }

    if (rc == NGX_ERROR) {
        return;
    }

    if ((ngx_decode_base64url(&dst, &src) == NGX_OK) != (rc != NGX_DECLINED)
        || (rc >= 0 && ((size_t) rc != dst.len
                        || ngx_memcmp(out, dst.data, dst.len) != 0)))
    {
        abort();
    }
}


static void
fuzz_token(ngx_http_request_t *r, const uint8_t *data, size_t size)
{
    ngx_str_t                     token;
    ngx_uint_t                    r_old, r_new;
    const uint8_t                *sep;
    ngx_http_linguamate_claims_t  oc, nc;

    if (size && (data[0] & 1)) {
        sep = memchr(data + 1, 0xff, size - 1);

        if (sep == NULL) {
            return;
        }

        token = fuzz_ngx_jwt(r->pool, FUZZ_SECRET, data + 1, sep - data - 1,
                             sep + 1, data + size - sep - 1);

    } else {
        token.data = fuzz_ngx_strdup(data + 1, size ? size - 1 : 0);
        token.len = size ? size - 1 : 0;
    }

    r_old = old_jwt_check(r, &fuzz_lmcf, &token, &oc);
    r_new = ngx_http_linguamate_jwt_check(r, &fuzz_lmcf, &token, &nc);

    if (r_old != r_new) {
        abort();
    }

    if (r_old == NGX_HTTP_LINGUAMATE_AUTH_OK) {
        if (oc.exp != nc.exp || oc.nbf != nc.nbf || oc.iat != nc.iat
            || oc.iat_ms != nc.iat_ms || oc.has_nbf != nc.has_nbf
            || oc.has_iat != nc.has_iat || oc.has_iat_ms != nc.has_iat_ms)
        {
            abort();
        }

        fuzz_same_str(&oc.sub, &nc.sub);
        fuzz_same_str(&oc.sid, &nc.sid);
        fuzz_same_str(&oc.type, &nc.type);
        fuzz_same_str(&oc.jti, &nc.jti);
        fuzz_same_str(&oc.payload, &nc.payload);
    }

    if (!(size && (data[0] & 1))) {
        free(token.data);
    }
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    u_char              *s;
    size_t               nlen;
    ngx_str_t            text;
    const uint8_t       *sep;
    ngx_http_request_t  *r;

    if (size < 1) {
        return 0;
    }

    ngx_str_set(&fuzz_lmcf.jwt_secret, FUZZ_SECRET);
    ngx_str_set(&fuzz_lmcf.jwt_secret_previous, "fuzz-previous");
    fuzz_lmcf.jwt_cache = 64;

    r = fuzz_ngx_request(&fuzz_lmcf);

    if (ngx_http_linguamate_jwt_keys(&fuzz_lmcf, r->connection->log)
        != NGX_OK)
    {
        abort();
    }

    s = NULL;

    switch (data[0] % 4) {

    case 1:
        s = fuzz_ngx_strdup(data + 1, size - 1);
        text.data = s;
        text.len = size - 1;
        fuzz_header(r->pool, &text);
        break;

    case 2:
        fuzz_segment(r->pool, data + 1, size - 1);
        break;

    case 3:
        fuzz_token(r, data + 1, size - 1);
        break;

    default:
        /* a claim's name after the last 0xff byte, if any */

        sep = memrchr(data + 1, 0xff, size - 1);
        nlen = sep ? (size_t) (data + size - sep - 1) : 0;

        s = fuzz_ngx_strdup(data + 1, size - 1 - (sep ? nlen + 1 : 0));
        text.data = s;
        text.len = size - 1 - (sep ? nlen + 1 : 0);
        fuzz_claims(r->pool, &text, sep ? sep + 1 : NULL, nlen);
    }

    free(s);
    fuzz_ngx_request_free(r);

    return 0;
}
