/*
 * Copyright (C) ngx_linguamate developers
 *
 * JWT authentication (ACCESS phase): HS256 only, pinned; the signature is
 * checked here with HMAC-SHA256 and CRYPTO_memcmp on the 32 decoded bytes
 * (constant time on equal-length buffers) against JWT_SECRET and then
 * JWT_SECRET_PREVIOUS; libjwt then parses the claims.  exp is required,
 * nbf and iat are honoured, JWT_LEEWAY_SECONDS absorbs clock skew, and a
 * revoked session, user or "everything before" is refused.
 *
 * Verified tokens are kept in a small per-worker cache keyed by a hash of
 * the whole token (compared in full, in constant time, on a hit), so a
 * token used again costs a hash and the time checks; the revocation check
 * is skipped while the session zone's generation counter is unchanged.
 */


#include <jwt.h>
#include <sys/random.h>
#include <openssl/crypto.h>
#include <openssl/hmac.h>
#include <openssl/evp.h>
#include <yajl/yajl_tree.h>

#include "ngx_http_linguamate_module.h"


#define NGX_HTTP_LINGUAMATE_JWT_CACHE   1024
#define NGX_HTTP_LINGUAMATE_JSON_MAX_DEPTH  16


typedef struct {
    uint32_t                    hash;
    void                       *conf;       /* the configuration it was
                                               verified under */
    u_char                     *mem;        /* one block for all below */
    ngx_str_t                   token;
    ngx_http_linguamate_claims_t  claims;
    ngx_uint_t                  generation;
    unsigned                    checked:1;
    unsigned                    revoked:1;
} ngx_http_linguamate_jwt_entry_t;


static ngx_http_linguamate_jwt_entry_t
    ngx_http_linguamate_jwt_cache[NGX_HTTP_LINGUAMATE_JWT_CACHE];


static ngx_str_t  ngx_http_linguamate_reasons[] = {
    ngx_string("NONE"),
    ngx_string("MISSING"),
    ngx_string("MALFORMED"),
    ngx_string("BAD_SIGNATURE"),
    ngx_string("TOKEN_EXPIRED"),
    ngx_string("NOT_YET_VALID"),
    ngx_string("WRONG_TYPE"),
    ngx_string("REVOKED")
};


static ngx_int_t ngx_http_linguamate_auth_handler(ngx_http_request_t *r);
static ngx_uint_t ngx_http_linguamate_auth_token(ngx_http_request_t *r,
    ngx_http_linguamate_ctx_t *ctx);
static ngx_int_t ngx_http_linguamate_auth_required(ngx_http_request_t *r,
    ngx_http_linguamate_ctx_t **ctxp);
static ngx_uint_t ngx_http_linguamate_jwt_parse(ngx_http_request_t *r,
    ngx_http_linguamate_main_conf_t *lmcf, ngx_str_t *token,
    ngx_http_linguamate_jwt_entry_t *e);
static ngx_int_t ngx_http_linguamate_hmac_ok(ngx_str_t *secret,
    u_char *data, size_t len, u_char *sig);
static ngx_int_t ngx_http_linguamate_jwt_store(
    ngx_http_linguamate_jwt_entry_t *e, ngx_str_t *token, jwt_t *jwt,
    char *payload, ngx_log_t *log);
static ngx_int_t ngx_http_linguamate_claim_int(yajl_val root,
    const char *name, time_t *value, unsigned *present);
static const char *ngx_http_linguamate_claim_str(yajl_val root,
    const char *name);
static ngx_int_t ngx_http_linguamate_bearer(ngx_http_request_t *r,
    ngx_str_t *token);
static void ngx_http_linguamate_auth_log(ngx_http_request_t *r,
    ngx_uint_t reason, ngx_uint_t level);
static void ngx_http_linguamate_auth_debug(ngx_http_request_t *r,
    ngx_http_linguamate_main_conf_t *lmcf, ngx_http_linguamate_ctx_t *ctx);
static ngx_int_t ngx_http_linguamate_claim_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static void ngx_http_linguamate_yajl_cleanup(void *data);
static void ngx_http_linguamate_refresh_body(ngx_http_request_t *r);
static ngx_int_t ngx_http_linguamate_refresh(ngx_http_request_t *r);
static ngx_int_t ngx_http_linguamate_refresh_token(ngx_pool_t *pool,
    u_char *body, size_t len, ngx_str_t *token, const char **field,
    const char **message);
