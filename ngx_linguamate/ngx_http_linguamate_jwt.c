/*
 * Copyright (C) ngx_linguamate developers
 *
 * JWT authentication (ACCESS phase): HS256 only, pinned, verified in one
 * pass over the token's bytes, with no library parse tree and no malloc:
 *
 *   - the three segments are checked as they are decoded, by the module's
 *     own base64url decoder, into the request's pool;
 *   - the header and the claims are each read once by the module's own
 *     strict JSON reader (ngx_http_linguamate_jparse()) into a fixed
 *     struct: what the yajl parse and the strict check before it took and
 *     refused, fuzz/fuzz_jread.c holds it to on the same bytes;
 *   - the signature is checked once, with the classic precomputed HMAC:
 *     SHA-256 states with the key's inner and outer pads absorbed, made at
 *     worker start for JWT_SECRET and JWT_SECRET_PREVIOUS and copied per
 *     token (no EVP dispatch, no allocation), compared with CRYPTO_memcmp.
 *
 * The checks are those libjwt and jansson made before (see docs/auth.md):
 * what jansson refused is refused here too (strict UTF-8, no \u0000 or
 * lone surrogate, numbers out of range), and where two members have the
 * same name the last one counts, as in jansson and JSON.parse.  exp is
 * required, nbf and iat are honoured, JWT_LEEWAY_SECONDS absorbs clock
 * skew, and a revoked session, user or "everything before" is refused.
 * libjwt still issues the tokens of POST /api/auth/refresh.
 */


/*
 * SHA256_Init() and friends are deprecated in OpenSSL 3 but kept: an
 * EVP_MD_CTX copy allocates a provider context per token, these copy a
 * struct
 */
#define OPENSSL_SUPPRESS_DEPRECATED

#include <jwt.h>
#include <sys/random.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <yajl/yajl_tree.h>

#include "ngx_http_linguamate_module.h"
#include "ngx_http_linguamate_json.h"
#include "ngx_http_linguamate_log.h"
#include "ngx_http_linguamate_session.h"
#include "ngx_http_linguamate_auth.h"
#include "ngx_http_linguamate_metrics.h"
#include "ngx_http_linguamate_flags.h"
#include "ngx_http_linguamate_token_parse.h"


/* a verified token of the worker's cache */
typedef struct {
    u_char                     *mem;        /* the token, then the claims */
    size_t                      cap;        /* of mem */
    ngx_str_t                   token;
    ngx_http_linguamate_claims_t  claims;   /* strings in mem */
    size_t                      size;       /* of the claims' strings */
    ngx_uint_t                  generation; /* of the session zone */
    unsigned                    checked:1;
    unsigned                    revoked:1;
} ngx_http_linguamate_jwt_entry_t;


#define NGX_HTTP_LINGUAMATE_JWT_WAYS  8


/*
 * A set's hashes and times of use, in one cache line: a token looked up
 * and not found (each of 20,000 tokens in rotation) reads this line only
 */
typedef struct {
    uint32_t                    hash[NGX_HTTP_LINGUAMATE_JWT_WAYS];
    uint32_t                    used[NGX_HTTP_LINGUAMATE_JWT_WAYS];
                                            /* the clock at use; 0: free */
} ngx_http_linguamate_jwt_tags_t;

/* the longest base64url header segment remembered as verified */
#define NGX_HTTP_LINGUAMATE_JWT_HEADER  128


/* this worker's keyed MACs and cache of verified tokens */
typedef struct {
    void                       *conf;       /* the secrets' configuration */
    SHA256_CTX                  ipad[2];    /* JWT_SECRET, _PREVIOUS */
    SHA256_CTX                  opad[2];
    ngx_uint_t                  keyed[2];
    ngx_http_linguamate_jwt_entry_t  *cache;
    ngx_http_linguamate_jwt_tags_t   *tags;    /* one per set */
    ngx_uint_t                  sets;
    uint32_t                    clock;
    size_t                      header_len; /* 0: none yet */
    u_char                      header[NGX_HTTP_LINGUAMATE_JWT_HEADER];
} ngx_http_linguamate_jwt_worker_t;


static ngx_http_linguamate_jwt_worker_t  ngx_http_linguamate_jwt_worker;


static ngx_str_t  ngx_http_linguamate_www_authenticate =
    ngx_string("WWW-Authenticate");


/* by reason: the contract's name, and the envelope's message */

