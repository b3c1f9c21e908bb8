/*
 * Copyright (C) ngx_linguamate developers
 *
 * Login lockout on auth routes, as the original backend behaved: every
 * 400/401 an auth route answers counts as a failure, per account (the
 * "email" of a JSON body, lower-cased) and per client address, in a one
 * minute sliding window; X-RateLimit-Remaining-Auth counts down from
 * RATE_LIMIT_MAX_LOGIN_ATTEMPTS; at twice that many failures the key is
 * locked for 15 minutes (429 ACCOUNT_LOCKED); a 2xx clears the account.
 *
 * The body is read without blocking the worker (ACCESS phase, a post
 * handler resumes the phases) and is kept for whatever handles the route.
 *
 * Locks survive a restart: each lock and each unlock of the operations API
 * is a record of the state layer (ngx_http_linguamate_state.c) appended
 * to STATE_DIR/lockouts-ZONE.journal; at start the master replays it
 * (locks still in force) and compacts it.  Failure counts below the
 * threshold last a minute and are not kept.
 */


#include <yajl/yajl_parse.h>

#include "ngx_http_linguamate_module.h"
#include "ngx_http_linguamate_json.h"
#include "ngx_http_linguamate_log.h"
#include "ngx_http_linguamate_shm.h"
#include "ngx_http_linguamate_window.h"
#include "ngx_http_linguamate_state.h"
#include "ngx_http_linguamate_lockout.h"


#define NGX_HTTP_LINGUAMATE_EMAIL_MAX      254
#define NGX_HTTP_LINGUAMATE_JSON_DEPTH     32
#define NGX_HTTP_LINGUAMATE_ACCOUNTS       64
#define NGX_HTTP_LINGUAMATE_LOCK_WINDOW    60000
#define NGX_HTTP_LINGUAMATE_LOCK_TIME      (15 * 60000)


typedef struct {
    ngx_msec_t                  window;
    ngx_msec_t                  lock;
    ngx_http_linguamate_main_conf_t  *lmcf;
    ngx_http_linguamate_state_t      *state;
} ngx_http_linguamate_lockout_zone_t;


/* the value of a lockout node, followed by its window of failures */
typedef struct {
    ngx_msec_t                  locked_until;   /* 0: not locked */
    time_t                      locked_at;      /* epoch s, for operators */
} ngx_http_linguamate_lock_t;

#define NGX_HTTP_LINGUAMATE_LOCK_OFF  sizeof(ngx_http_linguamate_lock_t)


#define NGX_HTTP_LINGUAMATE_KEY_SHORT   24


/*
 * Why the edge cannot read the account of a login body the way the app
 * will (tRPC's fetch Request.json(), then superjson.deserialize()): a
 * tRPC call with an auth procedure is then refused, never passed on
 * with the client address alone counted.
 */

enum {
    NGX_HTTP_LINGUAMATE_UNREAD_NONE = 0,
    NGX_HTTP_LINGUAMATE_UNREAD_TYPE,
    NGX_HTTP_LINGUAMATE_UNREAD_ENCODING,
    NGX_HTTP_LINGUAMATE_UNREAD_FILE,
    NGX_HTTP_LINGUAMATE_UNREAD_BOM,
    NGX_HTTP_LINGUAMATE_UNREAD_UTF8,
    NGX_HTTP_LINGUAMATE_UNREAD_SURROGATE,
    NGX_HTTP_LINGUAMATE_UNREAD_JSON,
    NGX_HTTP_LINGUAMATE_UNREAD_DEPTH,
    NGX_HTTP_LINGUAMATE_UNREAD_META,
    NGX_HTTP_LINGUAMATE_UNREAD_NOT_STRING,
    NGX_HTTP_LINGUAMATE_UNREAD_CONTROL,
    NGX_HTTP_LINGUAMATE_UNREAD_ASCII,
    NGX_HTTP_LINGUAMATE_UNREAD_EMPTY,
    NGX_HTTP_LINGUAMATE_UNREAD_LONG,
    NGX_HTTP_LINGUAMATE_UNREAD_ACCOUNTS
};


typedef struct {
    ngx_str_t                   reason;
    const char                 *message;
} ngx_http_linguamate_unread_t;


static ngx_http_linguamate_unread_t  ngx_http_linguamate_unread[] = {
    { ngx_null_string, NULL },
    { ngx_string("CONTENT_TYPE"),
      "An auth call's input is read as JSON only: Content-Type must be "
      "application/json, in UTF-8" },
    { ngx_string("CONTENT_ENCODING"),
      "An auth call's body is read as it is: no Content-Encoding" },
    { ngx_string("BODY_TOO_LARGE"),
      "The body of an auth call is too large to be read" },
    { ngx_string("BYTE_ORDER_MARK"),
      "The body starts with a byte-order mark" },
    { ngx_string("INVALID_UTF8"), "The body is not valid UTF-8" },
    { ngx_string("LONE_SURROGATE"),
      "The body has a lone UTF-16 surrogate escape" },
    { ngx_string("NOT_JSON"), "The body is not JSON" },
    { ngx_string("TOO_DEEP"), "The body nests deeper than 32 levels" },
    { ngx_string("META_EMAIL"),
      "The superjson meta of the input sets or changes the email" },
    { ngx_string("EMAIL_NOT_STRING"), "The email is not a string" },
    { ngx_string("EMAIL_CONTROL"), "The email has a control character" },
    { ngx_string("EMAIL_NOT_ASCII"),
      "The email has a character outside ASCII" },
    { ngx_string("EMAIL_EMPTY"), "The email is empty" },
    { ngx_string("EMAIL_TOO_LONG"),
      "The email is longer than 254 characters" },
    { ngx_string("TOO_MANY_ACCOUNTS"), "A call names more than 64 accounts" }
};