static char *ngx_http_linguamate_sign(ngx_http_request_t *r,
    ngx_http_linguamate_main_conf_t *lmcf, const char *claims,
    const char *type, time_t lifetime, ngx_str_t *jti, ngx_str_t *out);


ngx_int_t
ngx_http_linguamate_jwt_init(ngx_conf_t *cf)
{
    return ngx_http_linguamate_add_handler(cf, NGX_HTTP_ACCESS_PHASE,
                                           ngx_http_linguamate_auth_handler);
}


/* at exit: the cache is malloc()ed memory of this worker */

void
ngx_http_linguamate_jwt_exit_process(void)
{
    ngx_uint_t  i;

    for (i = 0; i < NGX_HTTP_LINGUAMATE_JWT_CACHE; i++) {
        if (ngx_http_linguamate_jwt_cache[i].mem) {
            ngx_free(ngx_http_linguamate_jwt_cache[i].mem);
        }
    }

    ngx_memzero(ngx_http_linguamate_jwt_cache,
                sizeof(ngx_http_linguamate_jwt_cache));
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
 * Verify token (wanting "type"); on success *claims points at claims
 * that stay valid for the request (copied to its pool).  Returns the
 * reason, NGX_HTTP_LINGUAMATE_AUTH_OK when valid.
 */

ngx_uint_t
ngx_http_linguamate_jwt_verify(ngx_http_request_t *r, ngx_str_t *token,
    const char *type, ngx_http_linguamate_claims_t *claims)
{
    time_t                            now, leeway;
    uint32_t                          hash;
    ngx_uint_t                        reason, gen, strict;
    ngx_http_linguamate_jwt_entry_t  *e;
    ngx_http_linguamate_main_conf_t  *lmcf;

    lmcf = ngx_http_get_module_main_conf(r, ngx_http_linguamate_module);

    if (token->len > NGX_HTTP_LINGUAMATE_JWT_MAX) {
        return NGX_HTTP_LINGUAMATE_AUTH_MALFORMED;
    }

    hash = ngx_murmur_hash2(token->data, token->len);
    e = &ngx_http_linguamate_jwt_cache[hash % NGX_HTTP_LINGUAMATE_JWT_CACHE];

    if (!(e->mem && e->conf == lmcf && e->hash == hash
          && e->token.len == token->len
          && CRYPTO_memcmp(e->token.data, token->data, token->len) == 0))
    {
        reason = ngx_http_linguamate_jwt_parse(r, lmcf, token, e);

        if (reason != NGX_HTTP_LINGUAMATE_AUTH_OK) {
            return reason;
        }

        e->hash = hash;
        e->conf = lmcf;
    }

    /* the time checks, every time: a cached token expires too */

    now = ngx_time();
    strict = ngx_http_linguamate_flag(lmcf, NGX_HTTP_LINGUAMATE_F_STRICT);
    leeway = strict ? 0 : (time_t) lmcf->jwt_leeway;

    if (now >= e->claims.exp + leeway) {
        return NGX_HTTP_LINGUAMATE_AUTH_EXPIRED;
    }

    if ((e->claims.has_nbf && now + leeway < e->claims.nbf)
        || (e->claims.has_iat && now + leeway < e->claims.iat))
    {
        return NGX_HTTP_LINGUAMATE_AUTH_NOT_YET_VALID;
    }

    if (e->claims.type.len != ngx_strlen(type)
        || ngx_strncmp(e->claims.type.data, type, e->claims.type.len) != 0)
    {
        return NGX_HTTP_LINGUAMATE_AUTH_WRONG_TYPE;
    }

    /*
     * strict mode: an access token older than
     * SECURITY_STRICT_MAX_TOKEN_AGE, or of no known age, has expired
     */

    if (strict && type[0] == 'a'
        && lmcf->strict_max_token_age.seconds > 0
        && (!e->claims.has_iat
            || now - e->claims.iat > lmcf->strict_max_token_age.seconds))
    {
        return NGX_HTTP_LINGUAMATE_AUTH_EXPIRED;
    }

    if (lmcf->session_zone) {
        gen = ngx_http_linguamate_session_generation(lmcf->session_zone);

        if (!e->checked || e->generation != gen) {
            e->revoked = ngx_http_linguamate_session_revoked(
                             lmcf->session_zone, r->pool, &e->claims.sub,
                             &e->claims.sid,
                             e->claims.has_iat ? e->claims.iat : 0)
                         ? 1 : 0;
            e->generation = gen;
            e->checked = 1;
        }

        if (e->revoked) {
            return NGX_HTTP_LINGUAMATE_AUTH_REVOKED;
        }
    }

    /* the request's own copy: the cache entry may be replaced meanwhile */

    *claims = e->claims;

    claims->sub.data = ngx_pstrdup(r->pool, &e->claims.sub);
    claims->sid.data = ngx_pstrdup(r->pool, &e->claims.sid);
    claims->type.data = ngx_pstrdup(r->pool, &e->claims.type);
    claims->jti.data = ngx_pstrdup(r->pool, &e->claims.jti);
    /* the payload stays NUL-terminated: libjwt and yajl read it as such */

    claims->payload.data = ngx_pnalloc(r->pool, e->claims.payload.len + 1);
    if (claims->payload.data) {
        *ngx_cpymem(claims->payload.data, e->claims.payload.data,
                    e->claims.payload.len) = '\0';
    }

    if ((e->claims.sub.len && claims->sub.data == NULL)
        || (e->claims.sid.len && claims->sid.data == NULL)
        || (e->claims.type.len && claims->type.data == NULL)
        || (e->claims.jti.len && claims->jti.data == NULL)
        || claims->payload.data == NULL)
    {
        return NGX_HTTP_LINGUAMATE_AUTH_MALFORMED;
    }

    return NGX_HTTP_LINGUAMATE_AUTH_OK;
}


/* the full check of a token not in the cache; fills the entry on success */

static ngx_uint_t
ngx_http_linguamate_jwt_parse(ngx_http_request_t *r,
    ngx_http_linguamate_main_conf_t *lmcf, ngx_str_t *token,
    ngx_http_linguamate_jwt_entry_t *e)
{
    int                rc;
    char              *payload, *z;
    size_t             dots[2];
    jwt_t             *jwt;
    u_char             sig[64];
    ngx_str_t          src, dst, *key;
    yajl_val           root, alg;
    ngx_uint_t         reason;
    static const char *alg_path[] = { "alg", NULL };

    if (ngx_http_linguamate_jwt_split(token->data, token->len, dots) != 0) {
        return NGX_HTTP_LINGUAMATE_AUTH_MALFORMED;
    }

    /* the header: JSON naming HS256, exactly */

    src.data = token->data;
    src.len = dots[0];

    dst.data = ngx_pnalloc(r->pool, ngx_base64_decoded_length(src.len) + 1);
    if (dst.data == NULL) {
        return NGX_HTTP_LINGUAMATE_AUTH_MALFORMED;
    }

    if (ngx_decode_base64url(&dst, &src) != NGX_OK
        || !ngx_http_linguamate_json_depth_ok(dst.data, dst.len, 4))
    {
        return NGX_HTTP_LINGUAMATE_AUTH_MALFORMED;
    }

    dst.data[dst.len] = '\0';

    if (ngx_strlen(dst.data) != dst.len) {
        return NGX_HTTP_LINGUAMATE_AUTH_MALFORMED;
    }

    root = yajl_tree_parse((const char *) dst.data, NULL, 0);
    if (root == NULL || !YAJL_IS_OBJECT(root)) {
        yajl_tree_free(root);
        return NGX_HTTP_LINGUAMATE_AUTH_MALFORMED;
    }

    alg = yajl_tree_get(root, alg_path, yajl_t_string);

    rc = alg && alg->u.string && ngx_strcmp(alg->u.string, "HS256") == 0;
    yajl_tree_free(root);

    if (!rc) {
        /* "none", HS512, RS256...: never accepted */
        return NGX_HTTP_LINGUAMATE_AUTH_BAD_SIGNATURE;
    }

    /* the signature: 32 bytes, compared in constant time */

    src.data = token->data + dots[1] + 1;
    src.len = token->len - dots[1] - 1;

    if (src.len > 86) {
        return NGX_HTTP_LINGUAMATE_AUTH_BAD_SIGNATURE;
    }

    dst.data = sig;

    if (ngx_decode_base64url(&dst, &src) != NGX_OK || dst.len != 32) {
        return NGX_HTTP_LINGUAMATE_AUTH_BAD_SIGNATURE;
    }

    key = &lmcf->jwt_secret;

    if (!ngx_http_linguamate_hmac_ok(key, token->data, dots[1], sig)) {
        key = &lmcf->jwt_secret_previous;

        if (key->len == 0
            || !ngx_http_linguamate_hmac_ok(key, token->data, dots[1], sig))
        {
            return NGX_HTTP_LINGUAMATE_AUTH_BAD_SIGNATURE;
        }
    }

    /* the claims, through libjwt, once their nesting is known to be sane */

    src.data = token->data + dots[0] + 1;
    src.len = dots[1] - dots[0] - 1;

    dst.data = ngx_pnalloc(r->pool, ngx_base64_decoded_length(src.len) + 1);
    if (dst.data == NULL) {
        return NGX_HTTP_LINGUAMATE_AUTH_MALFORMED;
    }

    if (ngx_decode_base64url(&dst, &src) != NGX_OK
        || !ngx_http_linguamate_json_depth_ok(dst.data, dst.len,
                                          NGX_HTTP_LINGUAMATE_JSON_MAX_DEPTH))
    {
        return NGX_HTTP_LINGUAMATE_AUTH_MALFORMED;
    }

    z = ngx_pnalloc(r->pool, token->len + 1);
    if (z == NULL) {
        return NGX_HTTP_LINGUAMATE_AUTH_MALFORMED;
    }

    ngx_memcpy(z, token->data, token->len);
    z[token->len] = '\0';

    jwt = NULL;

    if (jwt_decode(&jwt, z, key->data, (int) key->len) != 0 || jwt == NULL) {
        jwt_free(jwt);
        return NGX_HTTP_LINGUAMATE_AUTH_MALFORMED;
    }

    payload = jwt_get_grants_json(jwt, NULL);

    reason = NGX_HTTP_LINGUAMATE_AUTH_MALFORMED;

    if (payload
        && ngx_http_linguamate_jwt_store(e, token, jwt, payload,
                                         r->connection->log) == NGX_OK)
    {
        reason = NGX_HTTP_LINGUAMATE_AUTH_OK;
    }

    free(payload);
    jwt_free(jwt);

    return reason;
}


static ngx_int_t
ngx_http_linguamate_hmac_ok(ngx_str_t *secret, u_char *data, size_t len,
    u_char *sig)
{
    u_char        mac[EVP_MAX_MD_SIZE];
    unsigned int  mlen;

    if (HMAC(EVP_sha256(), secret->data, (int) secret->len, data, len, mac,
             &mlen) == NULL
        || mlen != 32)
    {
        return 0;
    }

    return CRYPTO_memcmp(mac, sig, 32) == 0;
}


/*
 * An integer claim of the parsed payload: NGX_OK (present or not),
 * NGX_ERROR when it is there but not an integer ("soon", 1.5, "17...").
 * libjwt 1.10's jwt_get_grant_int() cannot tell those apart.
 */

static ngx_int_t
ngx_http_linguamate_claim_int(yajl_val root, const char *name, time_t *value,
    unsigned *present)
{
    yajl_val     node;
    const char  *path[2];

    path[0] = name;
    path[1] = NULL;

    node = yajl_tree_get(root, path, yajl_t_any);

    if (node == NULL) {
        *present = 0;
        return NGX_OK;
    }

    if (!YAJL_IS_INTEGER(node)) {
        return NGX_ERROR;
    }

    *value = (time_t) YAJL_GET_INTEGER(node);
    *present = 1;

    return NGX_OK;
}


/* a string claim, or NULL when absent or not a string */

static const char *
ngx_http_linguamate_claim_str(yajl_val root, const char *name)
{
    yajl_val     node;
    const char  *path[2];

    path[0] = name;
    path[1] = NULL;

    node = yajl_tree_get(root, path, yajl_t_string);

    return node ? node->u.string : NULL;
}


static ngx_int_t
ngx_http_linguamate_jwt_store(ngx_http_linguamate_jwt_entry_t *e,
    ngx_str_t *token, jwt_t *jwt, char *payload, ngx_log_t *log)
{
    u_char                        *p;
    size_t                         len;
    yajl_val                       root;
    unsigned                       has_exp, has_nbf, has_iat;
    ngx_int_t                      rc;
    const char                    *sub, *sid, *type, *jti;
    ngx_http_linguamate_claims_t   c;

    ngx_memzero(&c, sizeof(ngx_http_linguamate_claims_t));

    root = yajl_tree_parse(payload, NULL, 0);

    if (root == NULL || !YAJL_IS_OBJECT(root)) {
        yajl_tree_free(root);
        return NGX_ERROR;
    }

    rc = NGX_ERROR;

    if (ngx_http_linguamate_claim_int(root, "exp", &c.exp, &has_exp)
        != NGX_OK
        || !has_exp
        || ngx_http_linguamate_claim_int(root, "nbf", &c.nbf, &has_nbf)
           != NGX_OK
        || ngx_http_linguamate_claim_int(root, "iat", &c.iat, &has_iat)
           != NGX_OK)
    {
        goto done;
    }

    c.has_nbf = has_nbf;
    c.has_iat = has_iat;

    sub = ngx_http_linguamate_claim_str(root, "sub");
    sid = ngx_http_linguamate_claim_str(root, "sid");
    type = ngx_http_linguamate_claim_str(root, "type");
    jti = ngx_http_linguamate_claim_str(root, "jti");

    if (sub == NULL || sub[0] == '\0') {
        goto done;
    }

    c.sub.len = ngx_strlen(sub);
    c.sid.len = sid ? ngx_strlen(sid) : 0;
    c.type.len = type ? ngx_strlen(type) : 0;
    c.jti.len = jti ? ngx_strlen(jti) : 0;
    c.payload.len = ngx_strlen(payload);

    if (c.sub.len > 512 || c.sid.len > 512 || c.jti.len > 512) {
        goto done;
    }

    len = token->len + c.sub.len + c.sid.len + c.type.len + c.jti.len
          + c.payload.len;

    p = ngx_alloc(len, log);
    if (p == NULL) {
        goto done;
    }

    if (e->mem) {
        ngx_free(e->mem);
    }

    e->mem = p;
    e->checked = 0;
    e->revoked = 0;

    e->token.data = p;
    e->token.len = token->len;
    p = ngx_cpymem(p, token->data, token->len);

    c.sub.data = p;
    p = ngx_cpymem(p, sub, c.sub.len);
    c.sid.data = p;
    p = ngx_cpymem(p, sid ? sid : "", c.sid.len);
    c.type.data = p;
    p = ngx_cpymem(p, type ? type : "", c.type.len);
    c.jti.data = p;
    p = ngx_cpymem(p, jti ? jti : "", c.jti.len);
    c.payload.data = p;
    ngx_memcpy(p, payload, c.payload.len);

    e->claims = c;
    rc = NGX_OK;

done:

    yajl_tree_free(root);

    return rc;
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

static ngx_int_t
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

    p = ngx_pnalloc(r->pool, sizeof(",\"reason\":\"\"") + name->len);
    if (p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    extra.data = p;
    extra.len = ngx_sprintf(p, ",\"reason\":\"%V\"", name) - p;

    if (phase) {
        return ngx_http_linguamate_phase_error(r, NGX_HTTP_UNAUTHORIZED,
                   "UNAUTHORIZED",
                   reason == NGX_HTTP_LINGUAMATE_AUTH_MISSING
                   ? "Authentication required" : "Invalid token",
                   &extra);
    }

    return ngx_http_linguamate_send_error(r, NGX_HTTP_UNAUTHORIZED,
               "UNAUTHORIZED",
               reason == NGX_HTTP_LINGUAMATE_AUTH_MISSING
               ? "Authentication required" : "Invalid token",
               &extra);
}


/* auth_failed: the reason, route and client; never the token */

static void
ngx_http_linguamate_auth_log(ngx_http_request_t *r, ngx_uint_t reason,
    ngx_uint_t level)
{
    u_char                           *p, *last, buf[512];
    ngx_str_t                         msg, extra, route;
    ngx_http_linguamate_ctx_t        *ctx;
    ngx_http_linguamate_main_conf_t  *lmcf;

    lmcf = ngx_http_get_module_main_conf(r, ngx_http_linguamate_module);
    ctx = ngx_http_linguamate_get_ctx(r);

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

    if (ctx) {
        p = ngx_slprintf(p, last, ",\"corr\":{\"correlationId\":\"%V\"}",
                         &ctx->corr_id);
    }

    extra.data = buf;
    extra.len = p - buf;

    ngx_str_set(&msg, "Authentication failed");

    ngx_http_linguamate_log_event(lmcf, level, "auth_failed", &msg, &extra);
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


static void
ngx_http_linguamate_yajl_cleanup(void *data)
{
    yajl_val  *root = data;

    yajl_tree_free(*root);
}


/* $linguamate_jwt_claim_NAME: a string, number or boolean claim */

static ngx_int_t
ngx_http_linguamate_claim_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_str_t *name = (ngx_str_t *) data;

    u_char                     *p, key[128];
    size_t                      klen;
    yajl_val                    node;
    const char                 *path[2];
    ngx_pool_cleanup_t         *cln;
    ngx_http_linguamate_ctx_t  *ctx;

    v->not_found = 1;

    ctx = ngx_http_linguamate_get_ctx(r);

    if (ctx == NULL || !ctx->auth_ok) {
        return NGX_OK;
    }

    klen = name->len - (sizeof("linguamate_jwt_claim_") - 1);

    if (klen == 0 || klen >= sizeof(key)) {
        return NGX_OK;
    }

    ngx_memcpy(key, name->data + sizeof("linguamate_jwt_claim_") - 1, klen);
    key[klen] = '\0';

    if (ctx->claims_tree == NULL) {
        p = ngx_pnalloc(r->pool, ctx->claims.payload.len + 1);
        if (p == NULL) {
            return NGX_ERROR;
        }

        ngx_memcpy(p, ctx->claims.payload.data, ctx->claims.payload.len);
        p[ctx->claims.payload.len] = '\0';

        cln = ngx_pool_cleanup_add(r->pool, sizeof(yajl_val));
        if (cln == NULL) {
            return NGX_ERROR;
        }

        *(yajl_val *) cln->data = yajl_tree_parse((const char *) p, NULL, 0);
        cln->handler = ngx_http_linguamate_yajl_cleanup;
        ctx->claims_tree = cln->data;
    }

    path[0] = (const char *) key;
    path[1] = NULL;

    node = yajl_tree_get(*(yajl_val *) ctx->claims_tree, path, yajl_t_any);

    if (node == NULL) {
        return NGX_OK;
    }

    if (YAJL_IS_STRING(node)) {
        v->data = (u_char *) YAJL_GET_STRING(node);
        v->len = ngx_strlen(v->data);

    } else if (YAJL_IS_NUMBER(node)) {
        v->data = (u_char *) node->u.number.r;
        v->len = ngx_strlen(v->data);

    } else if (YAJL_IS_TRUE(node)) {
        ngx_str_set(v, "true");

    } else if (YAJL_IS_FALSE(node)) {
        ngx_str_set(v, "false");

    } else {
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
               "sid", &ctx->claims.sid, r->connection->log) != NGX_OK)
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


ngx_int_t
ngx_http_linguamate_validation_error(ngx_http_request_t *r,
    const char *field, const char *message)
{
    u_char     *p;
    size_t      len;
    ngx_str_t   extra;

    len = sizeof(",\"details\":[{\"field\":\"\",\"message\":\"\"}]")
          + ngx_strlen(field) + ngx_strlen(message);

    p = ngx_pnalloc(r->pool, len);
    if (p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    extra.data = p;
    extra.len = ngx_sprintf(p, ",\"details\":[{\"field\":\"%s\","
                            "\"message\":\"%s\"}]", field, message) - p;

    return ngx_http_linguamate_send_error(r, NGX_HTTP_BAD_REQUEST,
                                          "VALIDATION_ERROR",
                                          "Invalid request body", &extra);
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

    if (ngx_http_linguamate_sign(r, lmcf, (const char *) claims.payload.data,
                                 "access", lmcf->jwt_expires_in.seconds,
                                 NULL, &access) != NGX_CONF_OK
        || ngx_http_linguamate_sign(r, lmcf,
                                    (const char *) claims.payload.data,
                                    "refresh",
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
 * A new token with the claims of "claims" (JSON of the verified token)
 * but a new type, iat, exp and jti.  Returns NGX_CONF_OK or an error.
 */

static char *
ngx_http_linguamate_sign(ngx_http_request_t *r,
    ngx_http_linguamate_main_conf_t *lmcf, const char *claims,
    const char *type, time_t lifetime, ngx_str_t *jti, ngx_str_t *out)
{
    u_char  *p;
    char    *s, jbuf[64];
    jwt_t   *jwt;
    time_t   now;

    if (jwt_new(&jwt) != 0) {
        return NGX_CONF_ERROR;
    }

    now = ngx_time();
    s = NULL;

    if (jwt_add_grants_json(jwt, claims) != 0) {
        goto failed;
    }

    (void) jwt_del_grants(jwt, "type");
    (void) jwt_del_grants(jwt, "iat");
    (void) jwt_del_grants(jwt, "exp");
    (void) jwt_del_grants(jwt, "nbf");
    (void) jwt_del_grants(jwt, "jti");

    if (jwt_add_grant(jwt, "type", type) != 0
        || jwt_add_grant_int(jwt, "iat", (long) now) != 0
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