#define NGX_HTTP_LINGUAMATE_REASON_NAME(id, name, message)                   \
    [NGX_HTTP_LINGUAMATE_AUTH_##id] = ngx_string(name),
#define NGX_HTTP_LINGUAMATE_REASON_MESSAGE(id, name, message)                \
    [NGX_HTTP_LINGUAMATE_AUTH_##id] = (message),

static ngx_str_t  ngx_http_linguamate_reasons[] = {
    [NGX_HTTP_LINGUAMATE_AUTH_OK] = ngx_string("NONE"),
    NGX_HTTP_LINGUAMATE_AUTH_REASONS(NGX_HTTP_LINGUAMATE_REASON_NAME)
};

static const char  *ngx_http_linguamate_reason_messages[] = {
    [NGX_HTTP_LINGUAMATE_AUTH_OK] = "",
    NGX_HTTP_LINGUAMATE_AUTH_REASONS(NGX_HTTP_LINGUAMATE_REASON_MESSAGE)
};



static ngx_uint_t ngx_http_linguamate_auth_token(ngx_http_request_t *r,
    ngx_http_linguamate_ctx_t *ctx);
static ngx_int_t ngx_http_linguamate_auth_required(ngx_http_request_t *r,
    ngx_http_linguamate_ctx_t **ctxp);
static uint32_t ngx_http_linguamate_jwt_hash(ngx_str_t *token);
static uint32_t ngx_http_linguamate_jwt_tick(
    ngx_http_linguamate_jwt_worker_t *w);
static ngx_http_linguamate_jwt_entry_t *ngx_http_linguamate_jwt_cached(
    ngx_str_t *token, uint32_t hash);
static ngx_http_linguamate_jwt_entry_t *ngx_http_linguamate_jwt_remember(
    ngx_str_t *token, uint32_t hash, ngx_http_linguamate_claims_t *c,
    ngx_log_t *log);
static size_t ngx_http_linguamate_claims_copy(u_char *dst,
    ngx_http_linguamate_claims_t *from, ngx_http_linguamate_claims_t *to);
static ngx_int_t ngx_http_linguamate_hmac_ok(ngx_uint_t key, u_char *data,
    size_t len, u_char *sig);
static ngx_int_t ngx_http_linguamate_bearer(ngx_http_request_t *r,
    ngx_str_t *token);
static void ngx_http_linguamate_auth_log(ngx_http_request_t *r,
    ngx_uint_t reason, ngx_uint_t level);
static void ngx_http_linguamate_auth_debug(ngx_http_request_t *r,
    ngx_http_linguamate_main_conf_t *lmcf, ngx_http_linguamate_ctx_t *ctx);
static ngx_int_t ngx_http_linguamate_claim_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static void ngx_http_linguamate_refresh_body(ngx_http_request_t *r);
static ngx_int_t ngx_http_linguamate_refresh(ngx_http_request_t *r);
static ngx_int_t ngx_http_linguamate_refresh_token(ngx_pool_t *pool,
    u_char *body, size_t len, ngx_str_t *token, const char **field,
    const char **message);
static char *ngx_http_linguamate_refresh_claims(ngx_http_request_t *r,
    ngx_http_linguamate_main_conf_t *lmcf, ngx_str_t *token);
static char *ngx_http_linguamate_sign(ngx_http_request_t *r,
    ngx_http_linguamate_main_conf_t *lmcf, const char *claims,
    const char *type, time_t lifetime, ngx_str_t *jti, ngx_str_t *out);




/* at worker start: the keyed MAC contexts of the secrets */

ngx_int_t
ngx_http_linguamate_jwt_init_process(ngx_cycle_t *cycle)
{
    ngx_http_linguamate_main_conf_t  *lmcf;

    lmcf = ngx_http_cycle_get_module_main_conf(cycle,
                                               ngx_http_linguamate_module);

    /*
     * a failure is logged (alert) and tried again at the first token,
     * which is refused meanwhile: the worker keeps serving the rest
     */

    if (lmcf && lmcf->jwt_secret.len) {
        (void) ngx_http_linguamate_jwt_keys(lmcf, cycle->log);
    }

    return NGX_OK;
}


void
ngx_http_linguamate_jwt_exit_process(void)
{
    ngx_uint_t                         i;
    ngx_http_linguamate_jwt_worker_t  *w;

    w = &ngx_http_linguamate_jwt_worker;

    ngx_explicit_memzero(w->ipad, sizeof(w->ipad));
    ngx_explicit_memzero(w->opad, sizeof(w->opad));
    w->keyed[0] = 0;
    w->keyed[1] = 0;

    for (i = 0; w->cache && i < w->sets * NGX_HTTP_LINGUAMATE_JWT_WAYS; i++)
    {
        ngx_free(w->cache[i].mem);
    }

    ngx_free(w->cache);
    ngx_free(w->tags);
    w->cache = NULL;
    w->tags = NULL;
    w->sets = 0;
    w->header_len = 0;

    w->conf = NULL;
}


/*
 * The HMAC-SHA256 pad states of the secrets of lmcf: made once per worker
 * (at its start, or on first use), copied per token, which costs neither
 * an algorithm fetch nor an allocation.  The cache of verified
 * tokens (linguamate_jwt_cache entries) is allocated with them.
 */

ngx_int_t
ngx_http_linguamate_jwt_keys(ngx_http_linguamate_main_conf_t *lmcf,
    ngx_log_t *log)
{
    u_char                             pad[SHA256_CBLOCK];
    ngx_uint_t                         i, j;
    ngx_str_t                         *secret;
    ngx_http_linguamate_jwt_worker_t  *w;

    w = &ngx_http_linguamate_jwt_worker;

    if (w->conf == lmcf) {
        return NGX_OK;
    }

    ngx_http_linguamate_jwt_exit_process();

    for (i = 0; i < 2; i++) {
        secret = i ? &lmcf->jwt_secret_previous : &lmcf->jwt_secret;

        if (secret->len == 0) {
            continue;
        }

        /* RFC 2104: a key longer than a block is hashed first */

        ngx_memzero(pad, sizeof(pad));

        if (secret->len > SHA256_CBLOCK) {
            if (SHA256(secret->data, secret->len, pad) == NULL) {
                goto failed;
            }

        } else {
            ngx_memcpy(pad, secret->data, secret->len);
        }

        for (j = 0; j < SHA256_CBLOCK; j++) {
            pad[j] ^= 0x36;
        }

        if (!SHA256_Init(&w->ipad[i])
            || !SHA256_Update(&w->ipad[i], pad, SHA256_CBLOCK))
        {
            goto failed;
        }

        for (j = 0; j < SHA256_CBLOCK; j++) {
            pad[j] ^= 0x36 ^ 0x5c;
        }

        if (!SHA256_Init(&w->opad[i])
            || !SHA256_Update(&w->opad[i], pad, SHA256_CBLOCK))
        {
            goto failed;
        }

        w->keyed[i] = 1;
    }

    ngx_explicit_memzero(pad, sizeof(pad));

    if (lmcf->jwt_cache > 0) {
        w->cache = ngx_calloc(lmcf->jwt_cache
                              * sizeof(ngx_http_linguamate_jwt_entry_t), log);
        if (w->cache == NULL) {
            goto failed;
        }

        w->sets = lmcf->jwt_cache / NGX_HTTP_LINGUAMATE_JWT_WAYS;

        w->tags = ngx_memalign(64, ngx_max(w->sets, 1)
                                   * sizeof(ngx_http_linguamate_jwt_tags_t),
                               log);
        if (w->tags == NULL) {
            goto failed;
        }

        ngx_memzero(w->tags, ngx_max(w->sets, 1)
                             * sizeof(ngx_http_linguamate_jwt_tags_t));
    }

    w->conf = lmcf;

    return NGX_OK;

failed:

    ngx_explicit_memzero(pad, sizeof(pad));

    ngx_log_error(NGX_LOG_ALERT, log, 0,
                  "linguamate: cannot make the HMAC-SHA256 contexts of the "
                  "JWT secrets");

    ngx_http_linguamate_jwt_exit_process();

    return NGX_ERROR;
}


ngx_int_t
ngx_http_linguamate_jwt_variables(ngx_conf_t *cf)
{
    ngx_str_t             name;
    ngx_http_variable_t  *var;

    ngx_str_set(&name, "linguamate_jwt_claim_");

    var = ngx_http_add_variable(cf, &name, NGX_HTTP_VAR_NOCACHEABLE
                                           |NGX_HTTP_VAR_PREFIX);
    if (var == NULL) {
        return NGX_ERROR;
    }

    var->get_handler = ngx_http_linguamate_claim_variable;

    return NGX_OK;
}


/* the bearer token of the request: NGX_DECLINED none, NGX_ERROR not one */

static ngx_int_t
ngx_http_linguamate_bearer(ngx_http_request_t *r, ngx_str_t *token)
{
    ngx_table_elt_t  *h;

    h = r->headers_in.authorization;

    if (h == NULL) {
        return NGX_DECLINED;
    }

    if (h->value.len < 7
        || ngx_strncasecmp(h->value.data, (u_char *) "Bearer ", 7) != 0)
    {
        return NGX_ERROR;
    }

    token->data = h->value.data + 7;
    token->len = h->value.len - 7;

    while (token->len && token->data[0] == ' ') {
        token->data++;
        token->len--;
    }

    while (token->len && token->data[token->len - 1] == ' ') {
        token->len--;
    }

    return token->len ? NGX_OK : NGX_ERROR;
}


/*
 * Verify token (wanting "type"); on success *claims points into the
 * request's pool.  Returns the reason, NGX_HTTP_LINGUAMATE_AUTH_OK when
 * valid.
 */

ngx_uint_t
ngx_http_linguamate_jwt_verify(ngx_http_request_t *r, ngx_str_t *token,
    const char *type, ngx_http_linguamate_claims_t *claims)
{
    u_char                           *p;
    time_t                            now, leeway;
    int64_t                           issued;
    uint32_t                          hash;
    ngx_uint_t                        reason, strict, gen;
    ngx_http_linguamate_jwt_entry_t  *e;
    ngx_http_linguamate_main_conf_t  *lmcf;

    lmcf = ngx_http_get_module_main_conf(r, ngx_http_linguamate_module);

    if (token->len > NGX_HTTP_LINGUAMATE_JWT_MAX
        || ngx_http_linguamate_jwt_keys(lmcf, r->connection->log) != NGX_OK)
    {
        return NGX_HTTP_LINGUAMATE_AUTH_MALFORMED;
    }

    /*
     * a token verified before: its claims, copied to the request's pool
     * (the entry may be replaced meanwhile); else the whole check
     */

    hash = ngx_http_linguamate_jwt_hash(token);
    e = ngx_http_linguamate_jwt_cached(token, hash);

    if (e) {
        p = ngx_pnalloc(r->pool, e->size);
        if (p == NULL) {
            return NGX_HTTP_LINGUAMATE_AUTH_MALFORMED;
        }

        (void) ngx_http_linguamate_claims_copy(p, &e->claims, claims);

    } else {
        reason = ngx_http_linguamate_jwt_check(r, lmcf, token, claims);

        if (reason != NGX_HTTP_LINGUAMATE_AUTH_OK) {
            return reason;
        }

        e = ngx_http_linguamate_jwt_remember(token, hash, claims,
                                             r->connection->log);
    }

    /* the time checks, every time: a cached token expires too */

    now = ngx_time();
    strict = ngx_http_linguamate_flag(lmcf, NGX_HTTP_LINGUAMATE_F_STRICT);
    leeway = strict ? 0 : (time_t) lmcf->jwt_leeway;

    if (now >= claims->exp + leeway) {
        return NGX_HTTP_LINGUAMATE_AUTH_EXPIRED;
    }

    if ((claims->has_nbf && now + leeway < claims->nbf)
        || (claims->has_iat && now + leeway < claims->iat))
    {
        return NGX_HTTP_LINGUAMATE_AUTH_NOT_YET_VALID;
    }

    if (claims->type.len != ngx_strlen(type)
        || ngx_strncmp(claims->type.data, type, claims->type.len) != 0)
    {
        return NGX_HTTP_LINGUAMATE_AUTH_WRONG_TYPE;
    }

    /*
     * strict mode: an access token older than
     * SECURITY_STRICT_MAX_TOKEN_AGE, or of no known age, has expired
     */

    if (strict && type[0] == 'a'
        && lmcf->strict_max_token_age.seconds > 0
        && (!claims->has_iat
            || now - claims->iat > lmcf->strict_max_token_age.seconds))
    {
        return NGX_HTTP_LINGUAMATE_AUTH_EXPIRED;
    }

    /*
     * revocations: the earliest moment the token may have been issued, to
     * the millisecond: iat_ms, else the start of the second of iat, else
     * never known (fail closed)
     */

    if (lmcf->session_zone == NULL) {
        return NGX_HTTP_LINGUAMATE_AUTH_OK;
    }

    issued = claims->has_iat_ms ? claims->iat_ms
             : claims->has_iat ? (int64_t) claims->iat * 1000 : 0;

    /* a cached answer holds while the session zone has not changed */

    gen = ngx_http_linguamate_session_generation(lmcf->session_zone);

    if (e && e->checked && e->generation == gen) {
        return e->revoked ? NGX_HTTP_LINGUAMATE_AUTH_REVOKED
                          : NGX_HTTP_LINGUAMATE_AUTH_OK;
    }

    reason = ngx_http_linguamate_session_revoked(lmcf->session_zone,
                                                 &claims->sub, &claims->sid,
                                                 issued)
             ? NGX_HTTP_LINGUAMATE_AUTH_REVOKED : NGX_HTTP_LINGUAMATE_AUTH_OK;

    if (e) {
        e->revoked = (reason == NGX_HTTP_LINGUAMATE_AUTH_REVOKED);
        e->generation = gen;
        e->checked = 1;
    }

    return reason;
}


/*
 * The cache's hash of a token: its last 8 bytes, the end of its signature,
 * which for every token the cache holds (verified, so signed with the
 * secret) is an HMAC's output no one can aim at a set without the secret;
 * a token that merely looks up is compared in full, as any other.
 */

static uint32_t
ngx_http_linguamate_jwt_hash(ngx_str_t *token)
{
    uint64_t  h;

    h = token->len;

    if (token->len >= 8) {
        ngx_memcpy(&h, token->data + token->len - 8, 8);
        h ^= token->len;
    }

    return (uint32_t) ((h * 0x9e3779b97f4a7c15ULL) >> 32);
}


/* the worker's clock of cache uses: never 0, which marks a free way */

static uint32_t
ngx_http_linguamate_jwt_tick(ngx_http_linguamate_jwt_worker_t *w)
{
    if (++w->clock == 0) {
        w->clock = 1;
    }

    return w->clock;
}


/*
 * The cache of verified tokens: sets of 8 ways, the least recently used
 * way replaced, so that one busy user's token cannot evict another's.  A
 * hit is compared in full, in constant time.
 */

static ngx_http_linguamate_jwt_entry_t *
ngx_http_linguamate_jwt_cached(ngx_str_t *token, uint32_t hash)
{
    ngx_uint_t                         i;
    ngx_http_linguamate_jwt_tags_t    *t;
    ngx_http_linguamate_jwt_entry_t   *set;
    ngx_http_linguamate_jwt_worker_t  *w;

    w = &ngx_http_linguamate_jwt_worker;

    if (w->sets == 0) {
        return NULL;
    }

    t = &w->tags[hash % w->sets];
    set = &w->cache[(hash % w->sets) * NGX_HTTP_LINGUAMATE_JWT_WAYS];

    for (i = 0; i < NGX_HTTP_LINGUAMATE_JWT_WAYS; i++) {
        if (t->used[i] && t->hash[i] == hash
            && set[i].token.len == token->len
            && CRYPTO_memcmp(set[i].token.data, token->data, token->len)
               == 0)
        {
            t->used[i] = ngx_http_linguamate_jwt_tick(w);
            return &set[i];
        }
    }

    return NULL;
}


static ngx_http_linguamate_jwt_entry_t *
ngx_http_linguamate_jwt_remember(ngx_str_t *token, uint32_t hash,
    ngx_http_linguamate_claims_t *c, ngx_log_t *log)
{
    u_char                            *p;
    size_t                             size, cap;
    ngx_uint_t                         i, k;
    ngx_http_linguamate_jwt_tags_t    *t;
    ngx_http_linguamate_jwt_entry_t   *set, *e;
    ngx_http_linguamate_jwt_worker_t  *w;

    w = &ngx_http_linguamate_jwt_worker;

    if (w->sets == 0) {
        return NULL;
    }

    t = &w->tags[hash % w->sets];
    set = &w->cache[(hash % w->sets) * NGX_HTTP_LINGUAMATE_JWT_WAYS];
    k = 0;

    for (i = 0; i < NGX_HTTP_LINGUAMATE_JWT_WAYS; i++) {
        if (t->used[i] == 0) {
            k = i;
            break;
        }

        if ((uint32_t) (w->clock - t->used[i])
            > (uint32_t) (w->clock - t->used[k]))
        {
            k = i;
        }
    }

    e = &set[k];

    size = c->sub.len + c->sid.len + c->type.len + c->jti.len
           + c->payload.len + 1;

    /* an entry's memory is reused by the next token that fits in it */

    if (e->mem == NULL || e->cap < token->len + size) {
        cap = ngx_align(token->len + size, 256);

        p = ngx_alloc(cap, log);
        if (p == NULL) {
            return NULL;
        }

        ngx_free(e->mem);

        e->mem = p;
        e->cap = cap;
    }

    p = e->mem;

    t->hash[k] = hash;
    t->used[k] = ngx_http_linguamate_jwt_tick(w);
    e->token.data = p;
    e->token.len = token->len;
    e->size = size;
    e->checked = 0;
    e->revoked = 0;

    p = ngx_cpymem(p, token->data, token->len);
    (void) ngx_http_linguamate_claims_copy(p, c, &e->claims);

    return e;
}


/* the claims "from" with their strings copied to dst, one after another */

static size_t
ngx_http_linguamate_claims_copy(u_char *dst,
    ngx_http_linguamate_claims_t *from, ngx_http_linguamate_claims_t *to)
{
    u_char      *p;
    ngx_uint_t   i;
    ngx_str_t   *s[5], *d[5];

    *to = *from;

    s[0] = &from->sub;
    s[1] = &from->sid;
    s[2] = &from->type;
    s[3] = &from->jti;
    s[4] = &from->payload;
    d[0] = &to->sub;
    d[1] = &to->sid;
    d[2] = &to->type;
    d[3] = &to->jti;
    d[4] = &to->payload;

    p = dst;

    for (i = 0; i < 5; i++) {
        d[i]->data = p;

        if (s[i]->len) {    /* an absent claim has no data at all */
            p = ngx_cpymem(p, s[i]->data, s[i]->len);
        }
    }

    *p++ = '\0';       /* the payload stays NUL-terminated */

    return p - dst;
}


/*
 * The signature, the header and the claims of a token, in the order (and
 * with the reasons) of the checks that libjwt's jwt_decode() completed:
 *
 *   1. three base64url segments, the header decodes to JSON (as
 *      yajl_tree read it: comments allowed) that is an object nesting at
 *      most 4 deep, without a NUL byte: else MALFORMED;
 *   2. its first "alg" (compared as C strings, as yajl_tree_get() and
 *      strcmp() did) is "HS256": else BAD_SIGNATURE;
 *   3. the signature is 32 bytes and the HMAC of JWT_SECRET or of
 *      JWT_SECRET_PREVIOUS: else BAD_SIGNATURE;
 *   4. what jansson refused in the header, its last "alg" not "HS256",
 *      a "typ" string other than "JWT" (any case), a "crit" (no
 *      extension is implemented: RFC 7515, 4.1.11), a signature not in
 *      canonical base64url, claims that are not a JSON object nesting at
 *      most 16 deep that jansson reads, or bad claims: MALFORMED.
 */

ngx_uint_t
ngx_http_linguamate_jwt_check(ngx_http_request_t *r,
    ngx_http_linguamate_main_conf_t *lmcf, ngx_str_t *token,
    ngx_http_linguamate_claims_t *c)
{
    u_char                         sig[33], *d0, *d1, *end, *last;
    size_t                         slen;
    ngx_int_t                      rc;
    ngx_str_t                      hdr, payload;
    ngx_uint_t                     i, known, short_payload;
    ngx_http_linguamate_jv_t       hv[NGX_HTTP_LINGUAMATE_H_N];
    ngx_http_linguamate_jv_t       cv[NGX_HTTP_LINGUAMATE_C_N];
    ngx_http_linguamate_jparse_t   jp;
    ngx_http_linguamate_jwt_worker_t  *w;

    /*
     * 1. three base64url segments separated by two dots, the header and
     * the claims not empty (the signature may be): each segment's bytes
     * are checked as it is decoded, all before anything else
     */

    if (token->len == 0 || token->len > NGX_HTTP_LINGUAMATE_JWT_MAX) {
        return NGX_HTTP_LINGUAMATE_AUTH_MALFORMED;
    }

    end = token->data + token->len;

    d0 = memchr(token->data, '.', token->len);

    if (d0 == NULL || d0 == token->data) {
        return NGX_HTTP_LINGUAMATE_AUTH_MALFORMED;
    }

    d1 = memchr(d0 + 1, '.', end - d0 - 1);

    if (d1 == NULL || d1 == d0 + 1) {
        return NGX_HTTP_LINGUAMATE_AUTH_MALFORMED;
    }

    /*
     * the signature: 43 characters are 32 bytes, another length is only
     * checked (a third dot is refused)
     */

    slen = end - d1 - 1;
    ngx_memzero(sig, sizeof(sig));

    if (ngx_http_linguamate_b64url(slen == 43 ? sig : NULL, d1 + 1, slen)
        == NGX_ERROR)
    {
        return NGX_HTTP_LINGUAMATE_AUTH_MALFORMED;
    }

    /* the claims, decoded into the request's pool, NUL-terminated */

    payload.data = ngx_pnalloc(r->pool,
                               ngx_base64_decoded_length(d1 - d0 - 1) + 1);
    if (payload.data == NULL) {
        return NGX_HTTP_LINGUAMATE_AUTH_MALFORMED;
    }

    rc = ngx_http_linguamate_b64url(payload.data, d0 + 1, d1 - d0 - 1);

    if (rc == NGX_ERROR) {
        return NGX_HTTP_LINGUAMATE_AUTH_MALFORMED;
    }

    /* a length nginx's decoder refuses: MALFORMED, once the signature held */

    short_payload = (rc == NGX_DECLINED);
    payload.len = short_payload ? 0 : (size_t) rc;
    payload.data[payload.len] = '\0';

    /*
     * a header segment byte-identical to the last one that passed every
     * header check (1, 2 and the header's part of 4) after a valid
     * signature passes them again: all of one issuer's tokens share it
     */

    w = &ngx_http_linguamate_jwt_worker;

    known = (w->header_len == (size_t) (d0 - token->data)
             && ngx_memcmp(w->header, token->data, w->header_len) == 0);

    if (known) {
        goto signature;
    }

    /* the header */

    hdr.data = ngx_pnalloc(r->pool,
                           ngx_base64_decoded_length(d0 - token->data) + 1);
    if (hdr.data == NULL) {
        return NGX_HTTP_LINGUAMATE_AUTH_MALFORMED;
    }

    rc = ngx_http_linguamate_b64url(hdr.data, token->data, d0 - token->data);

    if (rc < 0) {
        return NGX_HTTP_LINGUAMATE_AUTH_MALFORMED;
    }

    hdr.len = (size_t) rc;
    hdr.data[hdr.len] = '\0';

    if (!ngx_http_linguamate_json_depth_ok(hdr.data, hdr.len, 4)
        || ngx_strlchr(hdr.data, hdr.data + hdr.len, '\0') != NULL
        || ngx_http_linguamate_jparse(&jp, r->pool, &hdr,
                                      ngx_http_linguamate_header_names, hv,
                                      NGX_HTTP_LINGUAMATE_H_N, 4)
           != NGX_OK)
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

    /* 3. the signature: 32 bytes, compared in constant time */

    if (slen != 43) {
        return NGX_HTTP_LINGUAMATE_AUTH_BAD_SIGNATURE;
    }

    for (i = 0; i < 2; i++) {
        if (w->keyed[i]
            && ngx_http_linguamate_hmac_ok(i, token->data, d1 - token->data,
                                           sig))
        {
            break;
        }
    }

    if (i == 2) {
        return NGX_HTTP_LINGUAMATE_AUTH_BAD_SIGNATURE;
    }

    /* 4. what libjwt refused once the signature held */

    if (!known) {
        if (jp.refused || jp.lax || !ngx_http_linguamate_jwt_header_ok(hv)) {
            return NGX_HTTP_LINGUAMATE_AUTH_MALFORMED;
        }

        if (d0 - token->data <= NGX_HTTP_LINGUAMATE_JWT_HEADER) {
            w->header_len = d0 - token->data;
            ngx_memcpy(w->header, token->data, w->header_len);
        }
    }

    /* libjwt compared the signature as text: the canonical encoding */

    last = &d1[43];

    if ((*last >= 'A' && *last <= 'Z' && (*last - 'A') % 4)
        || (*last >= 'a' && *last <= 'z' && (*last - 'a' + 26) % 4)
        || (*last >= '0' && *last <= '9' && (*last - '0' + 52) % 4)
        || *last == '-' || *last == '_')
    {
        return NGX_HTTP_LINGUAMATE_AUTH_MALFORMED;
    }

    /* the claims */

    if (short_payload
        || ngx_http_linguamate_jparse(&jp, r->pool, &payload,
                                      ngx_http_linguamate_claim_names, cv,
                                      NGX_HTTP_LINGUAMATE_C_N,
                                      NGX_HTTP_LINGUAMATE_JSON_MAX_DEPTH)
           != NGX_OK
        || jp.refused)
    {
        return NGX_HTTP_LINGUAMATE_AUTH_MALFORMED;
    }

    ngx_memzero(c, sizeof(ngx_http_linguamate_claims_t));
    c->payload = payload;

    return ngx_http_linguamate_jwt_claims(cv, c);
}



/*
 * The claims that matter, as the yajl_tree reading of jansson's dump did:
 * exp an integer, nbf and iat integers when present, sub a string, sid,
 * type and jti strings or absent; iat_ms (the millisecond of issue, the
 * edge's own claim) an integer of iat's second.
 */

ngx_uint_t
ngx_http_linguamate_jwt_claims(ngx_http_linguamate_jv_t *v,
    ngx_http_linguamate_claims_t *c)
{
    ngx_uint_t                 i;
    ngx_str_t                 *s;
    ngx_http_linguamate_jv_t  *ms;

    if (v[NGX_HTTP_LINGUAMATE_C_EXP].type != NGX_HTTP_LINGUAMATE_JV_INTEGER) {
        return NGX_HTTP_LINGUAMATE_AUTH_MALFORMED;
    }

    c->exp = (time_t) v[NGX_HTTP_LINGUAMATE_C_EXP].num;

    for (i = NGX_HTTP_LINGUAMATE_C_NBF; i <= NGX_HTTP_LINGUAMATE_C_IAT_MS;
         i++)
    {
        if (v[i].type != NGX_HTTP_LINGUAMATE_JV_NONE
            && v[i].type != NGX_HTTP_LINGUAMATE_JV_INTEGER)
        {
            return NGX_HTTP_LINGUAMATE_AUTH_MALFORMED;
        }
    }

    if (v[NGX_HTTP_LINGUAMATE_C_NBF].type) {
        c->nbf = (time_t) v[NGX_HTTP_LINGUAMATE_C_NBF].num;
        c->has_nbf = 1;
    }

    if (v[NGX_HTTP_LINGUAMATE_C_IAT].type) {
        c->iat = (time_t) v[NGX_HTTP_LINGUAMATE_C_IAT].num;
        c->has_iat = 1;
    }

    ms = &v[NGX_HTTP_LINGUAMATE_C_IAT_MS];

    if (ms->type) {
        if (!c->has_iat || ms->num < 0 || ms->num / 1000 != c->iat) {
            return NGX_HTTP_LINGUAMATE_AUTH_MALFORMED;
        }

        c->iat_ms = ms->num;
        c->has_iat_ms = 1;
    }

    for (i = NGX_HTTP_LINGUAMATE_C_SUB; i <= NGX_HTTP_LINGUAMATE_C_JTI; i++) {
        if (v[i].type != NGX_HTTP_LINGUAMATE_JV_STRING) {
            continue;
        }

        s = (i == NGX_HTTP_LINGUAMATE_C_SUB) ? &c->sub
            : (i == NGX_HTTP_LINGUAMATE_C_SID) ? &c->sid
            : (i == NGX_HTTP_LINGUAMATE_C_TYPE) ? &c->type : &c->jti;

        *s = v[i].str;

        if (i != NGX_HTTP_LINGUAMATE_C_TYPE && s->len > 512) {
            return NGX_HTTP_LINGUAMATE_AUTH_MALFORMED;
        }
    }

    if (c->sub.len == 0) {
        return NGX_HTTP_LINGUAMATE_AUTH_MALFORMED;
    }

    return NGX_HTTP_LINGUAMATE_AUTH_OK;
}


static ngx_int_t
ngx_http_linguamate_hmac_ok(ngx_uint_t key, u_char *data, size_t len,
    u_char *sig)
{
    u_char                             mac[SHA256_DIGEST_LENGTH];
    ngx_int_t                          ok;
    SHA256_CTX                         c;
    ngx_http_linguamate_jwt_worker_t  *w;

    w = &ngx_http_linguamate_jwt_worker;

    /* H(K ^ opad, H(K ^ ipad, data)), from the states of the pads */

    c = w->ipad[key];
    ok = SHA256_Update(&c, data, len) && SHA256_Final(mac, &c);

    if (ok) {
        c = w->opad[key];
        ok = SHA256_Update(&c, mac, sizeof(mac)) && SHA256_Final(mac, &c);
    }

    ngx_explicit_memzero(&c, sizeof(c));

    return ok && CRYPTO_memcmp(mac, sig, 32) == 0;
}


/* the request's bearer access token, verified into ctx->claims */

static ngx_uint_t
ngx_http_linguamate_auth_token(ngx_http_request_t *r,
    ngx_http_linguamate_ctx_t *ctx)
{
    ngx_int_t   rc;
    ngx_str_t   token;
    ngx_uint_t  reason;

    rc = ngx_http_linguamate_bearer(r, &token);

    if (rc == NGX_DECLINED) {
        reason = NGX_HTTP_LINGUAMATE_AUTH_MISSING;

    } else if (rc == NGX_ERROR) {
        reason = NGX_HTTP_LINGUAMATE_AUTH_MALFORMED;

    } else {
        reason = ngx_http_linguamate_jwt_verify(r, &token, "access",
                                                &ctx->claims);
    }

    ctx->auth_done = 1;
    ctx->auth_ok = (reason == NGX_HTTP_LINGUAMATE_AUTH_OK);

    return reason;
}


/*
 * linguamate_auth on: an access token is required; optional: verified
 * when present (an invalid one is treated as absent, unless strict mode
 * is on); off: nothing.
 */

ngx_int_t
ngx_http_linguamate_auth_handler(ngx_http_request_t *r)
{
    ngx_uint_t                        reason;
    ngx_http_linguamate_ctx_t        *ctx;
    ngx_http_linguamate_loc_conf_t   *llcf;
    ngx_http_linguamate_main_conf_t  *lmcf;

    if (r != r->main) {
        return NGX_DECLINED;
    }

    llcf = ngx_http_get_module_loc_conf(r, ngx_http_linguamate_module);

    if (llcf->auth == NGX_HTTP_LINGUAMATE_AUTH_OFF) {
        return NGX_DECLINED;
    }

    ctx = ngx_http_linguamate_get_ctx(r);
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ctx->auth_done) {
        return ctx->auth_ok || llcf->auth != NGX_HTTP_LINGUAMATE_AUTH_ON
               ? NGX_DECLINED : NGX_HTTP_UNAUTHORIZED;
    }

    lmcf = ngx_http_get_module_main_conf(r, ngx_http_linguamate_module);

    reason = ngx_http_linguamate_auth_token(r, ctx);

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "linguamate auth outcome: %V (linguamate_auth %ui)",
                   &ngx_http_linguamate_reasons[reason], llcf->auth);

    if (reason == NGX_HTTP_LINGUAMATE_AUTH_OK) {
        if (ngx_http_linguamate_flag(lmcf, NGX_HTTP_LINGUAMATE_F_LOG_LEVEL)
            <= NGX_HTTP_LINGUAMATE_LOG_DEBUG)
        {
            ngx_http_linguamate_auth_debug(r, lmcf, ctx);
        }

        return NGX_DECLINED;
    }

    /*
     * strict mode: an optional token is required; on a public route a
     * token stays optional but a bad one is refused
     */

    if ((llcf->auth == NGX_HTTP_LINGUAMATE_AUTH_OPTIONAL
         || llcf->auth == NGX_HTTP_LINGUAMATE_AUTH_PUBLIC)
        && (!ngx_http_linguamate_flag(lmcf, NGX_HTTP_LINGUAMATE_F_STRICT)
            || (llcf->auth == NGX_HTTP_LINGUAMATE_AUTH_PUBLIC
                && reason == NGX_HTTP_LINGUAMATE_AUTH_MISSING)))
    {
        /* passed on as anonymous; a bad token is still worth a line */

        if (reason != NGX_HTTP_LINGUAMATE_AUTH_MISSING) {
            ngx_http_linguamate_auth_log(r, reason,
                                         NGX_HTTP_LINGUAMATE_LOG_INFO);
        }

        return NGX_DECLINED;
    }

    return ngx_http_linguamate_auth_reject(r, reason, 1);
}


