/*
 * Copyright (C) ngx_linguamate developers
 *
 * Parse layer: the JWT token reader (see ngx_http_linguamate_token_parse.h).
 */

#include <math.h>

#include "ngx_http_linguamate_token_parse.h"


static ngx_inline u_char *ngx_http_linguamate_jws(
    ngx_http_linguamate_jparse_t *jp, u_char *p);
static u_char *ngx_http_linguamate_jws_more(ngx_http_linguamate_jparse_t *jp,
    u_char *p);
static u_char *ngx_http_linguamate_jstring(ngx_http_linguamate_jparse_t *jp,
    u_char *p);
static ngx_int_t ngx_http_linguamate_jhex4(u_char *p, uint32_t *cp);
static u_char *ngx_http_linguamate_junescape(u_char *dst, u_char *s,
    u_char *e);
static ngx_int_t ngx_http_linguamate_jnumber(u_char **pp,
    ngx_http_linguamate_jv_type_e *type, int64_t *num);
static void ngx_http_linguamate_jv_set(ngx_http_linguamate_jparse_t *jp,
    ngx_http_linguamate_jv_type_e type, u_char *s, size_t len, int64_t num);


ngx_str_t  ngx_http_linguamate_header_names[] = {
    ngx_string("alg"),
    ngx_string("typ"),
    ngx_string("crit")
};


ngx_str_t  ngx_http_linguamate_claim_names[] = {
    ngx_string("exp"),
    ngx_string("nbf"),
    ngx_string("iat"),
    ngx_string("iat_ms"),
    ngx_string("sub"),
    ngx_string("sid"),
    ngx_string("type"),
    ngx_string("jti")
};



/*
 * base64url without padding, as the split and nginx's decoder took it
 * before: len characters at src decoded to dst (or only checked, when dst
 * is NULL), the number of bytes written; NGX_ERROR for a character that
 * is not base64url ('=' and '.' included), NGX_DECLINED for a length no
 * encoding has (len % 4 == 1).  The bits past the last byte are ignored.
 */

ngx_int_t
ngx_http_linguamate_b64url(u_char *dst, u_char *src, size_t len)
{
    u_char    *d, *last;
    uint32_t   a, b, cc, dd;

    /* 0x80: not base64url */
    static const u_char  basis[256] = {
        128, 128, 128, 128, 128, 128, 128, 128,
        128, 128, 128, 128, 128, 128, 128, 128,
        128, 128, 128, 128, 128, 128, 128, 128,
        128, 128, 128, 128, 128, 128, 128, 128,
        128, 128, 128, 128, 128, 128, 128, 128,
        128, 128, 128, 128, 128,  62, 128, 128,
         52,  53,  54,  55,  56,  57,  58,  59,
         60,  61, 128, 128, 128, 128, 128, 128,
        128,   0,   1,   2,   3,   4,   5,   6,
          7,   8,   9,  10,  11,  12,  13,  14,
         15,  16,  17,  18,  19,  20,  21,  22,
         23,  24,  25, 128, 128, 128, 128,  63,
        128,  26,  27,  28,  29,  30,  31,  32,
         33,  34,  35,  36,  37,  38,  39,  40,
         41,  42,  43,  44,  45,  46,  47,  48,
         49,  50,  51, 128, 128, 128, 128, 128,
        128, 128, 128, 128, 128, 128, 128, 128,
        128, 128, 128, 128, 128, 128, 128, 128,
        128, 128, 128, 128, 128, 128, 128, 128,
        128, 128, 128, 128, 128, 128, 128, 128,
        128, 128, 128, 128, 128, 128, 128, 128,
        128, 128, 128, 128, 128, 128, 128, 128,
        128, 128, 128, 128, 128, 128, 128, 128,
        128, 128, 128, 128, 128, 128, 128, 128,
        128, 128, 128, 128, 128, 128, 128, 128,
        128, 128, 128, 128, 128, 128, 128, 128,
        128, 128, 128, 128, 128, 128, 128, 128,
        128, 128, 128, 128, 128, 128, 128, 128,
        128, 128, 128, 128, 128, 128, 128, 128,
        128, 128, 128, 128, 128, 128, 128, 128,
        128, 128, 128, 128, 128, 128, 128, 128,
        128, 128, 128, 128, 128, 128, 128, 128
    };

    if (dst == NULL) {
        for (last = src + len; src < last; src++) {
            if (basis[*src] & 0x80) {
                return NGX_ERROR;
            }
        }

        return (len & 3) == 1 ? NGX_DECLINED : 0;
    }

    d = dst;
    last = src + (len & ~(size_t) 3);

    for ( /* void */ ; src < last; src += 4) {
        a = basis[src[0]];
        b = basis[src[1]];
        cc = basis[src[2]];
        dd = basis[src[3]];

        if ((a | b | cc | dd) & 0x80) {
            return NGX_ERROR;
        }

        a = (a << 18) | (b << 12) | (cc << 6) | dd;

        d[0] = (u_char) (a >> 16);
        d[1] = (u_char) (a >> 8);
        d[2] = (u_char) a;
        d += 3;
    }

    /* 1 to 3 characters left */

    a = 0;

    for (b = 0; b < (len & 3); b++) {
        cc = basis[src[b]];

        if (cc & 0x80) {
            return NGX_ERROR;
        }

        a |= cc << (18 - 6 * b);
    }

    switch (len & 3) {

    case 1:
        return NGX_DECLINED;

    case 3:
        d[1] = (u_char) (a >> 8);
        /* fall through */

    case 2:
        d[0] = (u_char) (a >> 16);
        d += (len & 3) - 1;
    }

    return d - dst;
}


