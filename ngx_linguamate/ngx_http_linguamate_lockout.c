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


#include "ngx_http_linguamate_module.h"
#include "ngx_http_linguamate_json.h"
#include "ngx_http_linguamate_log.h"
#include "ngx_http_linguamate_shm.h"
#include "ngx_http_linguamate_window.h"
#include "ngx_http_linguamate_state.h"
#include "ngx_http_linguamate_lockout.h"
#include "ngx_http_linguamate_login_parse.h"
#include "ngx_http_linguamate_session.h"
#include "ngx_http_linguamate_cluster.h"


#define NGX_HTTP_LINGUAMATE_LOCK_WINDOW    60000
#define NGX_HTTP_LINGUAMATE_LOCK_TIME      (15 * 60000)


typedef struct {
    ngx_msec_t                  window;
    ngx_msec_t                  lock;
    ngx_http_linguamate_main_conf_t  *lmcf;
    ngx_http_linguamate_state_t      *state;
    unsigned                          cluster:1;
} ngx_http_linguamate_lockout_zone_t;


/* the value of a lockout node, followed by its window of failures */
typedef struct {
    ngx_msec_t                  locked_until;   /* 0: not locked */
    time_t                      locked_at;      /* epoch s, for operators */
} ngx_http_linguamate_lock_t;

#define NGX_HTTP_LINGUAMATE_LOCK_OFF  sizeof(ngx_http_linguamate_lock_t)


typedef struct {
    ngx_str_t                   reason;
    const char                 *message;
} ngx_http_linguamate_unread_t;


/*
 * Cluster mode: the failures of a key on every replica, in one sorted set
 * per key (a failure is rare: one member each, its time the score, so the
 * window slides exactly).  KEYS[1]; ARGV: now (ms), window (ms), then the
 * new members ("" for none).  Returns the failures in the window.  A
 * success, or a lock, deletes the key.
 */

static const char  ngx_http_linguamate_lockout_lua[] =
    "for i = 3, #ARGV do\n"
    "  if ARGV[i] ~= '' then\n"
    "    redis.call('ZADD', KEYS[1], ARGV[1], ARGV[i])\n"
    "  end\n"
    "end\n"
    "redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf',"
    " tonumber(ARGV[1]) - tonumber(ARGV[2]))\n"
    "redis.call('PEXPIRE', KEYS[1], ARGV[2])\n"
    "return redis.call('ZCARD', KEYS[1])\n";

static ngx_http_linguamate_cluster_script_t  ngx_http_linguamate_lockout_script
    = { ngx_string(ngx_http_linguamate_lockout_lua), { 0 }, 0 };


/* a key's count on its way to Redis and back */
typedef struct {
    ngx_http_linguamate_zone_t         *zone;
    ngx_uint_t                          threshold;
    ngx_str_t                           key;
    u_char                              data[1];
} ngx_http_linguamate_lockout_share_t;


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

_Static_assert(sizeof(ngx_http_linguamate_unread)
               / sizeof(ngx_http_linguamate_unread[0])
               == NGX_HTTP_LINGUAMATE_NUNREAD,
               "a message for each reason of login_parse.h");


static void ngx_http_linguamate_lockout_body(ngx_http_request_t *r);
static ngx_int_t ngx_http_linguamate_lockout_keys(ngx_http_request_t *r,
    ngx_http_linguamate_ctx_t *ctx);
static ngx_int_t ngx_http_linguamate_lockout_input(ngx_http_request_t *r,
    ngx_http_linguamate_ctx_t *ctx, ngx_http_linguamate_login_parse_t *ec);
static ngx_uint_t ngx_http_linguamate_lockout_json(ngx_http_request_t *r);
static ngx_int_t ngx_http_linguamate_find_email(ngx_http_request_t *r,
    ngx_http_linguamate_login_parse_t *lp, ngx_chain_t *in);
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
static void ngx_http_linguamate_lockout_share(ngx_http_linguamate_zone_t *zone,
    ngx_str_t *key, ngx_uint_t weight, ngx_uint_t threshold, ngx_log_t *log);
static void ngx_http_linguamate_lockout_counted(
    ngx_http_linguamate_redis_t *rc, redisReply *reply, void *data);
static void ngx_http_linguamate_lockout_append(
    ngx_http_linguamate_zone_t *zone, ngx_str_t *key, ngx_msec_t left,
    time_t locked_at, ngx_log_t *log);


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
    u_char                             *p;
    ngx_str_t                          *addr, *key;
    ngx_uint_t                          i, n;
    ngx_http_linguamate_login_parse_t  *ec;

    ec = ngx_pcalloc(r->pool, sizeof(ngx_http_linguamate_login_parse_t));
    if (ec == NULL) {
        return NGX_ERROR;
    }

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
    ngx_http_linguamate_ctx_t *ctx, ngx_http_linguamate_login_parse_t *ec)
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

        return ngx_http_linguamate_find_email(r, ec, &cl);
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

    return ngx_http_linguamate_find_email(r, ec, r->request_body->bufs);
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
 * The accounts of a JSON input held in memory (login_parse.c): the
 * chain's buffers fed to the reader in turn; one in a file is refused.
 */