typedef struct {
    ngx_pool_t                 *pool;
    ngx_uint_t                  depth;
    /* key[d]: the current key of the object at depth d; parent[d]: the
       key the container at depth d sits under (both cut to 24 bytes) */
    u_char                      key[NGX_HTTP_LINGUAMATE_JSON_DEPTH + 2]
                                   [NGX_HTTP_LINGUAMATE_KEY_SHORT];
    size_t                      key_len[NGX_HTTP_LINGUAMATE_JSON_DEPTH + 2];
    u_char                      parent[NGX_HTTP_LINGUAMATE_JSON_DEPTH + 2]
                                      [NGX_HTTP_LINGUAMATE_KEY_SHORT];
    size_t                      parent_len[NGX_HTTP_LINGUAMATE_JSON_DEPTH + 2];
    /* the accounts, trimmed and lower-cased */
    ngx_str_t                   email[NGX_HTTP_LINGUAMATE_ACCOUNTS];
    ngx_uint_t                  n;
    ngx_uint_t                  unread;
    /* depth of an input's meta.values, of its meta.referentialEqualities */
    ngx_uint_t                  values;
    ngx_uint_t                  refs;
    /* the bytes, across buffers: UTF-8 and \u escapes */
    size_t                      offset;
    ngx_uint_t                  need;
    ngx_uint_t                  esc;
    ngx_uint_t                  code;
    u_char                      lo;
    u_char                      hi;
    unsigned                    high:1;
} ngx_http_linguamate_email_ctx_t;


static void ngx_http_linguamate_lockout_body(ngx_http_request_t *r);
static ngx_int_t ngx_http_linguamate_lockout_keys(ngx_http_request_t *r,
    ngx_http_linguamate_ctx_t *ctx);
static ngx_int_t ngx_http_linguamate_lockout_input(ngx_http_request_t *r,
    ngx_http_linguamate_ctx_t *ctx, ngx_http_linguamate_email_ctx_t *ec);
static ngx_uint_t ngx_http_linguamate_lockout_json(ngx_http_request_t *r);
static ngx_int_t ngx_http_linguamate_find_email(
    ngx_http_linguamate_email_ctx_t *ec, ngx_chain_t *in);
static void ngx_http_linguamate_email_bytes(
    ngx_http_linguamate_email_ctx_t *ec, u_char *p, u_char *last);
static void ngx_http_linguamate_email_escape(
    ngx_http_linguamate_email_ctx_t *ec, u_char c);
static ngx_uint_t ngx_http_linguamate_email_key(
    ngx_http_linguamate_email_ctx_t *ec, ngx_uint_t d, const char *name);
static ngx_uint_t ngx_http_linguamate_email_input(
    ngx_http_linguamate_email_ctx_t *ec, ngx_uint_t d);
static ngx_uint_t ngx_http_linguamate_email_meta(
    ngx_http_linguamate_email_ctx_t *ec, ngx_uint_t d, const char *name);
static ngx_uint_t ngx_http_linguamate_email_place(
    ngx_http_linguamate_email_ctx_t *ec);
static int ngx_http_linguamate_email_value(
    ngx_http_linguamate_email_ctx_t *ec, ngx_uint_t unread);
static void ngx_http_linguamate_email_path(
    ngx_http_linguamate_email_ctx_t *ec, const u_char *s, size_t len);
static int ngx_http_linguamate_json_null(void *data);
static int ngx_http_linguamate_json_map_key(void *data, const unsigned char *k,
    size_t len);
static int ngx_http_linguamate_json_string(void *data, const unsigned char *s,
    size_t len);
static int ngx_http_linguamate_json_start_map(void *data);
static int ngx_http_linguamate_json_start_array(void *data);
static int ngx_http_linguamate_json_open(ngx_http_linguamate_email_ctx_t *ec,
    ngx_uint_t map);
static int ngx_http_linguamate_json_end(void *data);
static int ngx_http_linguamate_json_bool(void *data, int b);
static int ngx_http_linguamate_json_number(void *data, const char *n,
    size_t len);
static ngx_msec_t ngx_http_linguamate_lockout_check(
    ngx_http_linguamate_zone_t *zone, ngx_str_t *key);
static ngx_http_linguamate_lock_event_t *ngx_http_linguamate_lockout_note(
    ngx_http_request_t *r, ngx_http_linguamate_ctx_t *ctx);
static void ngx_http_linguamate_lockout_log(ngx_http_request_t *r,
    ngx_http_linguamate_zone_t *zone, ngx_str_t *key, ngx_uint_t failures,
    ngx_msec_t lock);
static ngx_int_t ngx_http_linguamate_lockout_fresh(
    ngx_http_linguamate_zone_t *zone, ngx_log_t *log);
static ngx_int_t ngx_http_linguamate_lockout_apply(
    ngx_http_linguamate_state_t *st, ngx_http_linguamate_state_rec_t *rec,
    ngx_log_t *log);
static ngx_int_t ngx_http_linguamate_lockout_snapshot(
    ngx_http_linguamate_state_t *st, ngx_http_linguamate_state_emit_pt emit,
    void *sink, ngx_log_t *log);
static ngx_int_t ngx_http_linguamate_lockout_restore(
    ngx_http_linguamate_zone_t *zone, ngx_str_t *key, uint64_t until,
    time_t locked_at, ngx_log_t *log);
static ngx_uint_t ngx_http_linguamate_lockout_record(ngx_http_request_t *r,
    ngx_http_linguamate_ctx_t *ctx, ngx_uint_t status, ngx_uint_t weight);
static ngx_uint_t ngx_http_linguamate_lockout_forget(
    ngx_http_linguamate_zone_t *zone, ngx_str_t *key);
static void ngx_http_linguamate_lockout_append(
    ngx_http_linguamate_zone_t *zone, ngx_str_t *key, ngx_msec_t left,
    time_t locked_at, ngx_log_t *log);


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


/* linguamate_lockout_zone NAME size=SIZE [window=TIME] [lock=TIME]; */