/* the header's last "alg" is "HS256", its "typ" "JWT" if any, no "crit" */

ngx_uint_t
ngx_http_linguamate_jwt_header_ok(ngx_http_linguamate_jv_t *hv)
{
    ngx_http_linguamate_jv_t  *alg, *typ;

    alg = &hv[NGX_HTTP_LINGUAMATE_H_ALG];
    typ = &hv[NGX_HTTP_LINGUAMATE_H_TYP];

    if (alg->type != NGX_HTTP_LINGUAMATE_JV_STRING
        || alg->str.len != 5
        || ngx_strncmp(alg->str.data, "HS256", 5) != 0)
    {
        return 0;
    }

    if (typ->type == NGX_HTTP_LINGUAMATE_JV_STRING
        && (typ->str.len != 3
            || ngx_strncasecmp(typ->str.data, (u_char *) "JWT", 3) != 0))
    {
        return 0;
    }

    return hv[NGX_HTTP_LINGUAMATE_H_CRIT].type == NGX_HTTP_LINGUAMATE_JV_NONE;
}



/*
 * The reader of the header and the claims: one pass over the decoded
 * JSON text (with a NUL byte at text->len, its end), no callbacks, no
 * tree, no allocation but the decoded copy of a string with escapes that
 * is kept.  values[i] receives the last member named names[i] at depth 1,
 * as jansson and JSON.parse read them.  It reads exactly what the yajl
 * parse and the strict check before it read (fuzz/fuzz_jread.c runs both
 * on the same bytes):
 *
 *   - strict (the claims): RFC 8259 JSON whose root is an object nesting
 *     at most max_depth deep, strings in strict UTF-8 without \u0000 or a
 *     lone surrogate, no NUL byte; anything else is an error;
 *   - lenient (a header, read as yajl_tree read it, comments allowed):
 *     also comments, \v and \f as white space, yajl's looser UTF-8 and \u
 *     escapes (decoded as yajl decoded them) and an unterminated string
 *     after the root; each sets jp->lax, which the header's checks refuse
 *     once the signature held.  The first "alg" is noted in jp->first_alg.
 *
 * A number jansson refuses (an integer beyond 64 bits, a real that
 * overflows) sets jp->refused, and is not recorded (yajl's callback
 * recorded nothing).  NGX_OK when the text was read.
 */

