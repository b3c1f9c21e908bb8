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
 * is a line appended to STATE_DIR/lockouts-ZONE.journal; at start the
 * master replays it (locks still in force) and compacts it.  Failure
 * counts below the threshold last a minute and are not kept.
 */


#include <yajl/yajl_parse.h>

#include "ngx_http_linguamate_module.h"
#include "ngx_http_linguamate_window.h"


#define NGX_HTTP_LINGUAMATE_EMAIL_MAX      254
#define NGX_HTTP_LINGUAMATE_JSON_DEPTH     8
#define NGX_HTTP_LINGUAMATE_LOCK_WINDOW    60000
#define NGX_HTTP_LINGUAMATE_LOCK_TIME      (15 * 60000)


typedef struct {
    ngx_msec_t                  window;
    ngx_msec_t                  lock;
    ngx_http_linguamate_main_conf_t  *lmcf;
    ngx_cycle_t                *cycle;
    ngx_str_t                   journal;
} ngx_http_linguamate_lockout_zone_t;


/* the value of a lockout node, followed by its window of failures */
typedef struct {
    ngx_msec_t                  locked_until;   /* 0: not locked */
    time_t                      locked_at;      /* epoch s, for operators */
} ngx_http_linguamate_lock_t;

#define NGX_HTTP_LINGUAMATE_LOCK_OFF  sizeof(ngx_http_linguamate_lock_t)


#define NGX_HTTP_LINGUAMATE_KEY_SHORT   8


typedef struct {
    ngx_uint_t                  depth;
    /* key[d]: the current key of the object at depth d; parent[d]: the
       key the container at depth d sits under (both cut to 8 bytes) */
    u_char                      key[NGX_HTTP_LINGUAMATE_JSON_DEPTH + 2]
                                   [NGX_HTTP_LINGUAMATE_KEY_SHORT];
    size_t                      key_len[NGX_HTTP_LINGUAMATE_JSON_DEPTH + 2];
    u_char                      parent[NGX_HTTP_LINGUAMATE_JSON_DEPTH + 2]
                                      [NGX_HTTP_LINGUAMATE_KEY_SHORT];
    size_t                      parent_len[NGX_HTTP_LINGUAMATE_JSON_DEPTH + 2];
    u_char                      email[2][NGX_HTTP_LINGUAMATE_EMAIL_MAX];
    size_t                      len[2];
    ngx_uint_t                  n;
    unsigned                    ambiguous:1;
} ngx_http_linguamate_email_ctx_t;


static ngx_int_t ngx_http_linguamate_lockout_handler(ngx_http_request_t *r);
static void ngx_http_linguamate_lockout_body(ngx_http_request_t *r);
static ngx_int_t ngx_http_linguamate_lockout_keys(ngx_http_request_t *r,
    ngx_http_linguamate_ctx_t *ctx);
static void ngx_http_linguamate_find_email(ngx_http_request_t *r,
    ngx_http_linguamate_email_ctx_t *ec);
static ngx_uint_t ngx_http_linguamate_email_place(
    ngx_http_linguamate_email_ctx_t *ec);
static int ngx_http_linguamate_json_map_key(void *data, const unsigned char *k,
    size_t len);
static int ngx_http_linguamate_json_string(void *data, const unsigned char *s,
    size_t len);
static int ngx_http_linguamate_json_start(void *data);
static int ngx_http_linguamate_json_end(void *data);
static int ngx_http_linguamate_json_scalar(void *data);
static int ngx_http_linguamate_json_bool(void *data, int b);
static int ngx_http_linguamate_json_number(void *data, const char *n,
    size_t len);
static ngx_msec_t ngx_http_linguamate_lockout_check(
    ngx_http_linguamate_zone_t *zone, ngx_str_t *key);
static void ngx_http_linguamate_lockout_log(ngx_http_request_t *r,
    ngx_http_linguamate_zone_t *zone, ngx_str_t *key, ngx_uint_t failures,
    ngx_msec_t lock);
static ngx_int_t ngx_http_linguamate_lockout_fresh(
    ngx_http_linguamate_zone_t *zone, ngx_log_t *log);
static ngx_int_t ngx_http_linguamate_lockout_kept(
    ngx_http_linguamate_zone_t *zone, ngx_log_t *log);
static ngx_int_t ngx_http_linguamate_lockout_path(
    ngx_http_linguamate_zone_t *zone);