char *
ngx_http_linguamate_lockout_zone(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_linguamate_main_conf_t *lmcf = conf;

    ssize_t                              size;
    ngx_int_t                            n;
    ngx_str_t                           *value, s, sig;
    ngx_uint_t                           i;
    ngx_http_linguamate_zone_t          *zone;
    ngx_http_linguamate_lockout_zone_t  *lz;

    value = cf->args->elts;
    size = 0;

    lz = ngx_pcalloc(cf->pool, sizeof(ngx_http_linguamate_lockout_zone_t));
    if (lz == NULL) {
        return NGX_CONF_ERROR;
    }

    lz->window = NGX_HTTP_LINGUAMATE_LOCK_WINDOW;
    lz->lock = NGX_HTTP_LINGUAMATE_LOCK_TIME;
    lz->lmcf = lmcf;

    for (i = 2; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "size=", 5) == 0) {
            size = ngx_http_linguamate_zone_size(cf, &value[1], &value[i]);
            if (size == NGX_ERROR) {
                return NGX_CONF_ERROR;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "window=", 7) == 0
            || ngx_strncmp(value[i].data, "lock=", 5) == 0)
        {
            s.data = (u_char *) ngx_strchr(value[i].data, '=') + 1;
            s.len = value[i].data + value[i].len - s.data;

            n = ngx_parse_time(&s, 0);

            if (n == NGX_ERROR || n < 1000 || n > 86400000) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "linguamate: invalid \"%V\" of zone "
                                   "\"%V\": 1s to 1d", &value[i], &value[1]);
                return NGX_CONF_ERROR;
            }

            if (value[i].data[0] == 'w') {
                lz->window = (ngx_msec_t) n;

            } else {
                lz->lock = (ngx_msec_t) n;
            }

            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "linguamate: invalid parameter \"%V\"", &value[i]);
        return NGX_CONF_ERROR;
    }

    if (size == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "linguamate: zone \"%V\" needs a size=",
                           &value[1]);
        return NGX_CONF_ERROR;
    }

    ngx_str_set(&sig, "a login lockout zone");

    zone = ngx_http_linguamate_zone_add(cf, lmcf, &value[1], (size_t) size,
                                        NGX_HTTP_LINGUAMATE_ZONE_LOCKOUT,
                                        &sig);
    if (zone == NULL) {
        return NGX_CONF_ERROR;
    }

    zone->data = lz;
    zone->init_fresh = ngx_http_linguamate_lockout_fresh;

    lz->state = ngx_http_linguamate_state_create(cf, zone, &lmcf->state_dir,
                    "lockouts-%V.journal", ngx_http_linguamate_lockout_apply,
                    ngx_http_linguamate_lockout_snapshot, lz);
    if (lz->state == NULL) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/* linguamate_lockout NAME | off; */

char *
ngx_http_linguamate_lockout(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_linguamate_loc_conf_t *llcf = conf;

    ngx_str_t                        *value;
    ngx_http_linguamate_zone_t       *zone;
    ngx_http_linguamate_main_conf_t  *lmcf;

    if (llcf->lockout) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "off") == 0) {
        llcf->lockout = NGX_CONF_UNSET_PTR;
        return NGX_CONF_OK;
    }

    lmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_linguamate_module);

    zone = ngx_http_linguamate_zone_find(lmcf, &value[1],
                                         NGX_HTTP_LINGUAMATE_ZONE_LOCKOUT);
    if (zone == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "linguamate: unknown lockout zone \"%V\" "
                           "(declare it first with linguamate_lockout_zone)",
                           &value[1]);
        return NGX_CONF_ERROR;
    }

    llcf->lockout = zone;

    return NGX_CONF_OK;
}