ngx_int_t
ngx_http_linguamate_jparse(ngx_http_linguamate_jparse_t *jp,
    ngx_pool_t *pool, ngx_str_t *text, ngx_str_t *names,
    ngx_http_linguamate_jv_t *values, ngx_uint_t n, ngx_uint_t max_depth)
{
    u_char                         *p, *s, *e, *k, buf[64];
    size_t                          len;
    const char                     *lit;
    int64_t                         num;
    uint32_t                        objects;
    ngx_int_t                       rc;
    ngx_uint_t                      depth, i, header, object;
    ngx_http_linguamate_jv_type_e   type;

    header = (names == ngx_http_linguamate_header_names);

    ngx_memzero(jp, sizeof(ngx_http_linguamate_jparse_t));
    ngx_memzero(values, n * sizeof(ngx_http_linguamate_jv_t));

    jp->pool = pool;
    jp->end = text->data + text->len;
    jp->names = names;
    jp->n = n;
    jp->values = values;
    jp->member = -1;
    jp->first_alg_wanted = header;
    jp->lenient = header;

    /* bit d of "objects": the container at depth d + 1 is an object */

    objects = 0;
    depth = 0;

    p = ngx_http_linguamate_jws(jp, text->data);

    if (*p != '{' || max_depth > 32) {
        return NGX_ERROR;
    }

value:

    switch (*p) {

    case '{':
    case '[':
        if (depth == 1) {
            ngx_http_linguamate_jv_set(jp, NGX_HTTP_LINGUAMATE_JV_OTHER,
                                       NULL, 0, 0);
        }

        if (depth == max_depth) {
            return NGX_ERROR;
        }

        if (*p == '{') {
            objects |= (uint32_t) 1 << depth;

        } else {
            objects &= ~((uint32_t) 1 << depth);
        }

        depth++;

        object = (*p == '{');
        p = ngx_http_linguamate_jws(jp, p + 1);

        if (*p == (object ? '}' : ']')) {
            p++;
            goto closed;
        }

        if (object) {
            goto key;
        }

        goto value;

    case '"':
        s = p + 1;
        e = ngx_http_linguamate_jstring(jp, s);

        if (e == NULL || *e != '"') {
            return NGX_ERROR;
        }

        p = e + 1;

        if (depth != 1 || (jp->member < 0 && !jp->first_alg_next)) {
            break;
        }

        len = e - s;

        if (jp->escaped) {
            k = ngx_pnalloc(pool, len);
            if (k == NULL) {
                return NGX_ERROR;
            }

            len = ngx_http_linguamate_junescape(k, s, e) - k;
            s = k;
        }

        ngx_http_linguamate_jv_set(jp, NGX_HTTP_LINGUAMATE_JV_STRING, s, len,
                                   0);
        break;

    case 't':
    case 'f':
    case 'n':
        lit = (*p == 't') ? "true" : (*p == 'f') ? "false" : "null";

        for (i = 1; lit[i]; i++) {
            if (p[i] != (u_char) lit[i]) {   /* the NUL at the end too */
                return NGX_ERROR;
            }
        }

        p += i;

        if (depth == 1) {
            ngx_http_linguamate_jv_set(jp,
                (lit[0] == 't') ? NGX_HTTP_LINGUAMATE_JV_TRUE
                : (lit[0] == 'f') ? NGX_HTTP_LINGUAMATE_JV_FALSE
                : NGX_HTTP_LINGUAMATE_JV_OTHER, NULL, 0, 0);
        }

        break;

    default:
        s = p;
        rc = ngx_http_linguamate_jnumber(&p, &type, &num);

        if (rc == NGX_ERROR) {
            return NGX_ERROR;
        }

        if (rc == NGX_DECLINED) {
            jp->refused = 1;        /* jansson: too big, or an overflow */
            break;
        }

        if (depth == 1) {
            ngx_http_linguamate_jv_set(jp, type, s, p - s, num);
        }

        break;
    }

after:

    /* after a value: a comma, or the end of its container */

    p = ngx_http_linguamate_jws(jp, p);
    object = (objects >> (depth - 1)) & 1;

    if (*p == ',') {
        p = ngx_http_linguamate_jws(jp, p + 1);

        if (object) {
            goto key;
        }

        goto value;
    }

    if (*p != (object ? '}' : ']')) {
        return NGX_ERROR;
    }

    p++;

closed:

    if (--depth) {
        goto after;
    }

    /* the root was read: white space to the end, or yajl's extra */

    p = ngx_http_linguamate_jws(jp, p);

    if (p == jp->end) {
        return NGX_OK;
    }

    if (jp->lenient && *p == '"'
        && ngx_http_linguamate_jstring(jp, p + 1) == jp->end)
    {
        jp->lax = 1;    /* yajl took it for the end of the text */
        return NGX_OK;
    }

    return NGX_ERROR;

key:

    if (*p != '"') {
        return NGX_ERROR;
    }

    s = p + 1;
    e = ngx_http_linguamate_jstring(jp, s);

    if (e == NULL || *e != '"') {
        return NGX_ERROR;
    }

    if (depth == 1) {
        jp->member = -1;
        len = e - s;

        if (jp->escaped) {
            k = (len <= sizeof(buf)) ? buf : ngx_pnalloc(pool, len);
            if (k == NULL) {
                return NGX_ERROR;
            }

            len = ngx_http_linguamate_junescape(k, s, e) - k;
            s = k;
        }

        /* the first "alg", compared as a C string, as yajl_tree_get() did */

        if (jp->first_alg_wanted && len >= 3 && s[0] == 'a' && s[1] == 'l'
            && s[2] == 'g' && (len == 3 || s[3] == '\0'))
        {
            jp->first_alg_wanted = 0;
            jp->first_alg_next = 1;
        }

        for (i = 0; i < n; i++) {
            if (names[i].len == len && (len == 0 || names[i].data[0] == s[0])
                && ngx_memcmp(names[i].data, s, len) == 0)
            {
                jp->member = i;
                break;
            }
        }
    }

    p = ngx_http_linguamate_jws(jp, e + 1);

    if (*p != ':') {
        return NGX_ERROR;
    }

    p = ngx_http_linguamate_jws(jp, p + 1);

    goto value;
}