static void ngx_http_linguamate_lockout_replay(
    ngx_http_linguamate_zone_t *zone, ngx_log_t *log);
static void ngx_http_linguamate_lockout_restore(
    ngx_http_linguamate_zone_t *zone, ngx_str_t *key, uint64_t until,
    time_t locked_at, ngx_log_t *log);
static ngx_uint_t ngx_http_linguamate_lockout_record(ngx_http_request_t *r,
    ngx_http_linguamate_ctx_t *ctx, ngx_uint_t status, ngx_uint_t weight);
static ngx_uint_t ngx_http_linguamate_lockout_forget(
    ngx_http_linguamate_zone_t *zone, ngx_str_t *key);
static void ngx_http_linguamate_lockout_compact(
    ngx_http_linguamate_zone_t *zone, ngx_log_t *log);
static void ngx_http_linguamate_lockout_append(
    ngx_http_linguamate_zone_t *zone, ngx_str_t *key, ngx_msec_t left,
    time_t locked_at, ngx_log_t *log);


static yajl_callbacks  ngx_http_linguamate_email_callbacks = {
    ngx_http_linguamate_json_scalar,
    ngx_http_linguamate_json_bool,
    NULL,
    NULL,
    ngx_http_linguamate_json_number,
    ngx_http_linguamate_json_string,
    ngx_http_linguamate_json_start,
    ngx_http_linguamate_json_map_key,
    ngx_http_linguamate_json_end,
    ngx_http_linguamate_json_start,
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
    lz->cycle = cf->cycle;

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
    zone->init_kept = ngx_http_linguamate_lockout_kept;

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
ngx_http_linguamate_lockout_init(ngx_conf_t *cf)
{
    return ngx_http_linguamate_add_handler(cf, NGX_HTTP_ACCESS_PHASE,
                                           ngx_http_linguamate_lockout_handler);
}


static ngx_int_t
ngx_http_linguamate_lockout_handler(ngx_http_request_t *r)
{
    u_char                          *p;
    ngx_int_t                        rc;
    ngx_str_t                        extra;
    ngx_uint_t                       i, minutes;
    ngx_msec_t                       left, l;
    ngx_http_linguamate_ctx_t       *ctx;
    ngx_http_linguamate_loc_conf_t  *llcf;
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

    ngx_http_linguamate_trpc_parse(r, ctx);

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
            return rc;
        }

        ngx_http_finalize_request(r, NGX_DONE);
        return NGX_DONE;
    }

    ctx->lockout_done = 1;
    ctx->lockout_zone = llcf->lockout;

    if (ngx_http_linguamate_lockout_keys(r, ctx) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    left = 0;

    for (i = 0; i < 3; i++) {
        if (ctx->lockout_key[i].len) {
            l = ngx_http_linguamate_lockout_check(llcf->lockout,
                                                  &ctx->lockout_key[i]);
            left = ngx_max(left, l);
        }
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
 * "ip:ADDRESS" always; "email:ACCOUNT" for each account the body names
 * (two at most; more, or two different ones, make the body ambiguous: all
 * are counted on failure, none is cleared on success)
 */

static ngx_int_t
ngx_http_linguamate_lockout_keys(ngx_http_request_t *r,
    ngx_http_linguamate_ctx_t *ctx)
{
    u_char                           *p;
    ngx_str_t                        *addr;
    ngx_uint_t                        i;
    ngx_http_linguamate_email_ctx_t  *ec;

    addr = &r->connection->addr_text;

    p = ngx_pnalloc(r->pool, sizeof("ip:") - 1 + addr->len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    ctx->lockout_key[0].data = p;
    ctx->lockout_key[0].len = ngx_sprintf(p, "ip:%V", addr) - p;

    if (!ctx->body_read) {
        return NGX_OK;
    }

    ec = ngx_pcalloc(r->pool, sizeof(ngx_http_linguamate_email_ctx_t));
    if (ec == NULL) {
        return NGX_ERROR;
    }

    ngx_http_linguamate_find_email(r, ec);

    for (i = 0; i < ec->n; i++) {
        p = ngx_pnalloc(r->pool, sizeof("email:") - 1 + ec->len[i]);
        if (p == NULL) {
            return NGX_ERROR;
        }

        ctx->lockout_key[1 + i].data = p;
        p = ngx_cpymem(p, "email:", sizeof("email:") - 1);
        ngx_strlow(p, ec->email[i], ec->len[i]);
        ctx->lockout_key[1 + i].len = sizeof("email:") - 1 + ec->len[i];
    }

    ctx->lockout_ambiguous = (ec->ambiguous || ec->n > 1);

    return NGX_OK;
}


/*
 * The "email" strings of a JSON body held in memory, only where a login
 * names its account: {"email":..}, tRPC's {"json":{"email":..}} and its
 * batches {"0":{"json":{"email":..}}}, so that an email hidden elsewhere in
 * a body cannot stand in for the account.  No body, a body on disk, not
 * JSON, nested too deep: no account, the client address alone.
 */

static void
ngx_http_linguamate_find_email(ngx_http_request_t *r,
    ngx_http_linguamate_email_ctx_t *ec)
{
    ngx_buf_t    *b;
    yajl_handle   h;
    ngx_chain_t  *cl;
    yajl_status   st;

    if (r->request_body == NULL || r->request_body->bufs == NULL
        || r->request_body->temp_file)
    {
        return;
    }

    h = yajl_alloc(&ngx_http_linguamate_email_callbacks, NULL, ec);
    if (h == NULL) {
        return;
    }

    st = yajl_status_ok;

    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        b = cl->buf;

        if (b->in_file || ngx_buf_special(b)) {
            continue;
        }

        st = yajl_parse(h, b->pos, b->last - b->pos);

        if (st != yajl_status_ok) {
            break;
        }
    }

    if (st == yajl_status_ok) {
        st = yajl_complete_parse(h);
    }

    yajl_free(h);

    if (st != yajl_status_ok) {
        /* not JSON, or too deep: what was seen is not to be trusted */
        ec->n = 0;
    }
}


static ngx_uint_t
ngx_http_linguamate_email_place(ngx_http_linguamate_email_ctx_t *ec)
{
    size_t      i;
    ngx_uint_t  d;

    d = ec->depth;

    if (ec->key_len[d] != 5 || ngx_strncmp(ec->key[d], "email", 5) != 0) {
        return 0;
    }

    if (d == 1) {
        return 1;
    }

    if (ec->parent_len[d] != 4 || ngx_strncmp(ec->parent[d], "json", 4) != 0)
    {
        return 0;
    }

    if (d == 2) {
        return 1;
    }

    /* only 8 bytes of a key are kept: a longer one is no batch index */

    if (d != 3 || ec->parent_len[2] == 0
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


static int
ngx_http_linguamate_json_map_key(void *data, const unsigned char *k,
    size_t len)
{
    ngx_http_linguamate_email_ctx_t *ec = data;

    ec->key_len[ec->depth] = len;
    ngx_memcpy(ec->key[ec->depth], k,
               ngx_min(len, NGX_HTTP_LINGUAMATE_KEY_SHORT));

    return 1;
}


static int
ngx_http_linguamate_json_string(void *data, const unsigned char *s,
    size_t len)
{
    ngx_http_linguamate_email_ctx_t *ec = data;

    ngx_uint_t  i;

    if (!ngx_http_linguamate_email_place(ec)) {
        return 1;
    }

    if (len == 0 || len > NGX_HTTP_LINGUAMATE_EMAIL_MAX) {
        ec->ambiguous = 1;
        return 1;
    }

    for (i = 0; i < ec->n; i++) {
        if (ec->len[i] == len && ngx_strncasecmp(ec->email[i], (u_char *) s,
                                                 len) == 0)
        {
            return 1;
        }
    }

    if (ec->n == 2) {
        ec->ambiguous = 1;
        return 1;
    }

    ngx_memcpy(ec->email[ec->n], s, len);
    ec->len[ec->n] = len;
    ec->n++;

    return 1;
}


static int
ngx_http_linguamate_json_start(void *data)
{
    ngx_http_linguamate_email_ctx_t *ec = data;

    ngx_uint_t  d;

    d = ec->depth;

    /* deeper than any login body: give up rather than parse on */

    if (d + 1 > NGX_HTTP_LINGUAMATE_JSON_DEPTH) {
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

    if (ec->depth) {
        ec->depth--;
    }

    return 1;
}


static int
ngx_http_linguamate_json_scalar(void *data)
{
    return 1;
}


static int
ngx_http_linguamate_json_bool(void *data, int b)
{
    return 1;
}


static int
ngx_http_linguamate_json_number(void *data, const char *n, size_t len)
{
    return 1;
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

    for (i = 0; i < 3; i++) {

        if (ctx->lockout_key[i].len == 0) {
            continue;
        }

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
                    || (i == 0 && ctx->lockout_key[1].len == 0)))
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
            ngx_http_linguamate_lockout_log(r, zone, &ctx->lockout_key[i],
                                            failures, locked);
            ngx_http_linguamate_lockout_append(zone, &ctx->lockout_key[i],
                                               locked, ngx_time(),
                                               r->connection->log);
        }

        count = (count >= limit) ? 0 : limit - count;
        remaining = ngx_min(remaining, count);
    }

    return remaining;
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


static ngx_int_t
ngx_http_linguamate_lockout_path(ngx_http_linguamate_zone_t *zone)
{
    ngx_http_linguamate_lockout_zone_t  *lz;

    lz = zone->data;

    lz->journal.len = lz->lmcf->state_dir.len + zone->name.len
                      + sizeof("/lockouts-.journal") - 1;
    lz->journal.data = ngx_pnalloc(lz->cycle->pool, lz->journal.len + 1);
    if (lz->journal.data == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf(lz->journal.data, "%V/lockouts-%V.journal%Z",
                &lz->lmcf->state_dir, &zone->name);

    return NGX_OK;
}


/* at start: the locks still in force come back, then the journal shrinks */

static ngx_int_t
ngx_http_linguamate_lockout_fresh(ngx_http_linguamate_zone_t *zone,
    ngx_log_t *log)
{
    if (ngx_http_linguamate_lockout_path(zone) != NGX_OK) {
        return NGX_ERROR;
    }

    ngx_http_linguamate_lockout_replay(zone, log);
    ngx_http_linguamate_lockout_compact(zone, log);

    return NGX_OK;
}


static ngx_int_t
ngx_http_linguamate_lockout_kept(ngx_http_linguamate_zone_t *zone,
    ngx_log_t *log)
{
    return ngx_http_linguamate_lockout_path(zone);
}


/*
 * A line: "L UNTIL LOCKED_AT KEY\n" (a lock until UNTIL, epoch ms) or
 * "U 0 0 KEY\n" (an unlock); KEY is %-escaped.  A line is one write() in
 * append mode, so workers never interleave.
 */

static void
ngx_http_linguamate_lockout_append(ngx_http_linguamate_zone_t *zone,
    ngx_str_t *key, ngx_msec_t left, time_t locked_at, ngx_log_t *log)
{
    u_char                              *p;
    u_char                               line[64 + 3 * 320];
    uint64_t                             until;
    ngx_fd_t                             fd;
    ngx_time_t                          *tp;
    ngx_file_info_t                      fi;
    ngx_http_linguamate_lockout_zone_t  *lz;

    lz = zone->data;

    if (lz->journal.data == NULL || key->len > 320) {
        return;
    }

    tp = ngx_timeofday();
    until = left ? (uint64_t) tp->sec * 1000 + tp->msec + left : 0;

    p = ngx_sprintf(line, "%c %uL %T ", left ? 'L' : 'U', until,
                    left ? locked_at : 0);
    p = (u_char *) ngx_escape_uri(p, key->data, key->len,
                                  NGX_ESCAPE_URI_COMPONENT);
    *p++ = '\n';

    fd = ngx_open_file(lz->journal.data, NGX_FILE_APPEND,
                       NGX_FILE_CREATE_OR_OPEN, 0600);

    if (fd == NGX_INVALID_FILE) {
        ngx_log_error(NGX_LOG_ERR, log, ngx_errno,
                      "linguamate: cannot append to \"%V\": the lock will "
                      "not survive a restart", &lz->journal);
        return;
    }

    /* the journal is compacted at start; past 48 MB it stops growing */

    if (ngx_fd_info(fd, &fi) != NGX_FILE_ERROR
        && ngx_file_size(&fi) > 48 * 1024 * 1024)
    {
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "linguamate: \"%V\" is full until the next start: the "
                      "lock will not survive a restart", &lz->journal);

    } else if (ngx_write_fd(fd, line, p - line) != p - line) {
        ngx_log_error(NGX_LOG_ERR, log, ngx_errno,
                      "linguamate: cannot append to \"%V\"", &lz->journal);
    }

    (void) ngx_close_file(fd);
}


static void
ngx_http_linguamate_lockout_replay(ngx_http_linguamate_zone_t *zone,
    ngx_log_t *log)
{
    u_char                              *buf, *line, *eol, *p, *dst, *src;
    u_char                               kbuf[3 * 320];
    off_t                                size;
    ssize_t                              n;
    uint64_t                             until;
    ngx_fd_t                             fd;
    ngx_str_t                            key, f[4];
    ngx_uint_t                           i, restored;
    ngx_file_info_t                      fi;
    ngx_http_linguamate_lockout_zone_t  *lz;

    lz = zone->data;

    fd = ngx_open_file(lz->journal.data, NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);

    if (fd == NGX_INVALID_FILE) {
        if (ngx_errno != NGX_ENOENT) {
            ngx_log_error(NGX_LOG_ERR, log, ngx_errno,
                          "linguamate: cannot read \"%V\": locks are not "
                          "restored", &lz->journal);
        }

        return;
    }

    if (ngx_fd_info(fd, &fi) == NGX_FILE_ERROR
        || (size = ngx_file_size(&fi)) > 64 * 1024 * 1024)
    {
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "linguamate: \"%V\" is unreadable or too large: locks "
                      "are not restored", &lz->journal);
        (void) ngx_close_file(fd);
        return;
    }

    buf = ngx_alloc((size_t) size + 1, log);
    if (buf == NULL) {
        (void) ngx_close_file(fd);
        return;
    }

    n = ngx_read_fd(fd, buf, (size_t) size);
    (void) ngx_close_file(fd);

    if (n < 0) {
        ngx_free(buf);
        return;
    }

    restored = 0;

    for (line = buf; line < buf + n; line = eol + 1) {
        eol = ngx_strlchr(line, buf + n, '\n');
        if (eol == NULL) {
            break;                      /* a line cut short */
        }

        /* four fields separated by single spaces */

        p = line;

        for (i = 0; i < 4; i++) {
            f[i].data = p;
            p = (i < 3) ? ngx_strlchr(p, eol, ' ') : eol;
            if (p == NULL) {
                break;
            }

            f[i].len = p - f[i].data;
            p++;
        }

        /* a key is at most 320 bytes, 960 characters escaped */

        if (i < 4 || f[0].len != 1 || f[3].len == 0
            || f[3].len > sizeof(kbuf))
        {
            continue;
        }

        /* unescaping never lengthens: 960 characters fit in kbuf's 960 */

        dst = kbuf;
        src = f[3].data;
        ngx_unescape_uri(&dst, &src, f[3].len, 0);
        key.data = kbuf;
        key.len = dst - kbuf;

        if (key.len > 320) {
            continue;
        }

        if (f[0].data[0] == 'U') {
            (void) ngx_http_linguamate_lockout_forget(zone, &key);
            continue;
        }

        if (f[0].data[0] != 'L' || f[1].len == 0 || f[1].len > 19) {
            continue;
        }

        until = 0;

        for (i = 0; i < f[1].len; i++) {
            if (f[1].data[i] < '0' || f[1].data[i] > '9') {
                break;
            }

            until = until * 10 + (f[1].data[i] - '0');
        }

        if (i < f[1].len) {
            continue;
        }

        ngx_http_linguamate_lockout_restore(zone, &key, until,
                                            ngx_atotm(f[2].data, f[2].len),
                                            log);
        restored++;
    }

    ngx_free(buf);

    if (restored) {
        ngx_log_error(NGX_LOG_NOTICE, log, 0,
                      "linguamate: zone \"%V\": locks restored from \"%V\"",
                      &zone->name, &lz->journal);
    }
}



/* a lock read back at start, for what is left of it */

static void
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
        return;
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
}


/*
 * Rewrite the journal with the locks in force (a temporary file renamed
 * over it, owned by the workers' user, who append to it); none: removed.
 */

static void
ngx_http_linguamate_lockout_compact(ngx_http_linguamate_zone_t *zone,
    ngx_log_t *log)
{
    u_char                              *buf, *p, *end;
    u_char                               tmp[NGX_MAX_PATH];
    size_t                               size;
    uint64_t                             until;
    ngx_fd_t                             fd;
    ngx_str_t                            key;
    ngx_uint_t                           n, failed;
    ngx_time_t                          *tp;
    ngx_queue_t                         *q;
    ngx_core_conf_t                     *ccf;
    ngx_http_linguamate_lock_t          *lock;
    ngx_http_linguamate_node_t          *node;
    ngx_http_linguamate_lockout_zone_t  *lz;

    lz = zone->data;

    if (lz->journal.len + sizeof(".tmp") > NGX_MAX_PATH) {
        return;
    }

    ngx_sprintf(tmp, "%V.tmp%Z", &lz->journal);

    size = 64 * 1024;
    buf = ngx_alloc(size, log);
    if (buf == NULL) {
        return;
    }

    fd = NGX_INVALID_FILE;
    failed = 0;
    n = 0;
    p = buf;
    end = buf + size;
    tp = ngx_timeofday();

    ngx_shmtx_lock(&zone->shpool->mutex);

    for (q = ngx_queue_head(&zone->sh->queue);
         q != ngx_queue_sentinel(&zone->sh->queue) && !failed;
         q = ngx_queue_next(q))
    {
        node = ngx_queue_data(q, ngx_http_linguamate_node_t, queue);
        lock = ngx_http_linguamate_node_value(node);

        if (lock->locked_until == 0
            || (ngx_msec_int_t) (lock->locked_until - ngx_current_msec) <= 0)
        {
            continue;
        }

        if (fd == NGX_INVALID_FILE) {
            fd = ngx_open_file(tmp, NGX_FILE_WRONLY, NGX_FILE_TRUNCATE, 0600);
            if (fd == NGX_INVALID_FILE) {
                failed = 1;
                break;
            }
        }

        if (end - p < 64 + 3 * 320) {
            if (ngx_write_fd(fd, buf, p - buf) != p - buf) {
                failed = 1;
                break;
            }

            p = buf;
        }

        key.data = ngx_http_linguamate_node_key(node);
        key.len = node->len;

        if (key.len > 320) {
            /* never written by a worker either: not kept */
            continue;
        }

        until = (uint64_t) tp->sec * 1000 + tp->msec
                + (lock->locked_until - ngx_current_msec);

        p = ngx_sprintf(p, "L %uL %T ", until, lock->locked_at);
        p = (u_char *) ngx_escape_uri(p, key.data, key.len,
                                      NGX_ESCAPE_URI_COMPONENT);
        *p++ = '\n';
        n++;
    }

    ngx_shmtx_unlock(&zone->shpool->mutex);

    if (!failed && fd != NGX_INVALID_FILE
        && (ngx_write_fd(fd, buf, p - buf) != p - buf || fsync(fd) == -1))
    {
        failed = 1;
    }

    ngx_free(buf);

    if (failed) {
        ngx_log_error(NGX_LOG_ERR, log, ngx_errno,
                      "linguamate: cannot write \"%s\": locks will not "
                      "survive a restart", tmp);
        if (fd != NGX_INVALID_FILE) {
            (void) ngx_close_file(fd);
            (void) ngx_delete_file(tmp);
        }
        return;
    }

    if (n == 0) {
        if (ngx_delete_file(lz->journal.data) == NGX_FILE_ERROR
            && ngx_errno != NGX_ENOENT)
        {
            ngx_log_error(NGX_LOG_ERR, log, ngx_errno,
                          "linguamate: cannot remove \"%V\"", &lz->journal);
        }
        return;
    }

    /* the workers append to it */

    ccf = (ngx_core_conf_t *) ngx_get_conf(lz->cycle->conf_ctx,
                                           ngx_core_module);

    if (geteuid() == 0 && ccf && ccf->user != (ngx_uid_t) NGX_CONF_UNSET_UINT
        && fchown(fd, ccf->user, ccf->group) == -1)
    {
        ngx_log_error(NGX_LOG_WARN, log, ngx_errno,
                      "linguamate: cannot chown \"%s\"", tmp);
    }

    (void) ngx_close_file(fd);

    if (ngx_rename_file(tmp, lz->journal.data) == NGX_FILE_ERROR) {
        ngx_log_error(NGX_LOG_ERR, log, ngx_errno,
                      "linguamate: cannot rename \"%s\" to \"%V\"", tmp,
                      &lz->journal);
        (void) ngx_delete_file(tmp);
    }
}