ngx_int_t
ngx_http_linguamate_lockout_handler(ngx_http_request_t *r)
{
    u_char                          *p;
    ngx_int_t                        rc;
    ngx_str_t                        extra;
    ngx_uint_t                       i, minutes;
    ngx_msec_t                       left, l;
    ngx_http_linguamate_ctx_t       *ctx;
    ngx_http_linguamate_loc_conf_t  *llcf;
    ngx_http_linguamate_unread_t    *un;
    u_char                           msg[96];

    if (r != r->main) {
        return NGX_DECLINED;
    }

    llcf = ngx_http_get_module_loc_conf(r, ngx_http_linguamate_module);

    if (llcf->lockout == NULL || llcf->lockout == NGX_CONF_UNSET_PTR) {
        return NGX_DECLINED;
    }

    ctx = ngx_http_linguamate_get_ctx(r);
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ctx->lockout_done) {
        return NGX_DECLINED;
    }

    /* a tRPC call is under the lockout only with an auth procedure */

    if (ctx->trpc && ctx->trpc_auth_n == 0) {
        ctx->lockout_done = 1;
        return NGX_DECLINED;
    }

    if (!ctx->body_read
        && (r->headers_in.content_length_n > 0 || r->headers_in.chunked))
    {
        /* the account is in the body: read it, then resume the phases */

        rc = ngx_http_read_client_request_body(r,
                                           ngx_http_linguamate_lockout_body);

        if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
            /* a body nginx could not read: the envelope, or the tRPC shape */
            return ngx_http_linguamate_phase_status(r, rc);
        }

        ngx_http_finalize_request(r, NGX_DONE);
        return NGX_DONE;
    }

    ctx->lockout_done = 1;
    ctx->lockout_zone = llcf->lockout;

    if (ngx_http_linguamate_lockout_keys(r, ctx) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ctx->lockout_refuse) {
        /* a tRPC auth call the edge cannot read as the app will */

        un = &ngx_http_linguamate_unread[ctx->lockout_refuse];

        p = ngx_pnalloc(r->pool, sizeof(",\"reason\":\"\"") + un->reason.len);
        if (p == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        extra.data = p;
        extra.len = ngx_sprintf(p, ",\"reason\":\"%V\"", &un->reason) - p;

        ctx->lockout_nkeys = 0;

        return ngx_http_linguamate_phase_error(r, NGX_HTTP_BAD_REQUEST,
                                               "VALIDATION_ERROR",
                                               un->message, &extra);
    }

    left = 0;

    for (i = 0; i < ctx->lockout_nkeys; i++) {
        l = ngx_http_linguamate_lockout_check(llcf->lockout,
                                              &ctx->lockout_key[i]);
        left = ngx_max(left, l);
    }

    if (left == 0) {
        return NGX_DECLINED;
    }

    (void) ngx_atomic_fetch_add(&llcf->lockout->sh->rejected, 1);

    minutes = (left + 59999) / 60000;

    (void) ngx_snprintf(msg, sizeof(msg), "Account temporarily locked. "
                        "Please try again in %ui minute%s.%Z", minutes,
                        minutes == 1 ? "" : "s");

    p = ngx_pnalloc(r->pool, sizeof(",\"retryAfter\":") + NGX_INT_T_LEN);
    if (p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    extra.data = p;
    extra.len = ngx_sprintf(p, ",\"retryAfter\":%M", (left + 999) / 1000) - p;

    p = ngx_pnalloc(r->pool, NGX_INT_T_LEN);
    if (p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ngx_http_linguamate_add_header(r, "Retry-After",
            sizeof("Retry-After") - 1, p,
            ngx_sprintf(p, "%M", (left + 999) / 1000) - p) != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_linguamate_phase_error(r, NGX_HTTP_TOO_MANY_REQUESTS,
                                           "ACCOUNT_LOCKED",
                                           (const char *) msg, &extra);
}


static void
ngx_http_linguamate_lockout_body(ngx_http_request_t *r)
{
    ngx_http_linguamate_ctx_t  *ctx;

    ctx = ngx_http_linguamate_get_ctx(r);
    if (ctx == NULL) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    ctx->body_read = 1;

    /* the body stays for the handler of the route (proxy_pass ...) */

    r->preserve_body = 1;

    r->write_event_handler = ngx_http_core_run_phases;
    ngx_http_core_run_phases(r);
}


/*
 * "ip:ADDRESS" always; "email:ACCOUNT" for each account the input names
 * (more than one makes the input ambiguous: all are counted on failure,
 * none is cleared on success).  For a tRPC call with an auth procedure,
 * an input the edge cannot read as the app will sets lockout_refuse;
 * elsewhere (the edge's own routes, which read their bodies themselves)
 * it leaves the address alone.
 */

static ngx_int_t
ngx_http_linguamate_lockout_keys(ngx_http_request_t *r,
    ngx_http_linguamate_ctx_t *ctx)
{
    u_char                           *p;
    ngx_str_t                        *addr, *key;
    ngx_uint_t                        i, n;
    ngx_http_linguamate_email_ctx_t  *ec;

    ec = ngx_pcalloc(r->pool, sizeof(ngx_http_linguamate_email_ctx_t));
    if (ec == NULL) {
        return NGX_ERROR;
    }

    ec->pool = r->pool;

    if (ngx_http_linguamate_lockout_input(r, ctx, ec) != NGX_OK) {
        return NGX_ERROR;
    }

    n = ec->n;

    if (ec->unread) {
        n = 0;

        if (ctx->trpc) {
            ctx->lockout_refuse = ec->unread;
        }
    }

    key = ngx_palloc(r->pool, (1 + n) * sizeof(ngx_str_t));
    if (key == NULL) {
        return NGX_ERROR;
    }

    addr = &r->connection->addr_text;

    p = ngx_pnalloc(r->pool, sizeof("ip:") - 1 + addr->len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    key[0].data = p;
    key[0].len = ngx_sprintf(p, "ip:%V", addr) - p;

    for (i = 0; i < n; i++) {
        p = ngx_pnalloc(r->pool, sizeof("email:") - 1 + ec->email[i].len);
        if (p == NULL) {
            return NGX_ERROR;
        }

        key[1 + i].data = p;
        key[1 + i].len = ngx_sprintf(p, "email:%V", &ec->email[i]) - p;
    }

    ctx->lockout_key = key;
    ctx->lockout_nkeys = 1 + n;
    ctx->lockout_ambiguous = (n > 1);

    return NGX_OK;
}


/*
 * The input, where the app reads it: tRPC reads a GET call's from its
 * "input" argument (URLSearchParams), and any other's from the body as
 * JSON (Content-Type application/json...); HEAD is answered without one.
 */

static ngx_int_t
ngx_http_linguamate_lockout_input(ngx_http_request_t *r,
    ngx_http_linguamate_ctx_t *ctx, ngx_http_linguamate_email_ctx_t *ec)
{
    ngx_buf_t    b;
    ngx_str_t    v;
    ngx_chain_t  cl;

    if (ctx->trpc && (r->method & NGX_HTTP_GET)) {
        if (ngx_http_linguamate_trpc_arg(r, "input", &v) != NGX_OK
            || v.len == 0)
        {
            return NGX_OK;
        }

        ngx_memzero(&b, sizeof(ngx_buf_t));

        b.start = ngx_pnalloc(r->pool, v.len);
        if (b.start == NULL) {
            return NGX_ERROR;
        }

        b.pos = b.start;
        b.last = b.pos + ngx_http_linguamate_form_decode(b.pos, v.data,
                                                         v.len);
        b.memory = 1;

        cl.buf = &b;
        cl.next = NULL;

        return ngx_http_linguamate_find_email(ec, &cl);
    }

    if (!ctx->body_read || (ctx->trpc && (r->method & NGX_HTTP_HEAD))) {
        return NGX_OK;
    }

    if (ctx->trpc) {
        ec->unread = ngx_http_linguamate_lockout_json(r);

        if (ec->unread) {
            return NGX_OK;
        }
    }

    if (r->request_body == NULL || r->request_body->bufs == NULL) {
        return NGX_OK;
    }

    if (r->request_body->temp_file) {
        ec->unread = NGX_HTTP_LINGUAMATE_UNREAD_FILE;
        return NGX_OK;
    }

    return ngx_http_linguamate_find_email(ec, r->request_body->bufs);
}


/*
 * A body tRPC reads as JSON (Content-Type starting with
 * "application/json") and that the app cannot read otherwise: UTF-8 (an
 * Express app with body-parser honours another charset), not encoded (it
 * inflates gzip).  Else the reason to refuse it.
 */

static ngx_uint_t
ngx_http_linguamate_lockout_json(ngx_http_request_t *r)
{
    u_char           *p, *last, *v;
    ngx_table_elt_t  *ct, *ce;

    static ngx_str_t  encoding = ngx_string("Content-Encoding");

    ct = r->headers_in.content_type;

    if (ct == NULL || ct->value.len < sizeof("application/json") - 1
        || ngx_strncmp(ct->value.data, "application/json",
                       sizeof("application/json") - 1) != 0)
    {
        return NGX_HTTP_LINGUAMATE_UNREAD_TYPE;
    }

    last = ct->value.data + ct->value.len;
    p = ngx_strlcasestrn(ct->value.data, last, (u_char *) "charset=", 7);

    if (p) {
        /* charset=utf-8, "utf-8", utf8, up to ';' */

        p += sizeof("charset=") - 1;

        while (p < last && (*p == '"' || *p == ' ')) {
            p++;
        }

        v = p;

        while (v < last && *v != '"' && *v != ';' && *v != ' ') {
            v++;
        }

        if (!((v - p == 5 && ngx_strncasecmp(p, (u_char *) "utf-8", 5) == 0)
              || (v - p == 4
                  && ngx_strncasecmp(p, (u_char *) "utf8", 4) == 0)))
        {
            return NGX_HTTP_LINGUAMATE_UNREAD_TYPE;
        }
    }

    ce = ngx_http_linguamate_find_header(r, &encoding);

    if (ce && !(ce->value.len == 8
                && ngx_strncasecmp(ce->value.data, (u_char *) "identity", 8)
                   == 0))
    {
        return NGX_HTTP_LINGUAMATE_UNREAD_ENCODING;
    }

    return NGX_HTTP_LINGUAMATE_UNREAD_NONE;
}


/*
 * The "email" strings of a JSON input held in memory, only where a login
 * names its account: {"email":..}, tRPC's {"json":{"email":..}} and its
 * batches {"0":{"json":{"email":..}}}, so that an email hidden elsewhere
 * cannot stand in for the account.  Duplicate keys are all counted (the
 * app, with JSON.parse, reads the last one).  Whatever the app would read
 * differently sets ec->unread: a byte-order mark (Request.json() drops
 * it), bytes that are not UTF-8 (replaced by U+FFFD there), a lone
 * surrogate escape (yajl and JSON.parse disagree), not JSON, nested
 * deeper than the edge reads, superjson meta that touches the email.
 */

static ngx_int_t
ngx_http_linguamate_find_email(ngx_http_linguamate_email_ctx_t *ec,
    ngx_chain_t *in)
{
    ngx_buf_t    *b;
    yajl_handle   h;
    ngx_chain_t  *cl;

    h = yajl_alloc(&ngx_http_linguamate_email_callbacks, NULL, ec);
    if (h == NULL) {
        return NGX_ERROR;
    }

    ec->lo = 0x80;
    ec->hi = 0xbf;

    for (cl = in; cl && !ec->unread; cl = cl->next) {
        b = cl->buf;

        if (b->in_file && !ngx_buf_in_memory(b)) {
            ec->unread = NGX_HTTP_LINGUAMATE_UNREAD_FILE;
            break;
        }

        if (b->last == b->pos) {
            continue;
        }

        ngx_http_linguamate_email_bytes(ec, b->pos, b->last);

        if (!ec->unread
            && yajl_parse(h, b->pos, b->last - b->pos) != yajl_status_ok
            && !ec->unread)
        {
            ec->unread = NGX_HTTP_LINGUAMATE_UNREAD_JSON;
        }
    }

    if (!ec->unread) {
        if (ec->need) {
            ec->unread = NGX_HTTP_LINGUAMATE_UNREAD_UTF8;

        } else if (ec->high) {
            ec->unread = NGX_HTTP_LINGUAMATE_UNREAD_SURROGATE;

        } else if (yajl_complete_parse(h) != yajl_status_ok
                   && !ec->unread)
        {
            ec->unread = NGX_HTTP_LINGUAMATE_UNREAD_JSON;
        }
    }

    yajl_free(h);

    return NGX_OK;
}


/* one pass over the bytes: the byte-order mark, UTF-8, \u escapes */

static void
ngx_http_linguamate_email_bytes(ngx_http_linguamate_email_ctx_t *ec,
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
ngx_http_linguamate_email_escape(ngx_http_linguamate_email_ctx_t *ec,
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
ngx_http_linguamate_email_key(ngx_http_linguamate_email_ctx_t *ec,
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
ngx_http_linguamate_email_input(ngx_http_linguamate_email_ctx_t *ec,
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
ngx_http_linguamate_email_meta(ngx_http_linguamate_email_ctx_t *ec,
    ngx_uint_t d, const char *name)
{
    return (d == 2 || d == 3) && ngx_http_linguamate_email_key(ec, d, name)
           && ec->parent_len[d] == 4
           && ngx_strncmp(ec->parent[d], "meta", 4) == 0
           && ngx_http_linguamate_email_input(ec, d - 1);
}


/* the value to come is an account: {"email"}, an input's json.email */

static ngx_uint_t
ngx_http_linguamate_email_place(ngx_http_linguamate_email_ctx_t *ec)
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
ngx_http_linguamate_email_value(ngx_http_linguamate_email_ctx_t *ec,
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
ngx_http_linguamate_email_path(ngx_http_linguamate_email_ctx_t *ec,
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
    ngx_http_linguamate_email_ctx_t *ec = data;

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
    ngx_http_linguamate_email_ctx_t *ec = data;

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
ngx_http_linguamate_json_open(ngx_http_linguamate_email_ctx_t *ec,
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
    ngx_http_linguamate_email_ctx_t *ec = data;

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


/* milliseconds the key stays locked, 0 if it is not */

static ngx_msec_t
ngx_http_linguamate_lockout_check(ngx_http_linguamate_zone_t *zone,
    ngx_str_t *key)
{
    uint32_t                     hash;
    ngx_msec_t                   left;
    ngx_http_linguamate_lock_t  *lock;
    ngx_http_linguamate_node_t  *node;

    hash = ngx_crc32_short(key->data, key->len);
    left = 0;

    ngx_shmtx_lock(&zone->shpool->mutex);

    node = ngx_http_linguamate_node_lookup(zone, hash, key->data, key->len);

    if (node) {
        lock = ngx_http_linguamate_node_value(node);

        if (lock->locked_until
            && (ngx_msec_int_t) (lock->locked_until - ngx_current_msec) > 0)
        {
            left = lock->locked_until - ngx_current_msec;
        }
    }

    ngx_shmtx_unlock(&zone->shpool->mutex);

    return left;
}


/*
 * From the header filter, once the status is known: a 400/401 is a
 * failure for every key; a 2xx clears the account (and the address when
 * no account was named: clearing the address on any success would let
 * one good account reset an attacker's count).  Sets the remaining count
 * for X-RateLimit-Remaining-Auth.
 */

ngx_int_t
ngx_http_linguamate_lockout_account(ngx_http_request_t *r,
    ngx_http_linguamate_ctx_t *ctx)
{
    u_char      *p;
    ngx_uint_t   remaining;

    if (ctx->trpc && r->headers_out.status == 207) {
        /* a batch answer: its elements say, once it has been read */
        ctx->trpc_scanning = 1;
        return NGX_OK;
    }

    remaining = ngx_http_linguamate_lockout_record(r, ctx,
                    r->headers_out.status,
                    ctx->trpc ? ctx->trpc_auth_n : 1);

    p = ngx_pnalloc(r->pool, NGX_INT_T_LEN);
    if (p == NULL) {
        return NGX_ERROR;
    }

    return ngx_http_linguamate_add_header(r, "X-RateLimit-Remaining-Auth",
               sizeof("X-RateLimit-Remaining-Auth") - 1, p,
               ngx_sprintf(p, "%ui", remaining) - p);
}


/* the outcome of a tRPC batch's auth procedures, from its 207 answer */

void
ngx_http_linguamate_lockout_scanned(ngx_http_request_t *r,
    ngx_http_linguamate_ctx_t *ctx, ngx_uint_t failed, ngx_uint_t succeeded)
{
    if (failed) {
        (void) ngx_http_linguamate_lockout_record(r, ctx,
                                                  NGX_HTTP_UNAUTHORIZED,
                                                  failed);

    } else if (succeeded) {
        (void) ngx_http_linguamate_lockout_record(r, ctx, NGX_HTTP_OK, 1);
    }
}


/*
 * Count "weight" failures (a 400 or 401 "status") or clear (a 2xx) for
 * the keys of the request; returns the attempts left.
 */

static ngx_uint_t
ngx_http_linguamate_lockout_record(ngx_http_request_t *r,
    ngx_http_linguamate_ctx_t *ctx, ngx_uint_t status, ngx_uint_t weight)
{
    uint32_t                             hash, now;
    ngx_uint_t                           i, j, limit, threshold, count;
    ngx_uint_t                           remaining, failures;
    ngx_msec_t                           msec, locked;
    ngx_http_linguamate_lock_t          *lock;
    ngx_http_linguamate_node_t          *node;
    ngx_http_linguamate_zone_t          *zone;
    ngx_http_linguamate_window_t        *w;
    ngx_http_linguamate_lock_event_t    *ev;
    ngx_http_linguamate_main_conf_t     *lmcf;
    ngx_http_linguamate_lockout_zone_t  *lz;

    zone = ctx->lockout_zone;
    lz = zone->data;
    lmcf = ngx_http_get_module_main_conf(r, ngx_http_linguamate_module);

    limit = lmcf->rate_limit_max_login_attempts;
    threshold = 2 * limit;
    remaining = limit;

    msec = ngx_current_msec;
    now = (uint32_t) msec;

    for (i = 0; i < ctx->lockout_nkeys; i++) {

        hash = ngx_crc32_short(ctx->lockout_key[i].data,
                               ctx->lockout_key[i].len);
        count = 0;
        locked = 0;
        failures = 0;

        ngx_shmtx_lock(&zone->shpool->mutex);

        node = ngx_http_linguamate_node_lookup(zone, hash,
                                               ctx->lockout_key[i].data,
                                               ctx->lockout_key[i].len);

        if (node && (ngx_msec_int_t) (node->expire - msec) <= 0) {
            /* everything about it has aged out: start afresh */
            lock = ngx_http_linguamate_node_value(node);
            w = ngx_http_linguamate_node_window(node,
                                               NGX_HTTP_LINGUAMATE_LOCK_OFF);
            lock->locked_until = 0;
            w->head = 0;
            w->count = 0;
        }

        if (status >= 200 && status < 300) {
            /*
             * the one account named clears; the address only when no
             * account was named; an ambiguous body clears nothing
             */

            if (node
                && ((i >= 1 && !ctx->lockout_ambiguous)
                    || (i == 0 && ctx->lockout_nkeys == 1)))
            {
                ngx_http_linguamate_node_free(zone, node);
                node = NULL;
            }

        } else if (status == NGX_HTTP_BAD_REQUEST
                   || status == NGX_HTTP_UNAUTHORIZED)
        {
            if (node) {
                w = ngx_http_linguamate_node_window(node,
                                               NGX_HTTP_LINGUAMATE_LOCK_OFF);
                ngx_http_linguamate_window_expire(w, now, lz->window);
            }

            node = ngx_http_linguamate_window_reserve(zone, node,
                       NGX_HTTP_LINGUAMATE_LOCK_OFF, (uint32_t) threshold,
                       hash, &ctx->lockout_key[i], r->connection->log);

            if (node) {
                lock = ngx_http_linguamate_node_value(node);
                w = ngx_http_linguamate_node_window(node,
                                               NGX_HTTP_LINGUAMATE_LOCK_OFF);

                if (lock->locked_until
                    && (ngx_msec_int_t) (lock->locked_until - msec) <= 0)
                {
                    lock->locked_until = 0;     /* served its time */
                }

                for (j = 0; j < weight && w->count < threshold; j++) {
                    if (w->count == w->cap) {
                        /* grow the ring (the node may move; when the
                           zone is full it stays as it is) */
                        node = ngx_http_linguamate_window_reserve(zone, node,
                                   NGX_HTTP_LINGUAMATE_LOCK_OFF,
                                   (uint32_t) threshold, hash,
                                   &ctx->lockout_key[i], r->connection->log);
                        lock = ngx_http_linguamate_node_value(node);
                        w = ngx_http_linguamate_node_window(node,
                                               NGX_HTTP_LINGUAMATE_LOCK_OFF);

                        if (w->count == w->cap) {
                            break;
                        }
                    }

                    (void) ngx_http_linguamate_window_push(w, now);
                }


                if (w->count >= threshold && lock->locked_until == 0) {
                    lock->locked_until = msec + lz->lock;
                    lock->locked_at = ngx_time();
                    locked = lz->lock;
                    failures = w->count;

                    /* counting starts afresh once the lock is over */
                    w->head = 0;
                    w->count = 0;
                    count = threshold;

                } else {
                    count = w->count;
                }

                node->expire = ngx_max(msec + lz->window,
                                       lock->locked_until);
            }
        }

        if (node && count == 0) {
            lock = ngx_http_linguamate_node_value(node);
            w = ngx_http_linguamate_node_window(node,
                                               NGX_HTTP_LINGUAMATE_LOCK_OFF);
            ngx_http_linguamate_window_expire(w, now, lz->window);
            count = w->count;

            if (lock->locked_until
                && (ngx_msec_int_t) (lock->locked_until - msec) > 0)
            {
                count = threshold;
            }
        }

        ngx_shmtx_unlock(&zone->shpool->mutex);

        if (locked) {
            /* the event line and the journal: from the LOG phase */

            ev = ngx_http_linguamate_lockout_note(r, ctx);
            if (ev) {
                ev->key = &ctx->lockout_key[i];
                ev->failures = failures;
                ev->locked = locked;
                ev->at = ngx_time();
            }
        }

        count = (count >= limit) ? 0 : limit - count;
        remaining = ngx_min(remaining, count);
    }

    return remaining;
}


/*
 * A lock decided while the answer's headers were made: its event line and
 * its journal record wait for the LOG phase, so that no file is written
 * from a filter (the count itself must be in the zone before the headers:
 * X-RateLimit-Remaining-Auth says what is left after this attempt).
 */

static ngx_http_linguamate_lock_event_t *
ngx_http_linguamate_lockout_note(ngx_http_request_t *r,
    ngx_http_linguamate_ctx_t *ctx)
{
    if (ctx->lockout_events == NULL) {
        ctx->lockout_events = ngx_array_create(r->pool, 2,
                                  sizeof(ngx_http_linguamate_lock_event_t));
        if (ctx->lockout_events == NULL) {
            return NULL;
        }
    }

    return ngx_array_push(ctx->lockout_events);
}


/* LOG phase, after the scan of a batch answer: the locks of the request */

ngx_int_t
ngx_http_linguamate_lockout_log_step(ngx_http_request_t *r)
{
    ngx_uint_t                         i;
    ngx_http_linguamate_ctx_t         *ctx;
    ngx_http_linguamate_lock_event_t  *ev;

    if (r != r->main) {
        return NGX_OK;
    }

    ctx = ngx_http_get_module_ctx(r, ngx_http_linguamate_module);

    if (ctx == NULL || ctx->lockout_events == NULL) {
        return NGX_OK;
    }

    ev = ctx->lockout_events->elts;

    for (i = 0; i < ctx->lockout_events->nelts; i++) {
        ngx_http_linguamate_lockout_log(r, ctx->lockout_zone, ev[i].key,
                                        ev[i].failures, ev[i].locked);
        ngx_http_linguamate_lockout_append(ctx->lockout_zone, ev[i].key,
                                           ev[i].locked, ev[i].at,
                                           r->connection->log);
    }

    ctx->lockout_events = NULL;

    return NGX_OK;
}


/* "j***@example.com": enough to recognise, not enough to harvest */

static void
ngx_http_linguamate_lockout_log(ngx_http_request_t *r,
    ngx_http_linguamate_zone_t *zone, ngx_str_t *key, ngx_uint_t failures,
    ngx_msec_t lock)
{
    u_char                           *p, *last, *v;
    size_t                            vlen;
    ngx_str_t                         msg, extra;
    ngx_http_linguamate_ctx_t        *ctx;
    ngx_http_linguamate_main_conf_t  *lmcf;
    u_char                            buf[1024];

    lmcf = ngx_http_get_module_main_conf(r, ngx_http_linguamate_module);
    ctx = ngx_http_linguamate_get_ctx(r);

    p = buf;
    last = buf + sizeof(buf);

    v = (u_char *) ngx_strchr(key->data, ':') + 1;
    vlen = key->data + key->len - v;

    if (key->data[0] == 'e') {
        p = ngx_slprintf(p, last, ",\"cat\":\"auth\",\"zone\":\"%V\","
                         "\"keyType\":\"email\",\"email\":\"", &zone->name);

        /* leave room for the rest of the line */
        p = ngx_http_linguamate_mask_email(p, last - 256, v, vlen);

    } else {
        p = ngx_slprintf(p, last, ",\"cat\":\"auth\",\"zone\":\"%V\","
                         "\"keyType\":\"ip\",\"client\":\"", &zone->name);

        if (last - p > 256 + 6 * 64) {
            p = ngx_http_linguamate_json_escape(p, v, ngx_min(vlen, 64));
        }
    }

    p = ngx_slprintf(p, last, "\",\"failures\":%ui,\"lockedForSeconds\":%M",
                     failures, lock / 1000);

    if (ctx && (size_t) (last - p) > ctx->corr_id.len + 40) {
        p = ngx_slprintf(p, last, ",\"corr\":{\"correlationId\":\"%V\"}",
                         &ctx->corr_id);
    }

    extra.data = buf;
    extra.len = p - buf;

    ngx_str_set(&msg, "Too many failed logins: key locked");

    ngx_http_linguamate_log_event(lmcf, NGX_HTTP_LINGUAMATE_LOG_WARN,
                                  "auth_lockout_triggered", &msg, &extra);
}


/* operations: a key's state ("email:..." or "ip:..."); NGX_DECLINED: none */

ngx_int_t
ngx_http_linguamate_lockout_status(ngx_http_linguamate_zone_t *zone,
    ngx_str_t *key, ngx_http_linguamate_lockout_info_t *info)
{
    uint32_t                             hash;
    ngx_http_linguamate_lock_t          *lock;
    ngx_http_linguamate_node_t          *node;
    ngx_http_linguamate_window_t        *w;
    ngx_http_linguamate_lockout_zone_t  *lz;

    lz = zone->data;
    hash = ngx_crc32_short(key->data, key->len);
    ngx_memzero(info, sizeof(ngx_http_linguamate_lockout_info_t));

    ngx_shmtx_lock(&zone->shpool->mutex);

    node = ngx_http_linguamate_node_lookup(zone, hash, key->data, key->len);

    if (node == NULL) {
        ngx_shmtx_unlock(&zone->shpool->mutex);
        return NGX_DECLINED;
    }

    lock = ngx_http_linguamate_node_value(node);
    w = ngx_http_linguamate_node_window(node, NGX_HTTP_LINGUAMATE_LOCK_OFF);

    ngx_http_linguamate_window_expire(w, (uint32_t) ngx_current_msec,
                                      lz->window);
    info->failures = w->count;

    if (lock->locked_until
        && (ngx_msec_int_t) (lock->locked_until - ngx_current_msec) > 0)
    {
        info->locked = 1;
        info->remaining_ms = lock->locked_until - ngx_current_msec;
        info->locked_at = lock->locked_at;
    }

    ngx_shmtx_unlock(&zone->shpool->mutex);

    return NGX_OK;
}


ngx_int_t
ngx_http_linguamate_lockout_unlock(ngx_http_linguamate_zone_t *zone,
    ngx_str_t *key)
{
    if (!ngx_http_linguamate_lockout_forget(zone, key)) {
        return NGX_DECLINED;
    }

    ngx_http_linguamate_lockout_append(zone, key, 0, 0, ngx_cycle->log);

    return NGX_OK;
}


/* drop a key's failures and lock; 1 if there were any */

static ngx_uint_t
ngx_http_linguamate_lockout_forget(ngx_http_linguamate_zone_t *zone,
    ngx_str_t *key)
{
    uint32_t                     hash;
    ngx_http_linguamate_node_t  *node;

    hash = ngx_crc32_short(key->data, key->len);

    ngx_shmtx_lock(&zone->shpool->mutex);

    node = ngx_http_linguamate_node_lookup(zone, hash, key->data, key->len);

    if (node) {
        ngx_http_linguamate_node_free(zone, node);
    }

    ngx_shmtx_unlock(&zone->shpool->mutex);

    return node ? 1 : 0;
}


/* at start: the locks still in force come back, then the journal shrinks */

static ngx_int_t
ngx_http_linguamate_lockout_fresh(ngx_http_linguamate_zone_t *zone,
    ngx_log_t *log)
{
    ngx_http_linguamate_lockout_zone_t  *lz;

    lz = zone->data;

    if (ngx_http_linguamate_state_path(lz->state) != NGX_OK) {
        return NGX_ERROR;
    }

    if (ngx_http_linguamate_state_load(lz->state, log) == NGX_OK) {
        ngx_log_error(NGX_LOG_NOTICE, log, 0,
                      "linguamate: zone \"%V\": locks restored from \"%V\"",
                      &zone->name, &lz->state->path);
    }

    return NGX_OK;
}


/*
 * A lock (left ms from now) or an unlock (left 0), through the state
 * layer; never with the zone's mutex held.
 */

static void
ngx_http_linguamate_lockout_append(ngx_http_linguamate_zone_t *zone,
    ngx_str_t *key, ngx_msec_t left, time_t locked_at, ngx_log_t *log)
{
    ngx_time_t                          *tp;
    ngx_http_linguamate_state_rec_t      rec;
    ngx_http_linguamate_lockout_zone_t  *lz;

    lz = zone->data;

    if (key->len > 320) {
        return;
    }

    ngx_memzero(&rec, sizeof(ngx_http_linguamate_state_rec_t));
    rec.key = *key;

    if (left) {
        tp = ngx_timeofday();
        rec.type = NGX_HTTP_LINGUAMATE_STATE_LOCK;
        rec.n[0] = (int64_t) tp->sec * 1000 + tp->msec + left;
        rec.n[1] = locked_at;

    } else {
        rec.type = NGX_HTTP_LINGUAMATE_STATE_UNLOCK;
    }

    (void) ngx_http_linguamate_state_write(lz->state, &rec, 1, log);
}


/* a record read back at start (or from another replica) */

static ngx_int_t
ngx_http_linguamate_lockout_apply(ngx_http_linguamate_state_t *st,
    ngx_http_linguamate_state_rec_t *rec, ngx_log_t *log)
{
    if (rec->key.len > 320 || rec->n[1] > NGX_MAX_TIME_T_VALUE) {
        return NGX_ERROR;
    }

    if (rec->type == NGX_HTTP_LINGUAMATE_STATE_UNLOCK) {
        (void) ngx_http_linguamate_lockout_forget(st->zone, &rec->key);
        return NGX_OK;
    }

    return ngx_http_linguamate_lockout_restore(st->zone, &rec->key,
                                               (uint64_t) rec->n[0],
                                               (time_t) rec->n[1], log);
}


/* a lock, for what is left of it: NGX_DECLINED if it is over */

static ngx_int_t
ngx_http_linguamate_lockout_restore(ngx_http_linguamate_zone_t *zone,
    ngx_str_t *key, uint64_t until, time_t locked_at, ngx_log_t *log)
{
    uint32_t                             hash;
    uint64_t                             now;
    ngx_msec_t                           left;
    ngx_time_t                          *tp;
    ngx_http_linguamate_lock_t          *lock;
    ngx_http_linguamate_node_t          *node;
    ngx_http_linguamate_lockout_zone_t  *lz;

    lz = zone->data;
    tp = ngx_timeofday();
    now = (uint64_t) tp->sec * 1000 + tp->msec;

    if (until <= now) {
        (void) ngx_http_linguamate_lockout_forget(zone, key);
        return NGX_DECLINED;
    }

    /* never longer than a lock lasts, whatever the clock did meanwhile */

    left = (ngx_msec_t) ngx_min(until - now, (uint64_t) lz->lock);
    hash = ngx_crc32_short(key->data, key->len);

    ngx_shmtx_lock(&zone->shpool->mutex);

    node = ngx_http_linguamate_node_lookup(zone, hash, key->data, key->len);
    node = ngx_http_linguamate_window_reserve(zone, node,
               NGX_HTTP_LINGUAMATE_LOCK_OFF,
               (uint32_t) (2 * lz->lmcf->rate_limit_max_login_attempts),
               hash, key, log);

    if (node) {
        lock = ngx_http_linguamate_node_value(node);
        lock->locked_until = ngx_current_msec + left;
        lock->locked_at = locked_at;
        node->expire = lock->locked_until;
    }

    ngx_shmtx_unlock(&zone->shpool->mutex);

    return node ? NGX_OK : NGX_DECLINED;
}


/* the locks in force, as records */

static ngx_int_t
ngx_http_linguamate_lockout_snapshot(ngx_http_linguamate_state_t *st,
    ngx_http_linguamate_state_emit_pt emit, void *sink, ngx_log_t *log)
{
    ngx_int_t                         rc;
    ngx_time_t                       *tp;
    ngx_queue_t                      *q;
    ngx_http_linguamate_zone_t       *zone;
    ngx_http_linguamate_lock_t       *lock;
    ngx_http_linguamate_node_t       *node;
    ngx_http_linguamate_state_rec_t   rec;

    zone = st->zone;
    tp = ngx_timeofday();
    rc = NGX_OK;

    ngx_memzero(&rec, sizeof(ngx_http_linguamate_state_rec_t));
    rec.type = NGX_HTTP_LINGUAMATE_STATE_LOCK;

    ngx_shmtx_lock(&zone->shpool->mutex);

    for (q = ngx_queue_head(&zone->sh->queue);
         q != ngx_queue_sentinel(&zone->sh->queue) && rc == NGX_OK;
         q = ngx_queue_next(q))
    {
        node = ngx_queue_data(q, ngx_http_linguamate_node_t, queue);
        lock = ngx_http_linguamate_node_value(node);

        if (lock->locked_until == 0
            || (ngx_msec_int_t) (lock->locked_until - ngx_current_msec) <= 0
            || node->len > 320)
        {
            continue;
        }

        rec.key.data = ngx_http_linguamate_node_key(node);
        rec.key.len = node->len;
        rec.n[0] = (int64_t) tp->sec * 1000 + tp->msec
                   + (lock->locked_until - ngx_current_msec);
        rec.n[1] = lock->locked_at;

        rc = emit(sink, &rec);
    }

    ngx_shmtx_unlock(&zone->shpool->mutex);

    return rc;
}