/* white space: yajl's comments, \v and \f too when lenient (jp->lax) */

static ngx_inline u_char *
ngx_http_linguamate_jws(ngx_http_linguamate_jparse_t *jp, u_char *p)
{
    /* most often none: a token's JSON is compact */

    if (*p > ' ' && *p != '/') {
        return p;
    }

    return ngx_http_linguamate_jws_more(jp, p);
}


static u_char *
ngx_http_linguamate_jws_more(ngx_http_linguamate_jparse_t *jp, u_char *p)
{
    for ( ;; ) {
        switch (*p) {

        case ' ':
        case '\t':
        case '\n':
        case '\r':
            p++;
            continue;

        case '\v':
        case '\f':
            if (!jp->lenient) {
                return p;
            }

            jp->lax = 1;
            p++;
            continue;

        case '/':
            if (!jp->lenient || (p[1] != '/' && p[1] != '*')) {
                return p;
            }

            jp->lax = 1;

            if (p[1] == '/') {
                for (p += 2; p < jp->end && *p != '\n'; p++) { /* void */ }

                if (p < jp->end) {
                    p++;
                }

                continue;
            }

            /* an unterminated comment ends the text, as for yajl */

            for (p += 2; p < jp->end; p++) {
                if (p[0] == '*' && p + 1 < jp->end && p[1] == '/') {
                    break;
                }
            }

            p = (p < jp->end) ? p + 2 : jp->end;
            continue;

        default:
            return p;
        }
    }
}


/*
 * A string's body from p, after its opening quote: its closing quote, the
 * end of the text if the string reaches it on a character's boundary, or
 * NULL.  jp->escaped tells whether it has escapes.
 */