static ngx_int_t
ngx_http_linguamate_find_email(ngx_http_request_t *r,
    ngx_http_linguamate_login_parse_t *lp, ngx_chain_t *in)
{
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    if (ngx_http_linguamate_login_start(lp, r->pool) != NGX_OK) {
        return NGX_ERROR;
    }

    for (cl = in; cl && !lp->unread; cl = cl->next) {
        b = cl->buf;

        if (b->in_file && !ngx_buf_in_memory(b)) {
            lp->unread = NGX_HTTP_LINGUAMATE_UNREAD_FILE;
            break;
        }

        ngx_http_linguamate_login_feed(lp, b->pos, b->last);
    }

    (void) ngx_http_linguamate_login_end(lp);

    return NGX_OK;
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

        /* cluster mode: the failures counted on every replica */

        if (lz->cluster) {
            if (status >= 200 && status < 300) {
                if ((i >= 1 && !ctx->lockout_ambiguous)
                    || (i == 0 && ctx->lockout_nkeys == 1))
                {
                    ngx_http_linguamate_lockout_share(zone,
                        &ctx->lockout_key[i], 0, 0, r->connection->log);
                }

            } else if (status == NGX_HTTP_BAD_REQUEST
                       || status == NGX_HTTP_UNAUTHORIZED)
            {
                ngx_http_linguamate_lockout_share(zone, &ctx->lockout_key[i],
                                                  locked ? 0 : weight,
                                                  locked ? 0 : threshold,
                                                  r->connection->log);
            }
        }

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
    u_char     *p, *last, *v;
    size_t      vlen;
    ngx_str_t   msg, extra;
    u_char      buf[1024];

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

    extra.data = buf;
    extra.len = p - buf;

    ngx_str_set(&msg, "Too many failed logins: key locked");

    if (r == NULL) {
        /* cluster mode: the failures of every replica locked it */
        ngx_http_linguamate_log_event(
            ngx_http_cycle_get_module_main_conf(ngx_cycle,
                                                ngx_http_linguamate_module),
            NGX_HTTP_LINGUAMATE_LOG_WARN, "auth_lockout_triggered", &msg,
            &extra);
        return;
    }

    ngx_http_linguamate_log_request(r, NGX_HTTP_LINGUAMATE_LOG_WARN,
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
    ngx_http_linguamate_lockout_zone_t  *lz;

    lz = zone->data;

    if (lz->cluster) {
        /* the failures counted by every replica go too */
        ngx_http_linguamate_lockout_share(zone, key, 0, 0, ngx_cycle->log);
    }

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

/* postconfiguration, cluster mode: every lockout zone counts across
   replicas */

ngx_int_t
ngx_http_linguamate_lockout_cluster(ngx_conf_t *cf,
    ngx_http_linguamate_main_conf_t *lmcf)
{
    ngx_uint_t                           i;
    ngx_http_linguamate_zone_t         **zp;
    ngx_http_linguamate_lockout_zone_t  *lz;

    if (!ngx_http_linguamate_cluster_on(lmcf)) {
        return NGX_OK;
    }

    if (ngx_http_linguamate_cluster_script(
            &ngx_http_linguamate_lockout_script)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    zp = lmcf->zones.elts;

    for (i = 0; i < lmcf->zones.nelts; i++) {
        if (zp[i]->kind == NGX_HTTP_LINGUAMATE_ZONE_LOCKOUT) {
            lz = zp[i]->data;
            lz->cluster = 1;
        }
    }

    return NGX_OK;
}


/*
 * Cluster mode: "weight" failures of a key added to its count in Redis
 * (0 with no threshold: the key is cleared, by a success or a lock); when
 * the count of all replicas reaches the threshold, the key is locked here
 * and the lock goes to every replica as any lock does.
 */

static void
ngx_http_linguamate_lockout_share(ngx_http_linguamate_zone_t *zone,
    ngx_str_t *key, ngx_uint_t weight, ngx_uint_t threshold, ngx_log_t *log)
{
    u_char                               *p;
    u_char                                rkey[128], now[NGX_INT64_LEN];
    u_char                                win[NGX_INT64_LEN];
    u_char                                members[16][64];
    size_t                                lens[20];
    ngx_uint_t                            i, argc;
    const char                           *argv[20];
    ngx_http_linguamate_lockout_zone_t   *lz;
    ngx_http_linguamate_lockout_share_t  *sh;

    static ngx_uint_t                     seq;

    lz = zone->data;

    p = ngx_http_linguamate_cluster_key(rkey, "fail", &zone->name,
                                        key->data, key->len);

    if (threshold == 0) {
        argv[0] = "DEL";
        lens[0] = 3;
        argv[1] = (const char *) rkey;
        lens[1] = p - rkey;

        (void) ngx_http_linguamate_cluster_command(2, argv, lens,
                                      ngx_http_linguamate_lockout_counted,
                                      NULL);
        return;
    }

    sh = ngx_alloc(sizeof(ngx_http_linguamate_lockout_share_t) + key->len,
                   log);
    if (sh == NULL) {
        return;
    }

    sh->zone = zone;
    sh->threshold = threshold;
    sh->key.data = sh->data;
    sh->key.len = key->len;
    ngx_memcpy(sh->data, key->data, key->len);

    argv[0] = "EVALSHA";
    lens[0] = 7;
    argv[1] = (const char *) ngx_http_linguamate_lockout_script.sha;
    lens[1] = 40;
    argv[2] = "1";
    lens[2] = 1;
    argv[3] = (const char *) rkey;
    lens[3] = p - rkey;
    argv[4] = (const char *) now;
    lens[4] = ngx_sprintf(now, "%L", ngx_http_linguamate_now_ms()) - now;
    argv[5] = (const char *) win;
    lens[5] = ngx_sprintf(win, "%M", lz->window) - win;
    argc = 6;

    /* a member per failure: this replica, this process, a sequence */

    for (i = 0; i < ngx_min(weight, 14); i++) {
        argv[argc] = (const char *) members[i];
        lens[argc] = ngx_sprintf(members[i], "%016uxL:%P:%ui",
                                 ngx_http_linguamate_cluster_replica(),
                                 ngx_pid, ++seq) - members[i];
        argc++;
    }

    if (ngx_http_linguamate_cluster_command((int) argc, argv, lens,
                                      ngx_http_linguamate_lockout_counted,
                                      sh)
        != NGX_OK)
    {
        /* Redis away: this replica's own count still locks */
        ngx_free(sh);
    }
}


static void
ngx_http_linguamate_lockout_counted(ngx_http_linguamate_redis_t *rc,
    redisReply *reply, void *data)
{
    ngx_http_linguamate_lockout_share_t *sh = data;

    uint32_t                             hash;
    ngx_msec_t                           msec;
    ngx_uint_t                           lock;
    ngx_http_linguamate_lock_t          *lk;
    ngx_http_linguamate_node_t          *node;
    ngx_http_linguamate_zone_t          *zone;
    ngx_http_linguamate_window_t        *w;
    ngx_http_linguamate_lockout_zone_t  *lz;

    if (sh == NULL) {
        return;                                 /* a DEL */
    }

    (void) ngx_http_linguamate_cluster_noscript(reply);

    if (reply == NULL || reply->type != REDIS_REPLY_INTEGER
        || reply->integer < (long long) sh->threshold)
    {
        ngx_free(sh);
        return;
    }

    /* the replicas' failures reach the threshold: lock it here, unless
       this replica did already */

    zone = sh->zone;
    lz = zone->data;
    msec = ngx_current_msec;
    hash = ngx_crc32_short(sh->key.data, sh->key.len);
    lock = 0;

    ngx_shmtx_lock(&zone->shpool->mutex);

    node = ngx_http_linguamate_node_lookup(zone, hash, sh->key.data,
                                           sh->key.len);
    if (node == NULL) {
        node = ngx_http_linguamate_window_reserve(zone, NULL,
                   NGX_HTTP_LINGUAMATE_LOCK_OFF, (uint32_t) sh->threshold,
                   hash, &sh->key, ngx_cycle->log);
    }

    if (node) {
        lk = ngx_http_linguamate_node_value(node);

        if (lk->locked_until == 0
            || (ngx_msec_int_t) (lk->locked_until - msec) <= 0)
        {
            lk->locked_until = msec + lz->lock;
            lk->locked_at = ngx_time();
            node->expire = lk->locked_until;

            /* counting starts afresh once the lock is over */
            w = ngx_http_linguamate_node_window(node,
                                               NGX_HTTP_LINGUAMATE_LOCK_OFF);
            w->head = 0;
            w->count = 0;
            lock = 1;
        }
    }

    ngx_shmtx_unlock(&zone->shpool->mutex);

    if (lock) {
        ngx_http_linguamate_lockout_log(NULL, zone, &sh->key,
                                        (ngx_uint_t) reply->integer,
                                        lz->lock);
        ngx_http_linguamate_lockout_append(zone, &sh->key, lz->lock,
                                           ngx_time(), ngx_cycle->log);
        ngx_http_linguamate_lockout_share(zone, &sh->key, 0, 0,
                                          ngx_cycle->log);
    }

    ngx_free(sh);
}


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
