/*
 * Copyright (C) ngx_linguamate developers
 *
 * The "email" strings of a JSON input held in memory, only where a login
 * names its account: {"email":..}, tRPC's {"json":{"email":..}} and its
 * batches {"0":{"json":{"email":..}}}, so that an email hidden elsewhere
 * cannot stand in for the account.  Duplicate keys are all counted (the
 * app, with JSON.parse, reads the last one).  Whatever the app would read
 * differently sets lp->unread: a byte-order mark (Request.json() drops
 * it), bytes that are not UTF-8 (replaced by U+FFFD there), a lone
 * surrogate escape (yajl and JSON.parse disagree), not JSON, nested
 * deeper than the edge reads, superjson meta that touches the email.
 *
 * A stream: login_start(), login_feed() with each piece of the body in
 * turn, login_end() (the reason, or 0 with the accounts in lp->email[]).
 * lockout.c hands it a request's body or a GET call's "input";
 * fuzz/fuzz_lockout.c links this file alone.
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include <yajl/yajl_parse.h>

#include "ngx_http_linguamate_login_parse.h"


static void ngx_http_linguamate_email_bytes(
    ngx_http_linguamate_login_parse_t *ec, u_char *p, u_char *last);
static void ngx_http_linguamate_email_escape(
    ngx_http_linguamate_login_parse_t *ec, u_char c);
static ngx_uint_t ngx_http_linguamate_email_key(
    ngx_http_linguamate_login_parse_t *ec, ngx_uint_t d, const char *name);
static ngx_uint_t ngx_http_linguamate_email_input(
    ngx_http_linguamate_login_parse_t *ec, ngx_uint_t d);
static ngx_uint_t ngx_http_linguamate_email_meta(
    ngx_http_linguamate_login_parse_t *ec, ngx_uint_t d, const char *name);
static ngx_uint_t ngx_http_linguamate_email_place(
    ngx_http_linguamate_login_parse_t *ec);
static int ngx_http_linguamate_email_value(
    ngx_http_linguamate_login_parse_t *ec, ngx_uint_t unread);
static void ngx_http_linguamate_email_path(
    ngx_http_linguamate_login_parse_t *ec, const u_char *s, size_t len);
static int ngx_http_linguamate_json_null(void *data);
static int ngx_http_linguamate_json_map_key(void *data, const unsigned char *k,
    size_t len);
static int ngx_http_linguamate_json_string(void *data, const unsigned char *s,
    size_t len);
static int ngx_http_linguamate_json_start_map(void *data);
static int ngx_http_linguamate_json_start_array(void *data);
static int ngx_http_linguamate_json_open(ngx_http_linguamate_login_parse_t *ec,
    ngx_uint_t map);
static int ngx_http_linguamate_json_end(void *data);
static int ngx_http_linguamate_json_bool(void *data, int b);
static int ngx_http_linguamate_json_number(void *data, const char *n,
    size_t len);


static yajl_callbacks  ngx_http_linguamate_email_callbacks = {
    ngx_http_linguamate_json_null,
    ngx_http_linguamate_json_bool,
    NULL,
    NULL,
    ngx_http_linguamate_json_number,
    ngx_http_linguamate_json_string,
    ngx_http_linguamate_json_start_map,
    ngx_http_linguamate_json_map_key,
    ngx_http_linguamate_json_end,
    ngx_http_linguamate_json_start_array,
    ngx_http_linguamate_json_end
};


/* the reader, ready for the first piece; NGX_ERROR: no memory */

ngx_int_t
ngx_http_linguamate_login_start(ngx_http_linguamate_login_parse_t *lp,
    ngx_pool_t *pool)
{
    lp->yajl = yajl_alloc(&ngx_http_linguamate_email_callbacks, NULL, lp);
    if (lp->yajl == NULL) {
        return NGX_ERROR;
    }

    lp->pool = pool;
    lp->lo = 0x80;
    lp->hi = 0xbf;

    return NGX_OK;
}


/* a piece of the body: nothing more is read once a reason is set */

void
ngx_http_linguamate_login_feed(ngx_http_linguamate_login_parse_t *lp,
    u_char *p, u_char *last)
{
    if (lp->unread || last == p) {
        return;
    }

    ngx_http_linguamate_email_bytes(lp, p, last);

    if (!lp->unread
        && yajl_parse(lp->yajl, p, last - p) != yajl_status_ok
        && !lp->unread)
    {
        lp->unread = NGX_HTTP_LINGUAMATE_UNREAD_JSON;
    }
}


