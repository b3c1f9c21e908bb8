/*
 * Copyright (C) ngx_linguamate developers
 *
 * The ingest bodies, parsed: every problem of a client log batch or an
 * analytics batch (up to a bound) as the "details" of one 400, the HMAC
 * of a signed log batch, checked against the key it is given, and the
 * bounded re-serialisation of a value (secrets redacted, cut with a
 * marker where it does not fit, so that a line stays one JSON object).
 * Pure over the parsed tree, the body's bytes and a pool: ingest.c is the
 * handler, fuzz/fuzz_ingest.c calls these as they are.  A core-layer
 * file (1), not parse (0): it writes strings with the JSON writer's
 * escape (json.c) and reads the client levels of lists.h.
 */


#include <math.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "ngx_http_linguamate_module.h"
#include "ngx_http_linguamate_json.h"
#include "ngx_http_linguamate_ingest_parse.h"


static void ngx_http_linguamate_check_record(yajl_val rec, ngx_int_t i,
    ngx_http_linguamate_problems_t *pb);
static ngx_int_t ngx_http_linguamate_string_ok(yajl_val obj,
    const char *name, size_t min, size_t max, ngx_int_t i,
    ngx_http_linguamate_problems_t *pb, yajl_val *out);
static void ngx_http_linguamate_problem(ngx_http_linguamate_problems_t *pb,
    ngx_int_t i, const char *field, const char *message);


/* the app's levels: name, server level, counter, security */