static u_char *
ngx_http_linguamate_jstring(ngx_http_linguamate_jparse_t *jp, u_char *p)
{
    u_char    c;
    uint32_t  cp, lo;

    /* 0: as it is, 1: '"', 2: '\\', 3: a control character, 4: not ASCII */
    static const u_char  cls[256] = {
        3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
        3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
        0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4,
        4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4,
        4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4,
        4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4,
        4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4,
        4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4,
        4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4,
        4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4
    };

    jp->escaped = 0;

    for ( ;; ) {

        while (cls[*p] == 0) {
            p++;
        }

        switch (cls[*p]) {

        case 1:
            return p;

        case 3:
            /* the NUL byte at the end, or a control character */
            return (p == jp->end) ? p : NULL;

        case 2:
            jp->escaped = 1;
            c = p[1];

            if (c != 'u') {
                if (c == '"' || c == '\\' || c == '/' || c == 'b'
                    || c == 'f' || c == 'n' || c == 'r' || c == 't')
                {
                    p += 2;
                    continue;
                }

                return NULL;
            }

            if (ngx_http_linguamate_jhex4(p + 2, &cp) != NGX_OK) {
                return NULL;
            }

            p += 6;

            if (cp >= 0xd800 && cp <= 0xdbff && p[0] == '\\' && p[1] == 'u'
                && ngx_http_linguamate_jhex4(p + 2, &lo) == NGX_OK
                && lo >= 0xdc00 && lo <= 0xdfff)
            {
                p += 6;
                continue;
            }

            if (cp != 0 && (cp < 0xd800 || cp > 0xdfff)) {
                continue;
            }

            /* \u0000 or a lone surrogate: yajl's, not JSON.parse's */
            break;

        default:
            /* UTF-8 as yajl checked it: a lead byte, its continuations */

            c = p[0];

            if ((c >> 5) == 0x6) {
                if ((p[1] & 0xc0) != 0x80) {
                    return NULL;
                }

                cp = c & 0x1f;
                p += 2;

                if (cp >= 2) {
                    continue;
                }

            } else if ((c >> 4) == 0xe) {
                if ((p[1] & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80) {
                    return NULL;
                }

                cp = ((uint32_t) (c & 0x0f) << 12)
                     | ((uint32_t) (p[1] & 0x3f) << 6) | (p[2] & 0x3f);
                p += 3;

                if (cp >= 0x800 && (cp < 0xd800 || cp > 0xdfff)) {
                    continue;
                }

            } else if ((c >> 3) == 0x1e) {
                if ((p[1] & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80
                    || (p[3] & 0xc0) != 0x80)
                {
                    return NULL;
                }

                cp = ((uint32_t) (c & 0x07) << 18)
                     | ((uint32_t) (p[1] & 0x3f) << 12)
                     | ((uint32_t) (p[2] & 0x3f) << 6) | (p[3] & 0x3f);
                p += 4;

                if (cp >= 0x10000 && cp <= 0x10ffff) {
                    continue;
                }

            } else {
                return NULL;
            }

            /* an overlong form, a surrogate, beyond U+10FFFF: yajl's */
            break;
        }

        if (!jp->lenient) {
            return NULL;
        }

        jp->lax = 1;
    }
}


static ngx_int_t
ngx_http_linguamate_jhex4(u_char *p, uint32_t *cp)
{
    ngx_int_t  n;

    /* not a hex digit (the NUL byte at the end included): NGX_ERROR */

    n = ngx_hextoi(p, 4);
    *cp = (uint32_t) n;

    return n == NGX_ERROR ? NGX_ERROR : NGX_OK;
}


/*
 * A string's body [s, e), which jstring() read, with its escapes decoded
 * as yajl decoded them (\u0000 a NUL byte, a lone high surrogate "?"),
 * to dst; returns the end of dst.
 */

static u_char *
ngx_http_linguamate_junescape(u_char *dst, u_char *s, u_char *e)
{
    u_char    c;
    uint32_t  cp, lo;

    while (s < e) {

        if (*s != '\\') {
            *dst++ = *s++;
            continue;
        }

        c = s[1];
        s += 2;

        switch (c) {

        case 'b':
            *dst++ = '\b';
            continue;

        case 'f':
            *dst++ = '\f';
            continue;

        case 'n':
            *dst++ = '\n';
            continue;

        case 'r':
            *dst++ = '\r';
            continue;

        case 't':
            *dst++ = '\t';
            continue;

        case 'u':
            break;

        default:
            *dst++ = c;
            continue;
        }

        (void) ngx_http_linguamate_jhex4(s, &cp);
        s += 4;

        if ((cp & 0xfc00) == 0xd800) {
            if (s + 1 >= e || s[0] != '\\' || s[1] != 'u') {
                *dst++ = '?';
                continue;
            }

            (void) ngx_http_linguamate_jhex4(s + 2, &lo);
            s += 6;

            cp = ((cp & 0x3f) << 10) | ((((cp >> 6) & 0xf) + 1) << 16)
                 | (lo & 0x3ff);
        }

        if (cp < 0x80) {
            *dst++ = (u_char) cp;

        } else if (cp < 0x800) {
            *dst++ = (u_char) (0xc0 | (cp >> 6));
            *dst++ = (u_char) (0x80 | (cp & 0x3f));

        } else if (cp < 0x10000) {
            *dst++ = (u_char) (0xe0 | (cp >> 12));
            *dst++ = (u_char) (0x80 | ((cp >> 6) & 0x3f));
            *dst++ = (u_char) (0x80 | (cp & 0x3f));

        } else {
            *dst++ = (u_char) (0xf0 | (cp >> 18));
            *dst++ = (u_char) (0x80 | ((cp >> 12) & 0x3f));
            *dst++ = (u_char) (0x80 | ((cp >> 6) & 0x3f));
            *dst++ = (u_char) (0x80 | (cp & 0x3f));
        }
    }

    return dst;
}


/*
 * A number at *p, as yajl's lexer read it and jansson took it: NGX_OK
 * with its type (an integer in long long, not LLONG_MIN, or any other
 * number) and value, NGX_DECLINED when jansson refuses it (an integer out
 * of long long, a real that overflows), NGX_ERROR when it is not one.
 */

static ngx_int_t
ngx_http_linguamate_jnumber(u_char **pp, ngx_http_linguamate_jv_type_e *type,
    int64_t *num)
{
    u_char      *p, *s, buf[64];
    double       d;
    uint64_t     n, max, dig;
    ngx_uint_t   neg, real;

    p = *pp;
    s = p;
    neg = (*p == '-');
    p += neg;
    n = 0;

    if (*p == '0') {
        p++;

    } else if (*p >= '1' && *p <= '9') {
        /* up to 18 digits, which no 64-bit integer overflows */

        while (*p >= '0' && *p <= '9') {
            n = n * 10 + (uint64_t) (*p++ - '0');
        }

    } else {
        return NGX_ERROR;
    }

    /* a fraction, an exponent: each with at least one digit */

    real = 0;

    while ((*p == '.' && real == 0) || ((*p | 0x20) == 'e' && real < 2)) {
        real = (*p == '.') ? 1 : 2;
        p++;

        if (real == 2 && (*p == '+' || *p == '-')) {
            p++;
        }

        if (*p < '0' || *p > '9') {
            return NGX_ERROR;
        }

        while (*p >= '0' && *p <= '9') {
            p++;
        }
    }

    *pp = p;

    if (real) {
        *type = NGX_HTTP_LINGUAMATE_JV_NUMBER;
        *num = 0;

        /* strtod() stops at the number's end: the text is NUL-terminated */

        if (p - s < (ssize_t) sizeof(buf)) {
            *ngx_cpymem(buf, s, p - s) = '\0';
            d = strtod((char *) buf, NULL);

        } else {
            d = strtod((char *) s, NULL);
        }

        return isinf(d) ? NGX_DECLINED : NGX_OK;
    }

    if (p - s - neg > 18) {
        max = neg ? (uint64_t) 1 << 63 : ((uint64_t) 1 << 63) - 1;
        n = 0;

        for (s += neg; s < p; s++) {
            dig = (uint64_t) (*s - '0');

            if (n > (max - dig) / 10) {
                return NGX_DECLINED;
            }

            n = n * 10 + dig;
        }
    }

    *type = (neg && n == (uint64_t) 1 << 63) ? NGX_HTTP_LINGUAMATE_JV_NUMBER
                                              : NGX_HTTP_LINGUAMATE_JV_INTEGER;
    *num = neg ? (int64_t) (0 - n) : (int64_t) n;

    return NGX_OK;
}


/* a value at depth 1 is recorded under its member's name */

static void
ngx_http_linguamate_jv_set(ngx_http_linguamate_jparse_t *jp,
    ngx_http_linguamate_jv_type_e type, u_char *s, size_t len, int64_t num)
{
    ngx_http_linguamate_jv_t  v;

    if (jp->member < 0 && !jp->first_alg_next) {
        return;
    }

    v.type = type;
    v.str.data = s;
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
}