/* the end of the body: the reason to refuse it, or 0; frees the parser */

ngx_uint_t
ngx_http_linguamate_login_end(ngx_http_linguamate_login_parse_t *lp)
{
    if (!lp->unread) {
        if (lp->need) {
            lp->unread = NGX_HTTP_LINGUAMATE_UNREAD_UTF8;

        } else if (lp->high) {
            lp->unread = NGX_HTTP_LINGUAMATE_UNREAD_SURROGATE;

        } else if (yajl_complete_parse(lp->yajl) != yajl_status_ok
                   && !lp->unread)
        {
            lp->unread = NGX_HTTP_LINGUAMATE_UNREAD_JSON;
        }
    }

    yajl_free(lp->yajl);
    lp->yajl = NULL;

    return lp->unread;
}


/* one pass over the bytes: the byte-order mark, UTF-8, \u escapes */

static void
ngx_http_linguamate_email_bytes(ngx_http_linguamate_login_parse_t *ec,
    u_char *p, u_char *last)
{
    u_char  c;

    for ( /* void */ ; p < last; p++, ec->offset++) {
        c = *p;

        if (ec->offset < 3 && c == (u_char) "\xef\xbb\xbf"[ec->offset]) {
            if (ec->offset == 2) {
                ec->unread = NGX_HTTP_LINGUAMATE_UNREAD_BOM;
                return;
            }

        } else if (ec->offset < 3) {
            ec->offset = 3;     /* no mark: stop looking */
        }

        if (ec->need) {
            if (c < ec->lo || c > ec->hi) {
                ec->unread = NGX_HTTP_LINGUAMATE_UNREAD_UTF8;
                return;
            }

            ec->need--;
            ec->lo = 0x80;
            ec->hi = 0xbf;
            continue;
        }

        if (c >= 0x80) {
            if (c >= 0xc2 && c <= 0xdf) {
                ec->need = 1;

            } else if (c >= 0xe0 && c <= 0xef) {
                ec->need = 2;
                ec->lo = (c == 0xe0) ? 0xa0 : 0x80;
                ec->hi = (c == 0xed) ? 0x9f : 0xbf;

            } else if (c >= 0xf0 && c <= 0xf4) {
                ec->need = 3;
                ec->lo = (c == 0xf0) ? 0x90 : 0x80;
                ec->hi = (c == 0xf4) ? 0x8f : 0xbf;

            } else {
                ec->unread = NGX_HTTP_LINGUAMATE_UNREAD_UTF8;
                return;
            }

            continue;
        }

        ngx_http_linguamate_email_escape(ec, c);

        if (ec->unread) {
            return;
        }
    }
}


/*
 * \uD800-\uDBFF must be followed by \uDC00-\uDFFF and the latter comes
 * only after the former: yajl turns a lone one into '?' or joins it with
 * whatever follows, JSON.parse keeps it.  A backslash outside a string
 * is not JSON, which the parser refuses anyway.
 */

static void
ngx_http_linguamate_email_escape(ngx_http_linguamate_login_parse_t *ec,
    u_char c)
{
    ngx_int_t  h;

    switch (ec->esc) {

    case 0:
        if (c == '\\') {
            ec->esc = 1;

        } else if (ec->high) {
            ec->unread = NGX_HTTP_LINGUAMATE_UNREAD_SURROGATE;
        }

        return;

    case 1:
        if (c == 'u') {
            ec->esc = 2;
            ec->code = 0;
            return;
        }

        if (ec->high) {
            ec->unread = NGX_HTTP_LINGUAMATE_UNREAD_SURROGATE;
        }

        ec->esc = 0;
        return;

    default:
        h = ngx_hextoi(&c, 1);

        if (h == NGX_ERROR) {
            ec->esc = 0;        /* not JSON: the parser says so */
            return;
        }

        ec->code = ec->code * 16 + h;

        if (++ec->esc < 6) {
            return;
        }

        ec->esc = 0;

        if (ec->code >= 0xd800 && ec->code <= 0xdbff && !ec->high) {
            ec->high = 1;

        } else if (ec->code >= 0xdc00 && ec->code <= 0xdfff && ec->high) {
            ec->high = 0;

        } else if (ec->high
                   || (ec->code >= 0xd800 && ec->code <= 0xdfff))
        {
            ec->unread = NGX_HTTP_LINGUAMATE_UNREAD_SURROGATE;
        }
    }
}


/* the key at depth d is NAME */