/* LOG_LEVEL debug: who a verified token belongs to (never the token) */

static void
ngx_http_linguamate_auth_debug(ngx_http_request_t *r,
    ngx_http_linguamate_main_conf_t *lmcf, ngx_http_linguamate_ctx_t *ctx)
{
    u_char     buf[512], *p;
    ngx_str_t  msg, extra;
    size_t     sub, sid;

    sub = ngx_min(ctx->claims.sub.len, 64);
    sid = ngx_min(ctx->claims.sid.len, 64);

    p = ngx_cpymem(buf, ",\"cat\":\"auth\",\"userId\":\"",
                   sizeof(",\"cat\":\"auth\",\"userId\":\"") - 1);
    p = ngx_http_linguamate_json_escape(p, ctx->claims.sub.data, sub);
    p = ngx_cpymem(p, "\",\"corr\":{\"correlationId\":\"",
                   sizeof("\",\"corr\":{\"correlationId\":\"") - 1);
    p = ngx_http_linguamate_json_escape(p, ctx->corr_id.data,
                                        ngx_min(ctx->corr_id.len, 128));
    p = ngx_cpymem(p, "\",\"sessionId\":\"",
                   sizeof("\",\"sessionId\":\"") - 1);
    p = ngx_http_linguamate_json_escape(p, ctx->claims.sid.data, sid);
    p = ngx_cpymem(p, "\"}", 2);

    extra.data = buf;
    extra.len = p - buf;

    ngx_str_set(&msg, "access token verified");

    ngx_http_linguamate_log_event(lmcf, NGX_HTTP_LINGUAMATE_LOG_DEBUG,
                                  "auth_verified", &msg, &extra);
}