#define NGX_HTTP_LINGUAMATE_CLIENT_LEVEL(id, level, label, security)         \
    { ngx_string(#id), NGX_HTTP_LINGUAMATE_LOG_##level,                      \
      NGX_HTTP_LINGUAMATE_CM_LEVELS + NGX_HTTP_LINGUAMATE_CL_##id, security },

static ngx_http_linguamate_client_level_t  ngx_http_linguamate_levels[] = {
    NGX_HTTP_LINGUAMATE_CLIENT_LEVELS(NGX_HTTP_LINGUAMATE_CLIENT_LEVEL)
    { ngx_null_string, 0, 0, 0 }
};

_Static_assert(NGX_HTTP_LINGUAMATE_NCLIENT_LEVELS == 8,
               "check_record()'s message names each client level");


/* every number anywhere must be a finite double: 1e400 is not */

ngx_int_t
ngx_http_linguamate_numbers_ok(yajl_val v)
{
    size_t  i;

    if (YAJL_IS_NUMBER(v)) {
        return (YAJL_IS_DOUBLE(v) && isfinite(YAJL_GET_DOUBLE(v)))
               ? NGX_OK : NGX_ERROR;
    }

    if (YAJL_IS_OBJECT(v)) {
        for (i = 0; i < v->u.object.len; i++) {
            if (ngx_http_linguamate_numbers_ok(v->u.object.values[i])
                != NGX_OK)
            {
                return NGX_ERROR;
            }
        }
    }

    if (YAJL_IS_ARRAY(v)) {
        for (i = 0; i < v->u.array.len; i++) {
            if (ngx_http_linguamate_numbers_ok(v->u.array.values[i])
                != NGX_OK)
            {
                return NGX_ERROR;
            }
        }
    }

    return NGX_OK;
}


/*
 * The array named pb->array, of 1 to 100 entries, each checked; NULL
 * (and a problem) when it is missing, duplicated or of another size.
 */

yajl_val
ngx_http_linguamate_check_batch(yajl_val root,
    ngx_http_linguamate_problems_t *pb, ngx_http_linguamate_check_pt check)
{
    size_t      i;
    yajl_val    a;
    ngx_uint_t  dup;

    a = ngx_http_linguamate_member(root, pb->array, &dup);

    if (dup) {
        ngx_http_linguamate_problem(pb, -1, pb->array, "is duplicated");
        return NULL;
    }

    if (!YAJL_IS_ARRAY(a)) {
        ngx_http_linguamate_problem(pb, -1, pb->array,
                                    "is required and must be an array");
        return NULL;
    }

    if (a->u.array.len == 0
        || a->u.array.len > NGX_HTTP_LINGUAMATE_INGEST_BATCH_MAX)
    {
        ngx_http_linguamate_problem(pb, -1, pb->array,
                                    "must hold 1 to 100 entries");
        return NULL;
    }

    for (i = 0; i < a->u.array.len; i++) {
        check(a->u.array.values[i], (ngx_int_t) i, pb);
    }

    return a;
}


/* the batch's records and its sig; now: the server's time in ms */

void
ngx_http_linguamate_check_logs(yajl_val root,
    ngx_http_linguamate_problems_t *pb, int64_t now)
{
    int64_t      ms;
    yajl_val     sig, algo, ts;
    ngx_uint_t   dup;

    (void) ngx_http_linguamate_check_batch(root, pb,
                                           ngx_http_linguamate_check_record);

    sig = ngx_http_linguamate_member(root, "sig", &dup);

    if (dup) {
        ngx_http_linguamate_problem(pb, -1, "sig", "is duplicated");
        return;
    }

    if (!YAJL_IS_OBJECT(sig)) {
        ngx_http_linguamate_problem(pb, -1, "sig",
                                    "is required and must be an object");
        return;
    }

    (void) ngx_http_linguamate_string_ok(sig, "hmac", 0, 128, -1, pb, NULL);

    if (ngx_http_linguamate_string_ok(sig, "algo", 0, 64, -1, pb, &algo)
        == NGX_OK
        && ngx_strcmp(algo->u.string, "HMAC-SHA256") != 0)
    {
        ngx_http_linguamate_problem(pb, -1, "sig.algo",
                                    "must be \\\"HMAC-SHA256\\\"");
    }

    if (ngx_http_linguamate_string_ok(sig, "ts", 1, 64, -1, pb, &ts)
        != NGX_OK)
    {
        return;
    }

    if (ngx_http_linguamate_parse_iso8601((u_char *) ts->u.string,
                                          ngx_strlen(ts->u.string),
                                          &ms)
        != 0)
    {
        ngx_http_linguamate_problem(pb, -1, "sig.ts",
                                    "must be an ISO-8601 time");
        return;
    }

    if (ms < now - NGX_HTTP_LINGUAMATE_INGEST_SKEW_MS
        || ms > now + NGX_HTTP_LINGUAMATE_INGEST_SKEW_MS)
    {
        ngx_http_linguamate_problem(pb, -1, "sig.ts",
                                "must be within 5 minutes of the server time");
        pb->skew++;
    }
}


static void
ngx_http_linguamate_check_record(yajl_val rec, ngx_int_t i,
    ngx_http_linguamate_problems_t *pb)
{
    yajl_val     v;
    ngx_uint_t   k, dup;
    const char  *name;

    static const char  *objects[] = {
        "data", "device", "user", "req", "corr", NULL
    };

    if (!YAJL_IS_OBJECT(rec)) {
        ngx_http_linguamate_problem(pb, i, "", "must be an object");
        return;
    }

    (void) ngx_http_linguamate_string_ok(rec, "ts", 1,
                                         NGX_HTTP_LINGUAMATE_INGEST_SHORT, i,
                                         pb, NULL);

    if (ngx_http_linguamate_string_ok(rec, "lvl", 1, 16, i, pb, &v) == NGX_OK
        && ngx_http_linguamate_client_level(v->u.string) == NULL)
    {
        ngx_http_linguamate_problem(pb, i, "lvl", "must be one of TRACE, "
                       "DEBUG, INFO, NOTICE, WARN, ERROR, FATAL, SECURITY");
    }

    (void) ngx_http_linguamate_string_ok(rec, "cat", 1,
                                         NGX_HTTP_LINGUAMATE_INGEST_SHORT, i,
                                         pb, NULL);
    (void) ngx_http_linguamate_string_ok(rec, "evt", 1,
                                         NGX_HTTP_LINGUAMATE_INGEST_EVT, i,
                                         pb, NULL);
    (void) ngx_http_linguamate_string_ok(rec, "msg", 0,
                                         NGX_HTTP_LINGUAMATE_INGEST_BODY_MAX,
                                         i, pb, NULL);

    /* optional objects; null counts as absent */

    for (k = 0; objects[k]; k++) {
        name = objects[k];
        v = ngx_http_linguamate_member(rec, name, &dup);

        if (dup) {
            ngx_http_linguamate_problem(pb, i, name, "is duplicated");

        } else if (v && !YAJL_IS_NULL(v) && !YAJL_IS_OBJECT(v)) {
            ngx_http_linguamate_problem(pb, i, name, "must be an object");
        }
    }
}


/*
 * A string member of "min" to "max" bytes.  A problem is noted (field
 * "array[i].name", or "sig.name" when i is -1) otherwise.
 */

static ngx_int_t
ngx_http_linguamate_string_ok(yajl_val obj, const char *name, size_t min,
    size_t max, ngx_int_t i, ngx_http_linguamate_problems_t *pb,
    yajl_val *out)
{
    u_char      field[32];
    size_t      len;
    yajl_val    v;
    ngx_uint_t  dup;

    v = ngx_http_linguamate_member(obj, name, &dup);

    if (i == -1) {
        (void) ngx_snprintf(field, sizeof(field), "sig.%s%Z", name);
        name = (const char *) field;
    }

    if (dup) {
        ngx_http_linguamate_problem(pb, i, name, "is duplicated");
        return NGX_ERROR;
    }

    if (!YAJL_IS_STRING(v)) {
        ngx_http_linguamate_problem(pb, i, name,
                                    "is required and must be a string");
        return NGX_ERROR;
    }

    len = ngx_strlen(v->u.string);

    if (len < min) {
        ngx_http_linguamate_problem(pb, i, name, "must not be empty");
        return NGX_ERROR;
    }

    if (len > max) {
        ngx_http_linguamate_problem(pb, i, name, "is too long");
        return NGX_ERROR;
    }

    if (out) {
        *out = v;
    }

    return NGX_OK;
}


/* the member "name" of an object; *dup is set when it appears twice */

yajl_val
ngx_http_linguamate_member(yajl_val obj, const char *name, ngx_uint_t *dup)
{
    size_t    i;
    yajl_val  v;

    v = NULL;

    if (dup) {
        *dup = 0;
    }

    if (!YAJL_IS_OBJECT(obj)) {
        return NULL;
    }

    for (i = 0; i < obj->u.object.len; i++) {
        if (ngx_strcmp(obj->u.object.keys[i], name) != 0) {
            continue;
        }

        if (v == NULL) {
            v = obj->u.object.values[i];
            continue;
        }

        if (dup) {
            *dup = 1;
        }

        break;
    }

    return v;
}


ngx_http_linguamate_client_level_t *
ngx_http_linguamate_client_level(const char *name)
{
    ngx_http_linguamate_client_level_t  *lv;

    for (lv = ngx_http_linguamate_levels; lv->name.len; lv++) {
        if (ngx_strcmp(lv->name.data, name) == 0) {
            return lv;
        }
    }

    return NULL;
}


/*
 * The app signs JSON.stringify({items: logs, ts: sig.ts}): the bytes of
 * "logs" and of the "ts" string exactly as they are in the body.
 */

ngx_int_t
ngx_http_linguamate_signature_ok(ngx_pool_t *pool, ngx_str_t *key,
    ngx_str_t *body, yajl_val hmac)
{
    u_char             *msg, *p, mac[EVP_MAX_MD_SIZE], hex[64];
    size_t              logs[2], ts[2];
    unsigned int        mlen;
    static const char  *logs_path[] = { "logs", NULL };
    static const char  *ts_path[] = { "sig", "ts", NULL };

    if (!YAJL_IS_STRING(hmac) || ngx_strlen(hmac->u.string) != 64) {
        return NGX_DECLINED;
    }

    if (ngx_http_linguamate_json_member_span(body->data, body->len,
                                             logs_path, logs) != 0
        || ngx_http_linguamate_json_member_span(body->data, body->len,
                                                ts_path, ts) != 0)
    {
        return NGX_DECLINED;
    }

    msg = ngx_pnalloc(pool, sizeof("{\"items\":,\"ts\":}") - 1
                               + (logs[1] - logs[0]) + (ts[1] - ts[0]));
    if (msg == NULL) {
        return NGX_ERROR;
    }

    p = ngx_cpymem(msg, "{\"items\":", sizeof("{\"items\":") - 1);
    p = ngx_cpymem(p, body->data + logs[0], logs[1] - logs[0]);
    p = ngx_cpymem(p, ",\"ts\":", sizeof(",\"ts\":") - 1);
    p = ngx_cpymem(p, body->data + ts[0], ts[1] - ts[0]);
    *p++ = '}';

    if (HMAC(EVP_sha256(), key->data, (int) key->len, msg, p - msg, mac,
             &mlen) == NULL
        || mlen != 32)
    {
        return NGX_ERROR;
    }

    (void) ngx_hex_dump(hex, mac, 32);

    return CRYPTO_memcmp(hex, hmac->u.string, 64) == 0
           ? NGX_OK : NGX_DECLINED;
}


/*
 * ',"name":VALUE' when it fits before "end", else nothing and *cut set;
 * returns where the next byte goes.
 */

u_char *
ngx_http_linguamate_put_member(u_char *p, u_char *end, const char *name,
    yajl_val v, ngx_uint_t *cut)
{
    u_char  *q;
    size_t   len;

    len = ngx_strlen(name);

    if (p > end || (size_t) (end - p) < len + 4) {
        *cut = 1;
        return p;
    }

    q = ngx_sprintf(p, ",\"%s\":", name);
    q = ngx_http_linguamate_put_value(q, end, v);

    if (q == NULL) {
        *cut = 1;
        return p;
    }

    return q;
}


/* the length of at most max bytes of s, not cutting a UTF-8 sequence */

size_t
ngx_http_linguamate_utf8_cut(u_char *s, size_t len, size_t max)
{
    if (len <= max) {
        return len;
    }

    len = max;

    while (len && (s[len] & 0xc0) == 0x80) {
        len--;
    }

    return len;
}


/*
 * A JSON string of at most max bytes of s ("..." added where cut), or
 * NULL when it does not fit before end.
 */

u_char *
ngx_http_linguamate_put_string(u_char *p, u_char *end, u_char *s,
    size_t len, size_t max)
{
    size_t  n, need;

    n = ngx_http_linguamate_utf8_cut(s, len, max);
    need = 2 + ngx_http_linguamate_json_escape_len(s, n) + (n < len ? 3 : 0);

    if (p == NULL || p > end || (size_t) (end - p) < need) {
        return NULL;
    }

    *p++ = '"';
    p = ngx_http_linguamate_json_escape(p, s, n);

    if (n < len) {
        p = ngx_cpymem(p, "...", 3);
    }

    *p++ = '"';

    return p;
}


/*
 * A value re-serialised before end, with secrets redacted: a member whose
 * key names a secret, and any string that holds a token, read
 * "[REDACTED]".  A container that does not fit whole keeps the members
 * that do and ends with a "_truncated" marker; NULL when not even that
 * fits.  The recursion is bounded by the nesting checked on the body.
 */

u_char *
ngx_http_linguamate_put_value(u_char *p, u_char *end, yajl_val v)
{
    u_char      *q, *last, *key;
    size_t       i, n, len, klen;
    ngx_uint_t   cut;

    if (p == NULL || p > end) {
        return NULL;
    }

    switch (v ? v->type : yajl_t_null) {

    case yajl_t_string:
        len = ngx_strlen(v->u.string);

        if (ngx_http_linguamate_secret_value((u_char *) v->u.string, len)) {
            if ((size_t) (end - p) < sizeof(NGX_HTTP_LINGUAMATE_REDACTED) - 1)
            {
                return NULL;
            }

            return ngx_cpymem(p, NGX_HTTP_LINGUAMATE_REDACTED,
                              sizeof(NGX_HTTP_LINGUAMATE_REDACTED) - 1);
        }

        return ngx_http_linguamate_put_string(p, end, (u_char *) v->u.string,
                                           len,
                                           NGX_HTTP_LINGUAMATE_INGEST_STRING);

    case yajl_t_number:
        len = ngx_strlen(v->u.number.r);
        if ((size_t) (end - p) < len) {
            return NULL;
        }

        return ngx_cpymem(p, v->u.number.r, len);

    case yajl_t_true:
        return ((size_t) (end - p) < 4) ? NULL : ngx_cpymem(p, "true", 4);

    case yajl_t_false:
        return ((size_t) (end - p) < 5) ? NULL : ngx_cpymem(p, "false", 5);

    case yajl_t_object:
        /* '{' '}' and the marker always fit once this does */

        if ((size_t) (end - p) < sizeof("{,\"_truncated\":true}")) {
            return NULL;
        }

        last = end - sizeof(",\"_truncated\":true}");
        *p++ = '{';
        cut = 0;

        for (i = 0, n = 0; i < v->u.object.len; i++) {
            key = (u_char *) v->u.object.keys[i];
            klen = ngx_strlen(key);

            q = n ? p + 1 : p;

            if (klen > NGX_HTTP_LINGUAMATE_INGEST_STRING
                || (q = ngx_http_linguamate_put_string(q, last, key, klen,
                                                       klen))
                   == NULL
                || q == last)
            {
                cut = 1;
                break;
            }

            *q++ = ':';

            if (ngx_http_linguamate_secret_key(key, klen)) {
                q = ((size_t) (last - q)
                     < sizeof(NGX_HTTP_LINGUAMATE_REDACTED) - 1)
                    ? NULL
                    : ngx_cpymem(q, NGX_HTTP_LINGUAMATE_REDACTED,
                                 sizeof(NGX_HTTP_LINGUAMATE_REDACTED) - 1);

            } else {
                q = ngx_http_linguamate_put_value(q, last,
                                                  v->u.object.values[i]);
            }

            if (q == NULL) {
                cut = 1;
                break;
            }

            if (n++) {
                *p = ',';
            }

            p = q;
        }

        if (cut && n) {
            *p++ = ',';
        }

        if (cut) {
            p = ngx_cpymem(p, "\"_truncated\":true",
                           sizeof("\"_truncated\":true") - 1);
        }

        *p++ = '}';
        return p;

    case yajl_t_array:
        if ((size_t) (end - p) < sizeof("[,\"_truncated\"]")) {
            return NULL;
        }

        last = end - sizeof(",\"_truncated\"]");
        *p++ = '[';
        cut = 0;

        for (i = 0; i < v->u.array.len; i++) {
            q = ngx_http_linguamate_put_value(i ? p + 1 : p, last,
                                              v->u.array.values[i]);
            if (q == NULL) {
                cut = 1;
                break;
            }

            if (i) {
                *p = ',';
            }

            p = q;
        }

        if (cut && i) {
            *p++ = ',';
        }

        if (cut) {
            p = ngx_cpymem(p, "\"_truncated\"", sizeof("\"_truncated\"") - 1);
        }

        *p++ = ']';
        return p;

    default:
        return ((size_t) (end - p) < 4) ? NULL : ngx_cpymem(p, "null", 4);
    }
}


void
ngx_http_linguamate_check_event(yajl_val ev, ngx_int_t i,
    ngx_http_linguamate_problems_t *pb)
{
    u_char      *s;
    size_t       k, len;
    int64_t      ms;
    yajl_val     v;
    ngx_uint_t   dup;

    if (!YAJL_IS_OBJECT(ev)) {
        ngx_http_linguamate_problem(pb, i, "", "must be an object");
        return;
    }

    if (ngx_http_linguamate_string_ok(ev, "name", 1,
                                      NGX_HTTP_LINGUAMATE_EVENT_NAME, i, pb,
                                      &v)
        == NGX_OK)
    {
        s = (u_char *) v->u.string;
        len = ngx_strlen(s);

        for (k = 0; k < len; k++) {
            if (!((s[k] >= 'a' && s[k] <= 'z') || (s[k] >= 'A' && s[k] <= 'Z')
                  || (s[k] >= '0' && s[k] <= '9') || s[k] == '_'
                  || s[k] == '.' || s[k] == ':' || s[k] == '-'))
            {
                ngx_http_linguamate_problem(pb, i, "name",
                                   "must be made of A-Z a-z 0-9 _ . : -");
                break;
            }
        }
    }

    v = ngx_http_linguamate_member(ev, "time", &dup);

    if (dup) {
        ngx_http_linguamate_problem(pb, i, "time", "is duplicated");

    } else if (ngx_http_linguamate_event_time(v, &ms) != NGX_OK) {
        ngx_http_linguamate_problem(pb, i, "time",
                       "must be an ISO-8601 time or epoch milliseconds, "
                       "1970 to 9999");
    }

    v = ngx_http_linguamate_member(ev, "properties", &dup);

    if (dup) {
        ngx_http_linguamate_problem(pb, i, "properties", "is duplicated");

    } else if (v && !YAJL_IS_NULL(v) && !YAJL_IS_OBJECT(v)) {
        ngx_http_linguamate_problem(pb, i, "properties", "must be an object");
    }
}


/* an event's time: an ISO-8601 string or integer epoch milliseconds */

ngx_int_t
ngx_http_linguamate_event_time(yajl_val v, int64_t *ms)
{
    u_char    *s;
    uint64_t   n;

    if (YAJL_IS_STRING(v)) {
        s = (u_char *) v->u.string;

        if (ngx_http_linguamate_parse_iso8601(s, ngx_strlen(s), ms) != 0) {
            return NGX_ERROR;
        }

    } else if (YAJL_IS_NUMBER(v)) {
        /* digits only: yajl's own integer flag lets "1.5" through */

        s = (u_char *) v->u.number.r;

        if (ngx_http_linguamate_parse_uint(s, ngx_strlen(s),
                                           NGX_HTTP_LINGUAMATE_EVENT_TIME_MAX,
                                           &n)
            != 0)
        {
            return NGX_ERROR;
        }

        *ms = (int64_t) n;

    } else {
        return NGX_ERROR;
    }

    if (*ms < 0 || *ms > NGX_HTTP_LINGUAMATE_EVENT_TIME_MAX) {
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * A problem for the "details" of a 400: {"field":..,"message":..}.  Field
 * names and messages are ours (never the client's bytes); past the bound
 * the problems are counted, not listed.
 */

static void
ngx_http_linguamate_problem(ngx_http_linguamate_problems_t *pb, ngx_int_t i,
    const char *field, const char *message)
{
    pb->count++;

    if (pb->count > NGX_HTTP_LINGUAMATE_INGEST_PROBLEMS) {
        return;
    }

    if (pb->count > 1) {
        *pb->pos++ = ',';
    }

    if (i == -1) {
        pb->pos = ngx_slprintf(pb->pos, pb->end,
                               "{\"field\":\"%s\",\"message\":\"%s\"}",
                               field, message);
        return;
    }

    pb->pos = ngx_slprintf(pb->pos, pb->end,
                           "{\"field\":\"%s[%i]%s%s\",\"message\":\"%s\"}",
                           pb->array, i, field[0] ? "." : "", field, message);
}


ngx_int_t
ngx_http_linguamate_problems_init(ngx_pool_t *pool,
    ngx_http_linguamate_problems_t *pb, const char *array)
{
    size_t  size;

    ngx_memzero(pb, sizeof(ngx_http_linguamate_problems_t));

    size = sizeof(",\"details\":[]")
           + NGX_HTTP_LINGUAMATE_INGEST_PROBLEMS
             * NGX_HTTP_LINGUAMATE_INGEST_PROBLEM;

    pb->start = ngx_pnalloc(pool, size);
    if (pb->start == NULL) {
        return NGX_ERROR;
    }

    pb->array = array;
    pb->end = pb->start + size - 1;       /* room for "]" */
    pb->pos = ngx_cpymem(pb->start, ",\"details\":[",
                         sizeof(",\"details\":[") - 1);

    return NGX_OK;
}