static ngx_uint_t
ngx_http_linguamate_email_key(ngx_http_linguamate_login_parse_t *ec,
    ngx_uint_t d, const char *name)
{
    size_t  len;

    len = ngx_strlen(name);

    return ec->key_len[d] == len && ngx_strncmp(ec->key[d], name, len) == 0;
}


/*
 * The object at depth d is a call's input as tRPC hands it to superjson:
 * the body (or the "input" argument) itself, or an element "0", "1"...
 * of a batch's.
 */

static ngx_uint_t
ngx_http_linguamate_email_input(ngx_http_linguamate_login_parse_t *ec,
    ngx_uint_t d)
{
    size_t  i;

    if (d == 1) {
        return 1;
    }

    if (d != 2 || ec->parent_len[2] == 0
        || ec->parent_len[2] > NGX_HTTP_LINGUAMATE_KEY_SHORT)
    {
        return 0;
    }

    for (i = 0; i < ec->parent_len[2]; i++) {
        if (ec->parent[2][i] < '0' || ec->parent[2][i] > '9') {
            return 0;
        }
    }

    return 1;
}


/*
 * The value to come at depth d is an input's meta.NAME: the meta object
 * is at depth 2 (the body's) or 3 (a batch element's).
 */

static ngx_uint_t
ngx_http_linguamate_email_meta(ngx_http_linguamate_login_parse_t *ec,
    ngx_uint_t d, const char *name)
{
    return (d == 2 || d == 3) && ngx_http_linguamate_email_key(ec, d, name)
           && ec->parent_len[d] == 4
           && ngx_strncmp(ec->parent[d], "meta", 4) == 0
           && ngx_http_linguamate_email_input(ec, d - 1);
}


/* the value to come is an account: {"email"}, an input's json.email */

static ngx_uint_t
ngx_http_linguamate_email_place(ngx_http_linguamate_login_parse_t *ec)
{
    ngx_uint_t  d;

    d = ec->depth;

    if (d == 0 || !ngx_http_linguamate_email_key(ec, d, "email")) {
        return 0;
    }

    return d == 1
           || (ec->parent_len[d] == 4
               && ngx_strncmp(ec->parent[d], "json", 4) == 0
               && ngx_http_linguamate_email_input(ec, d - 1));
}


/*
 * A value other than a string or a container: refused where an account
 * or meta.values is expected ("values": null changes nothing)
 */

static int
ngx_http_linguamate_email_value(ngx_http_linguamate_login_parse_t *ec,
    ngx_uint_t unread)
{
    if (ngx_http_linguamate_email_place(ec)) {
        ec->unread = NGX_HTTP_LINGUAMATE_UNREAD_NOT_STRING;

    } else if (unread
               && ngx_http_linguamate_email_meta(ec, ec->depth, "values"))
    {
        ec->unread = unread;
    }

    return !ec->unread;
}


/*
 * A superjson path of meta (a key of "values", any string of
 * "referentialEqualities"): refused when its first segment (up to an
 * unescaped '.') is "email", as the value it annotates, or the place
 * it sets, is then the account.
 */

static void
ngx_http_linguamate_email_path(ngx_http_linguamate_login_parse_t *ec,
    const u_char *s, size_t len)
{
    if (len >= 5 && ngx_strncmp(s, "email", 5) == 0
        && (len == 5 || s[5] == '.'))
    {
        ec->unread = NGX_HTTP_LINGUAMATE_UNREAD_META;
    }
}


static int
ngx_http_linguamate_json_map_key(void *data, const unsigned char *k,
    size_t len)
{
    ngx_http_linguamate_login_parse_t *ec = data;

    ngx_uint_t  d;

    d = ec->depth;

    ec->key_len[d] = len;
    ngx_memcpy(ec->key[d], k, ngx_min(len, NGX_HTTP_LINGUAMATE_KEY_SHORT));

    if (ec->values == d || (ec->refs && d >= ec->refs)) {
        ngx_http_linguamate_email_path(ec, k, len);
    }

    return !ec->unread;
}


/*
 * An account as accounts are compared: spaces trimmed, lower-cased;
 * control characters and anything outside ASCII refused (an app that
 * trims and lower-cases with JavaScript then compares the same bytes)
 */