/*
 * 401 with the reason, WWW-Authenticate, and an auth_failed line; from a
 * phase handler ("phase") the request is finalized here
 */

ngx_int_t
ngx_http_linguamate_auth_reject(ngx_http_request_t *r, ngx_uint_t reason,
    ngx_uint_t phase)
{
    u_char     *p;
    size_t      len;
    ngx_str_t   extra, *name;

    name = &ngx_http_linguamate_reasons[reason];

    ngx_http_linguamate_auth_log(r, reason, NGX_HTTP_LINGUAMATE_LOG_WARN);

    if (reason == NGX_HTTP_LINGUAMATE_AUTH_MISSING) {
        if (ngx_http_linguamate_add_header(r, "WWW-Authenticate",
                sizeof("WWW-Authenticate") - 1,
                (u_char *) "Bearer realm=\"linguamate\"",
                sizeof("Bearer realm=\"linguamate\"") - 1)
            != NGX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

    } else {
        len = sizeof("Bearer realm=\"linguamate\", error=\"invalid_token\", "
                     "error_description=\"\"") + name->len;

        p = ngx_pnalloc(r->pool, len);
        if (p == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        if (ngx_http_linguamate_add_header(r, "WWW-Authenticate",
                sizeof("WWW-Authenticate") - 1, p,
                ngx_sprintf(p, "Bearer realm=\"linguamate\", "
                            "error=\"invalid_token\", "
                            "error_description=\"%V\"", name) - p)
            != NGX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    /* "satisfy any" drops it when another module grants access */

    r->headers_out.www_authenticate = ngx_http_linguamate_list_header(
                                  &r->headers_out.headers,
                                  &ngx_http_linguamate_www_authenticate);

    p = ngx_pnalloc(r->pool, sizeof(",\"reason\":\"\"") + name->len);
    if (p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    extra.data = p;
    extra.len = ngx_sprintf(p, ",\"reason\":\"%V\"", name) - p;

    if (phase) {
        return ngx_http_linguamate_phase_error(r, NGX_HTTP_UNAUTHORIZED,
                   "UNAUTHORIZED",
                   ngx_http_linguamate_reason_messages[reason], &extra);
    }

    return ngx_http_linguamate_send_error(r, NGX_HTTP_UNAUTHORIZED,
               "UNAUTHORIZED", ngx_http_linguamate_reason_messages[reason],
               &extra);
}


/* auth_failed: the reason, route and client; never the token */

static void
ngx_http_linguamate_auth_log(ngx_http_request_t *r, ngx_uint_t reason,
    ngx_uint_t level)
{
    u_char     *p, *last, buf[512];
    ngx_str_t   msg, extra, route;

    ngx_http_linguamate_metrics_auth_failure(r, reason);

    ngx_http_linguamate_route(r, &route);

    p = buf;
    last = buf + sizeof(buf);

    p = ngx_slprintf(p, last, ",\"cat\":\"auth\",\"reason\":\"%V\","
                     "\"route\":\"", &ngx_http_linguamate_reasons[reason]);

    if (route.len < 64) {
        p = ngx_http_linguamate_json_escape(p, route.data, route.len);
    }

    p = ngx_slprintf(p, last, "\",\"client\":\"");
    p = ngx_http_linguamate_json_escape(p, r->connection->addr_text.data,
                                        ngx_min(r->connection->addr_text.len,
                                                64));
    *p++ = '"';

    extra.data = buf;
    extra.len = p - buf;

    ngx_str_set(&msg, "Authentication failed");

    ngx_http_linguamate_log_request(r, level, "auth_failed", &msg, &extra);
}


ngx_int_t
ngx_http_linguamate_user_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_str_t                  *s;
    ngx_http_linguamate_ctx_t  *ctx;

    ctx = ngx_http_linguamate_get_ctx(r);

    if (ctx == NULL || !ctx->auth_ok) {
        v->not_found = 1;
        return NGX_OK;
    }

    s = data ? &ctx->claims.sid : &ctx->claims.sub;

    if (s->len == 0) {
        v->not_found = 1;
        return NGX_OK;
    }

    v->data = s->data;
    v->len = s->len;
    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;

    return NGX_OK;
}


/*
 * $linguamate_jwt_claim_NAME: a string, number (its text as signed) or
 * boolean member of the claims; the last one of that name, as jansson
 * and JSON.parse read it.  One read of the verified claims.
 */

static ngx_int_t
ngx_http_linguamate_claim_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_str_t *name = (ngx_str_t *) data;

    ngx_str_t                      key;
    ngx_http_linguamate_jv_t       value;
    ngx_http_linguamate_ctx_t     *ctx;
    ngx_http_linguamate_jparse_t   jp;

    v->not_found = 1;

    ctx = ngx_http_linguamate_get_ctx(r);

    if (ctx == NULL || !ctx->auth_ok) {
        return NGX_OK;
    }

    key.data = name->data + sizeof("linguamate_jwt_claim_") - 1;
    key.len = name->len - (sizeof("linguamate_jwt_claim_") - 1);

    if (key.len == 0) {
        return NGX_OK;
    }

    if (ngx_http_linguamate_jparse(&jp, r->pool, &ctx->claims.payload, &key,
                                   &value, 1,
                                   NGX_HTTP_LINGUAMATE_JSON_MAX_DEPTH)
        != NGX_OK)
    {
        return NGX_OK;
    }

    switch (value.type) {

    case NGX_HTTP_LINGUAMATE_JV_STRING:
    case NGX_HTTP_LINGUAMATE_JV_INTEGER:
    case NGX_HTTP_LINGUAMATE_JV_NUMBER:
        v->data = value.str.data;
        v->len = value.str.len;
        break;

    case NGX_HTTP_LINGUAMATE_JV_TRUE:
        ngx_str_set(v, "true");
        break;

    case NGX_HTTP_LINGUAMATE_JV_FALSE:
        ngx_str_set(v, "false");
        break;

    default:
        return NGX_OK;
    }

    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;

    return NGX_OK;
}


/*
 * For the endpoints that need the caller's access token: verified in a
 * location without "linguamate_auth on" too.  NGX_DECLINED when the
 * caller is authenticated, else the return code of the 401 sent.
 */

static ngx_int_t
ngx_http_linguamate_auth_required(ngx_http_request_t *r,
    ngx_http_linguamate_ctx_t **ctxp)
{
    ngx_uint_t                  reason;
    ngx_http_linguamate_ctx_t  *ctx;

    ctx = ngx_http_linguamate_get_ctx(r);
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    *ctxp = ctx;

    if (ctx->auth_ok) {
        return NGX_DECLINED;
    }

    reason = ngx_http_linguamate_auth_token(r, ctx);

    if (reason != NGX_HTTP_LINGUAMATE_AUTH_OK) {
        return ngx_http_linguamate_auth_reject(r, reason, 0);
    }

    return NGX_DECLINED;
}


/* GET /api/auth/session: the verified claims */

ngx_int_t
ngx_http_linguamate_auth_session(ngx_http_request_t *r)
{
    size_t                      len;
    ngx_int_t                   rc;
    ngx_buf_t                  *b;
    ngx_http_linguamate_ctx_t  *ctx;

    rc = ngx_http_linguamate_auth_required(r, &ctx);
    if (rc != NGX_DECLINED) {
        return rc;
    }

    len = sizeof("{\"authenticated\":true,\"userId\":\"\",\"sessionId\":,"
                 "\"expiresAt\":\"\",\"claims\":}\n")
          + 6 * ctx->claims.sub.len + 6 * ctx->claims.sid.len + 4
          + NGX_HTTP_LINGUAMATE_ISO_LEN + ctx->claims.payload.len;

    b = ngx_create_temp_buf(r->pool, len);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b->last = ngx_cpymem(b->last, "{\"authenticated\":true,\"userId\":\"",
                         sizeof("{\"authenticated\":true,\"userId\":\"") - 1);
    b->last = ngx_http_linguamate_json_escape(b->last, ctx->claims.sub.data,
                                              ctx->claims.sub.len);
    b->last = ngx_cpymem(b->last, "\",\"sessionId\":", 14);

    if (ctx->claims.sid.len) {
        *b->last++ = '"';
        b->last = ngx_http_linguamate_json_escape(b->last,
                                                  ctx->claims.sid.data,
                                                  ctx->claims.sid.len);
        *b->last++ = '"';

    } else {
        b->last = ngx_cpymem(b->last, "null", 4);
    }

    b->last = ngx_cpymem(b->last, ",\"expiresAt\":\"", 14);
    b->last = ngx_http_linguamate_iso_time(b->last, ctx->claims.exp, 0);
    b->last = ngx_cpymem(b->last, "\",\"claims\":", 11);
    b->last = ngx_cpymem(b->last, ctx->claims.payload.data,
                         ctx->claims.payload.len);
    b->last = ngx_cpymem(b->last, "}\n", 2);

    if (ngx_http_discard_request_body(r) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_linguamate_send_json(r, NGX_HTTP_OK, b);
}


/* POST /api/auth/logout: revoke the caller's session */

ngx_int_t
ngx_http_linguamate_auth_logout(ngx_http_request_t *r)
{
    ngx_int_t                         rc;
    ngx_buf_t                        *b;
    ngx_http_linguamate_ctx_t        *ctx;
    ngx_http_linguamate_main_conf_t  *lmcf;

    rc = ngx_http_linguamate_auth_required(r, &ctx);
    if (rc != NGX_DECLINED) {
        return rc;
    }

    lmcf = ngx_http_get_module_main_conf(r, ngx_http_linguamate_module);

    if (ctx->claims.sid.len == 0) {
        return ngx_http_linguamate_validation_error(r, "sid",
                   "the token names no session (sid) to revoke");
    }

    if (lmcf->session_zone == NULL
        || ngx_http_linguamate_session_revoke(lmcf->session_zone, r->pool,
               NGX_HTTP_LINGUAMATE_REVOKE_SESSION, &ctx->claims.sid, NULL,
               r->connection->log)
           != NGX_OK)
    {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "linguamate: logout needs a linguamate_session_zone "
                      "with room");
        return ngx_http_linguamate_send_error(r,
                   NGX_HTTP_INTERNAL_SERVER_ERROR, "INTERNAL_SERVER_ERROR",
                   "Internal server error", NULL);
    }

    b = ngx_create_temp_buf(r->pool, sizeof("{\"success\":true}\n"));
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b->last = ngx_cpymem(b->last, "{\"success\":true}\n",
                         sizeof("{\"success\":true}\n") - 1);

    if (ngx_http_discard_request_body(r) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_linguamate_send_json(r, NGX_HTTP_OK, b);
}


/* POST /api/auth/refresh {"refreshToken":...} */

ngx_int_t
ngx_http_linguamate_auth_refresh(ngx_http_request_t *r)
{
    ngx_int_t  rc;

    if (r->method != NGX_HTTP_POST) {
        return ngx_http_linguamate_send_not_allowed(r, "POST");
    }

    rc = ngx_http_read_client_request_body(r,
                                           ngx_http_linguamate_refresh_body);

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return rc;
    }

    return NGX_DONE;
}


static void
ngx_http_linguamate_refresh_body(ngx_http_request_t *r)
{
    ngx_http_finalize_request(r, ngx_http_linguamate_refresh(r));
}


/*
 * The refresh token of a refresh body (len bytes, NUL-terminated), copied
 * to the pool: NGX_OK, NGX_DECLINED with the field and the message of the
 * validation error, NGX_ERROR when out of memory.
 */

static ngx_int_t
ngx_http_linguamate_refresh_token(ngx_pool_t *pool, u_char *body,
    size_t len, ngx_str_t *token, const char **field, const char **message)
{
    size_t              i, n;
    yajl_val            root, node;
    static const char  *path[] = { "refreshToken", NULL };

    *field = "body";
    *message = "must be a JSON object";

    if (len == 0 || ngx_strlen(body) != len
        || !ngx_http_linguamate_json_depth_ok(body, len,
                                          NGX_HTTP_LINGUAMATE_JSON_MAX_DEPTH))
    {
        return NGX_DECLINED;
    }

    root = yajl_tree_parse((const char *) body, NULL, 0);

    if (root == NULL || !YAJL_IS_OBJECT(root)) {
        yajl_tree_free(root);
        return NGX_DECLINED;
    }

    /* a key given twice: JSON.parse would take the last, yajl the first */

    for (i = 0, n = 0; i < root->u.object.len; i++) {
        if (ngx_strcmp(root->u.object.keys[i], "refreshToken") == 0) {
            n++;
        }
    }

    if (n > 1) {
        yajl_tree_free(root);
        *field = "refreshToken";
        *message = "is duplicated";
        return NGX_DECLINED;
    }

    node = yajl_tree_get(root, path, yajl_t_string);

    if (node == NULL || node->u.string == NULL || node->u.string[0] == '\0')
    {
        yajl_tree_free(root);
        *field = "refreshToken";
        *message = "is required and must be a string";
        return NGX_DECLINED;
    }

    token->len = ngx_strlen(node->u.string);
    token->data = ngx_pnalloc(pool, token->len);
    if (token->data == NULL) {
        yajl_tree_free(root);
        return NGX_ERROR;
    }

    ngx_memcpy(token->data, node->u.string, token->len);
    yajl_tree_free(root);

    return NGX_OK;
}


static ngx_int_t
ngx_http_linguamate_refresh(ngx_http_request_t *r)
{
    char                             *grants;
    u_char                            rnd[16];
    ngx_int_t                         rc;
    ngx_buf_t                        *b;
    ngx_str_t                         in, token, jti, access, refresh;
    ngx_uint_t                        reason;
    const char                       *field, *message;
    ngx_http_linguamate_claims_t      claims;
    ngx_http_linguamate_main_conf_t  *lmcf;

    lmcf = ngx_http_get_module_main_conf(r, ngx_http_linguamate_module);

    rc = ngx_http_linguamate_body(r, 16384, &in);

    if (rc == NGX_DECLINED) {
        return ngx_http_linguamate_send_error(r,
                   NGX_HTTP_REQUEST_ENTITY_TOO_LARGE, "PAYLOAD_TOO_LARGE",
                   "Payload too large", NULL);
    }

    if (rc != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = ngx_http_linguamate_refresh_token(r->pool, in.data, in.len, &token,
                                           &field, &message);

    if (rc == NGX_DECLINED) {
        return ngx_http_linguamate_validation_error(r, field, message);
    }

    if (rc != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    reason = ngx_http_linguamate_jwt_verify(r, &token, "refresh", &claims);

    if (reason == NGX_HTTP_LINGUAMATE_AUTH_OK && claims.sid.len == 0) {
        reason = NGX_HTTP_LINGUAMATE_AUTH_MALFORMED;
    }

    if (reason != NGX_HTTP_LINGUAMATE_AUTH_OK) {
        return ngx_http_linguamate_auth_reject(r, reason, 0);
    }

    if (lmcf->session_zone == NULL) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "linguamate: refresh needs a linguamate_session_zone");
        return ngx_http_linguamate_send_error(r,
                   NGX_HTTP_INTERNAL_SERVER_ERROR, "INTERNAL_SERVER_ERROR",
                   "Internal server error", NULL);
    }

    /* a new refresh token id; the session remembers it */

    if (getrandom(rnd, sizeof(rnd), 0) != sizeof(rnd)) {
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, ngx_errno,
                      "linguamate: getrandom() failed");
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    jti.data = ngx_pnalloc(r->pool, 2 * sizeof(rnd));
    if (jti.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    jti.len = ngx_hex_dump(jti.data, rnd, sizeof(rnd)) - jti.data;

    rc = ngx_http_linguamate_session_rotate(lmcf->session_zone, r->pool,
                                            &claims.sid, &claims.jti, &jti,
                                            r->connection->log);

    if (rc == NGX_BUSY || rc == NGX_DECLINED) {
        if (rc == NGX_BUSY) {
            ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                          "linguamate: a refresh token was used twice; its "
                          "session is revoked");
        }

        return ngx_http_linguamate_auth_reject(r,
                                       NGX_HTTP_LINGUAMATE_AUTH_REVOKED, 0);
    }

    if (rc != NGX_OK) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "linguamate: could not record the refresh rotation "
                      "(session zone full?)");
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    grants = ngx_http_linguamate_refresh_claims(r, lmcf, &token);

    if (grants == NULL
        || ngx_http_linguamate_sign(r, lmcf, grants, "access",
                                    lmcf->jwt_expires_in.seconds, NULL,
                                    &access) != NGX_CONF_OK
        || ngx_http_linguamate_sign(r, lmcf, grants, "refresh",
                                    lmcf->jwt_refresh_expires_in.seconds,
                                    &jti, &refresh) != NGX_CONF_OK)
    {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "linguamate: could not sign the new tokens");
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b = ngx_create_temp_buf(r->pool, access.len + refresh.len + 128);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b->last = ngx_sprintf(b->last, "{\"accessToken\":\"%V\","
                          "\"refreshToken\":\"%V\",\"expiresIn\":%T}\n",
                          &access, &refresh, lmcf->jwt_expires_in.seconds);

    return ngx_http_linguamate_send_json(r, NGX_HTTP_OK, b);
}


/*
 * The claims of a verified refresh token as the new tokens carry them: read
 * by libjwt (jansson: one member per name, the last), which issues them.
 * A string of the request's pool, or NULL.
 */

static char *
ngx_http_linguamate_refresh_claims(ngx_http_request_t *r,
    ngx_http_linguamate_main_conf_t *lmcf, ngx_str_t *token)
{
    char        *z, *json, *out;
    jwt_t       *jwt;
    ngx_str_t   *key;
    ngx_uint_t   i;

    z = ngx_pnalloc(r->pool, token->len + 1);
    if (z == NULL) {
        return NULL;
    }

    ngx_memcpy(z, token->data, token->len);
    z[token->len] = '\0';

    jwt = NULL;

    for (i = 0; i < 2; i++) {
        key = i ? &lmcf->jwt_secret_previous : &lmcf->jwt_secret;

        if (key->len
            && jwt_decode(&jwt, z, key->data, (int) key->len) == 0
            && jwt != NULL)
        {
            break;
        }

        jwt_free(jwt);
        jwt = NULL;
    }

    if (jwt == NULL) {
        return NULL;
    }

    json = jwt_get_grants_json(jwt, NULL);
    out = NULL;

    if (json) {
        out = ngx_pnalloc(r->pool, ngx_strlen(json) + 1);
        if (out) {
            ngx_memcpy(out, json, ngx_strlen(json) + 1);
        }
    }

    free(json);
    jwt_free(jwt);

    return out;
}


/*
 * A new token with the claims of "claims" (JSON of the verified token)
 * but a new type, iat, iat_ms, exp and jti.  iat_ms is the millisecond of
 * issue, which a revocation compares with its own.  Returns NGX_CONF_OK or
 * an error.
 */

static char *
ngx_http_linguamate_sign(ngx_http_request_t *r,
    ngx_http_linguamate_main_conf_t *lmcf, const char *claims,
    const char *type, time_t lifetime, ngx_str_t *jti, ngx_str_t *out)
{
    u_char   *p;
    char     *s, jbuf[64];
    jwt_t    *jwt;
    time_t    now;
    int64_t   ms;

    if (jwt_new(&jwt) != 0) {
        return NGX_CONF_ERROR;
    }

    ms = ngx_http_linguamate_now_ms();
    now = (time_t) (ms / 1000);
    s = NULL;

    if (jwt_add_grants_json(jwt, claims) != 0) {
        goto failed;
    }

    (void) jwt_del_grants(jwt, "type");
    (void) jwt_del_grants(jwt, "iat");
    (void) jwt_del_grants(jwt, "iat_ms");
    (void) jwt_del_grants(jwt, "exp");
    (void) jwt_del_grants(jwt, "nbf");
    (void) jwt_del_grants(jwt, "jti");

    if (jwt_add_grant(jwt, "type", type) != 0
        || jwt_add_grant_int(jwt, "iat", (long) now) != 0
        || jwt_add_grant_int(jwt, "iat_ms", (long) ms) != 0
        || jwt_add_grant_int(jwt, "exp", (long) (now + lifetime)) != 0)
    {
        goto failed;
    }

    if (jti) {
        if (jti->len >= sizeof(jbuf)) {
            goto failed;
        }

        ngx_memcpy(jbuf, jti->data, jti->len);
        jbuf[jti->len] = '\0';

        if (jwt_add_grant(jwt, "jti", jbuf) != 0) {
            goto failed;
        }
    }

    if (jwt_set_alg(jwt, JWT_ALG_HS256, lmcf->jwt_secret.data,
                    (int) lmcf->jwt_secret.len) != 0)
    {
        goto failed;
    }

    s = jwt_encode_str(jwt);
    if (s == NULL) {
        goto failed;
    }

    out->len = ngx_strlen(s);
    p = ngx_pnalloc(r->pool, out->len);
    if (p == NULL) {
        goto failed;
    }

    ngx_memcpy(p, s, out->len);
    out->data = p;

    free(s);
    jwt_free(jwt);

    return NGX_CONF_OK;

failed:

    free(s);
    jwt_free(jwt);

    return NGX_CONF_ERROR;
}