static int
ngx_http_linguamate_json_string(void *data, const unsigned char *s,
    size_t len)
{
    ngx_http_linguamate_login_parse_t *ec = data;

    u_char      *p;
    ngx_uint_t   i;

    if ((ec->refs && ec->depth >= ec->refs)
        || ngx_http_linguamate_email_meta(ec, ec->depth,
                                          "referentialEqualities"))
    {
        ngx_http_linguamate_email_path(ec, s, len);
        return !ec->unread;
    }

    if (ngx_http_linguamate_email_meta(ec, ec->depth, "values")) {
        ec->unread = NGX_HTTP_LINGUAMATE_UNREAD_META;
        return 0;
    }

    if (!ngx_http_linguamate_email_place(ec)) {
        return 1;
    }

    for (i = 0; i < len; i++) {
        if (s[i] < 0x20 || s[i] == 0x7f) {
            ec->unread = NGX_HTTP_LINGUAMATE_UNREAD_CONTROL;
            return 0;
        }

        if (s[i] >= 0x80) {
            ec->unread = NGX_HTTP_LINGUAMATE_UNREAD_ASCII;
            return 0;
        }
    }

    while (len && s[0] == ' ') {
        s++;
        len--;
    }

    while (len && s[len - 1] == ' ') {
        len--;
    }

    if (len == 0 || len > NGX_HTTP_LINGUAMATE_EMAIL_MAX) {
        ec->unread = len ? NGX_HTTP_LINGUAMATE_UNREAD_LONG
                         : NGX_HTTP_LINGUAMATE_UNREAD_EMPTY;
        return 0;
    }

    for (i = 0; i < ec->n; i++) {
        if (ec->email[i].len == len
            && ngx_strncasecmp(ec->email[i].data, (u_char *) s, len) == 0)
        {
            return 1;
        }
    }

    if (ec->n == NGX_HTTP_LINGUAMATE_ACCOUNTS) {
        ec->unread = NGX_HTTP_LINGUAMATE_UNREAD_ACCOUNTS;
        return 0;
    }

    p = ngx_pnalloc(ec->pool, len);
    if (p == NULL) {
        return 0;
    }

    ngx_strlow(p, (u_char *) s, len);

    ec->email[ec->n].data = p;
    ec->email[ec->n].len = len;
    ec->n++;

    return 1;
}


static int
ngx_http_linguamate_json_start_map(void *data)
{
    return ngx_http_linguamate_json_open(data, 1);
}


static int
ngx_http_linguamate_json_start_array(void *data)
{
    return ngx_http_linguamate_json_open(data, 0);
}


static int
ngx_http_linguamate_json_open(ngx_http_linguamate_login_parse_t *ec,
    ngx_uint_t map)
{
    ngx_uint_t  d;

    d = ec->depth;

    if (ngx_http_linguamate_email_place(ec)) {
        ec->unread = NGX_HTTP_LINGUAMATE_UNREAD_NOT_STRING;
        return 0;
    }

    if (ngx_http_linguamate_email_meta(ec, d, "values")) {
        /* an array annotates the input itself: refused */

        if (!map) {
            ec->unread = NGX_HTTP_LINGUAMATE_UNREAD_META;
            return 0;
        }

        ec->values = d + 1;
    }

    if (ec->refs == 0
        && ngx_http_linguamate_email_meta(ec, d, "referentialEqualities"))
    {
        ec->refs = d + 1;
    }

    /* deeper than the edge reads: refused */

    if (d + 1 > NGX_HTTP_LINGUAMATE_JSON_DEPTH) {
        ec->unread = NGX_HTTP_LINGUAMATE_UNREAD_DEPTH;
        return 0;
    }

    ec->depth = d + 1;
    ec->parent_len[d + 1] = (d == 0) ? 0 : ec->key_len[d];
    ngx_memcpy(ec->parent[d + 1], ec->key[d], NGX_HTTP_LINGUAMATE_KEY_SHORT);
    ec->key_len[d + 1] = 0;

    return 1;
}


static int
ngx_http_linguamate_json_end(void *data)
{
    ngx_http_linguamate_login_parse_t *ec = data;

    if (ec->values == ec->depth) {
        ec->values = 0;
    }

    if (ec->refs == ec->depth) {
        ec->refs = 0;
    }

    if (ec->depth) {
        ec->depth--;
    }

    return 1;
}


static int
ngx_http_linguamate_json_null(void *data)
{
    return ngx_http_linguamate_email_value(data, 0);
}


static int
ngx_http_linguamate_json_bool(void *data, int b)
{
    return ngx_http_linguamate_email_value(data,
                                        NGX_HTTP_LINGUAMATE_UNREAD_META);
}


static int
ngx_http_linguamate_json_number(void *data, const char *n, size_t len)
{
    return ngx_http_linguamate_email_value(data,
                                        NGX_HTTP_LINGUAMATE_UNREAD_META);
}
