/*
 * Copyright (C) ngx_linguamate developers
 *
 * The operations API (/api/admin): its front door (ADMIN_TOKEN, or one
 * of the named ADMIN_TOKENS, as a bearer token, compared in constant time
 * with every one; ADMIN_ALLOWLIST; 403 while no token is configured; an
 * admin_action log line per call naming the operator, never the token)
 * and its calls.
 */


#include <openssl/crypto.h>
#include <openssl/sha.h>

#include "ngx_http_linguamate_module.h"
#include "ngx_http_linguamate_json.h"
#include "ngx_http_linguamate_shm.h"
#include "ngx_http_linguamate_log.h"
#include "ngx_http_linguamate_session.h"
#include "ngx_http_linguamate_lockout.h"
#include "ngx_http_linguamate_breaker.h"
#include "ngx_http_linguamate_flags.h"
#include "ngx_http_linguamate_admin.h"


/* a configured admin token: who holds it, and its SHA-256 */
typedef struct {
    ngx_str_t                   name;
    u_char                      digest[SHA256_DIGEST_LENGTH];
} ngx_http_linguamate_admin_key_t;


typedef struct {
    ngx_str_t                   method;
    ngx_str_t                   path;       /* after /api/admin */
    ngx_str_t                   arg;        /* the KEY of .../KEY */
    ngx_str_t                   action;     /* for the log */
    ngx_str_t                   target;
    ngx_str_t                   extra;      /* for the log */
    ngx_str_t                   operator;   /* the token's name */
    ngx_uint_t                  status;
} ngx_http_linguamate_admin_call_t;


static ngx_int_t ngx_http_linguamate_admin_auth(ngx_http_request_t *r,
    ngx_http_linguamate_main_conf_t *lmcf, ngx_http_linguamate_admin_call_t *c);
static ngx_int_t ngx_http_linguamate_admin_state(ngx_http_request_t *r,
    ngx_http_linguamate_main_conf_t *lmcf, ngx_http_linguamate_admin_call_t *c);
static ngx_int_t ngx_http_linguamate_admin_lockout(ngx_http_request_t *r,
    ngx_http_linguamate_main_conf_t *lmcf, ngx_http_linguamate_admin_call_t *c);
static ngx_int_t ngx_http_linguamate_admin_breaker(ngx_http_request_t *r,
    ngx_http_linguamate_main_conf_t *lmcf, ngx_http_linguamate_admin_call_t *c);
static ngx_int_t ngx_http_linguamate_admin_revoke(ngx_http_request_t *r,
    ngx_http_linguamate_main_conf_t *lmcf, ngx_http_linguamate_admin_call_t *c);
static ngx_int_t ngx_http_linguamate_admin_cache(ngx_http_request_t *r,
    ngx_http_linguamate_main_conf_t *lmcf, ngx_http_linguamate_admin_call_t *c);
static ngx_int_t ngx_http_linguamate_admin_flags(ngx_http_request_t *r,
    ngx_http_linguamate_main_conf_t *lmcf, ngx_http_linguamate_admin_call_t *c);
static void ngx_http_linguamate_admin_flags_body(ngx_http_request_t *r);
static ngx_int_t ngx_http_linguamate_admin_key(ngx_http_request_t *r,
    ngx_str_t *arg, ngx_str_t *key);
static void ngx_http_linguamate_admin_log(ngx_http_request_t *r,
    ngx_http_linguamate_main_conf_t *lmcf, ngx_http_linguamate_admin_call_t *c);
static ngx_int_t ngx_http_linguamate_admin_reply(ngx_http_request_t *r,
    ngx_http_linguamate_admin_call_t *c, ngx_uint_t status, ngx_buf_t *b);
static ngx_int_t ngx_http_linguamate_admin_post_only(ngx_http_request_t *r,
    ngx_http_linguamate_main_conf_t *lmcf, ngx_http_linguamate_admin_call_t *c);
static ngx_int_t ngx_http_linguamate_admin_error(ngx_http_request_t *r,
    ngx_http_linguamate_main_conf_t *lmcf, ngx_http_linguamate_admin_call_t *c,
    ngx_uint_t status, const char *code, const char *message);
static ngx_int_t ngx_http_linguamate_admin_key_add(ngx_conf_t *cf,
    ngx_http_linguamate_main_conf_t *lmcf, ngx_str_t *name, ngx_str_t *token,
    ngx_uint_t n);


#define NGX_HTTP_LINGUAMATE_REVOKE_NAME(id, name, before)  name,

/* the "revoked" of the answer, by kind */
static const char  *ngx_http_linguamate_revoke_names[] = {
    NGX_HTTP_LINGUAMATE_REVOKE_KINDS(NGX_HTTP_LINGUAMATE_REVOKE_NAME)
};


ngx_int_t
ngx_http_linguamate_admin_handler(ngx_http_request_t *r)
{
    u_char                            *p;
    ngx_int_t                          rc;
    ngx_http_linguamate_main_conf_t   *lmcf;
    ngx_http_linguamate_admin_call_t   c;

    lmcf = ngx_http_get_module_main_conf(r, ngx_http_linguamate_module);

    ngx_memzero(&c, sizeof(ngx_http_linguamate_admin_call_t));
    c.method = r->method_name;

    p = ngx_strnstr(r->uri.data, "/api/admin", r->uri.len);
    if (p == NULL || p != r->uri.data) {
        c.path = r->uri;
    } else {
        c.path.data = r->uri.data + sizeof("/api/admin") - 1;
        c.path.len = r->uri.len - (sizeof("/api/admin") - 1);
    }

    rc = ngx_http_linguamate_admin_auth(r, lmcf, &c);
    if (rc != NGX_DECLINED) {
        return rc;
    }

    if (c.path.len == 6 && ngx_strncmp(c.path.data, "/state", 6) == 0) {
        ngx_str_set(&c.action, "state");

        if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
            return ngx_http_linguamate_admin_error(r, lmcf, &c,
                       NGX_HTTP_NOT_ALLOWED, "METHOD_NOT_ALLOWED",
                       "Method not allowed");
        }

        return ngx_http_linguamate_admin_state(r, lmcf, &c);
    }

    if (c.path.len == 6 && ngx_strncmp(c.path.data, "/flags", 6) == 0) {
        ngx_str_set(&c.action, "flags");

        if (r->method != NGX_HTTP_PATCH) {
            if (ngx_http_linguamate_add_header(r, "Allow",
                    sizeof("Allow") - 1, (u_char *) "PATCH",
                    sizeof("PATCH") - 1)
                != NGX_OK)
            {
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }

            return ngx_http_linguamate_admin_error(r, lmcf, &c,
                       NGX_HTTP_NOT_ALLOWED, "METHOD_NOT_ALLOWED",
                       "Method not allowed");
        }

        return ngx_http_linguamate_admin_flags(r, lmcf, &c);
    }

    if (c.path.len > sizeof("/lockouts/") - 1
        && ngx_strncmp(c.path.data, "/lockouts/", sizeof("/lockouts/") - 1)
           == 0)
    {
        c.arg.data = c.path.data + sizeof("/lockouts/") - 1;
        c.arg.len = c.path.len - (sizeof("/lockouts/") - 1);

        return ngx_http_linguamate_admin_lockout(r, lmcf, &c);
    }

    if (c.path.len >= sizeof("/breakers/reset") - 1
        && ngx_strncmp(c.path.data, "/breakers/", sizeof("/breakers/") - 1)
           == 0)
    {
        return ngx_http_linguamate_admin_breaker(r, lmcf, &c);
    }

    if (c.path.len >= sizeof("/cache/purge") - 1
        && ngx_strncmp(c.path.data, "/cache/purge", sizeof("/cache/purge") - 1)
           == 0)
    {
        return ngx_http_linguamate_admin_cache(r, lmcf, &c);
    }

    if ((c.path.len > sizeof("/sessions/") - 1
         && ngx_strncmp(c.path.data, "/sessions/", sizeof("/sessions/") - 1)
            == 0)
        || (c.path.len > sizeof("/users/") - 1
            && ngx_strncmp(c.path.data, "/users/", sizeof("/users/") - 1)
               == 0))
    {
        return ngx_http_linguamate_admin_revoke(r, lmcf, &c);
    }

    ngx_str_set(&c.action, "unknown");

    return ngx_http_linguamate_admin_error(r, lmcf, &c, NGX_HTTP_NOT_FOUND,
                                           "NOT_FOUND", "Resource not found");
}


/* POST /cache/purge, POST /cache/purge/PROCEDURE */

static ngx_int_t
ngx_http_linguamate_admin_cache(ngx_http_request_t *r,
    ngx_http_linguamate_main_conf_t *lmcf, ngx_http_linguamate_admin_call_t *c)
{
    ngx_buf_t          *b;
    ngx_str_t           proc, *pp;
    ngx_uint_t          i;
    ngx_atomic_uint_t   gen;

    ngx_str_set(&c->action, "cache_purge");

    pp = NULL;

    if (c->path.len > sizeof("/cache/purge/") - 1) {
        proc.data = c->path.data + sizeof("/cache/purge/") - 1;
        proc.len = c->path.len - (sizeof("/cache/purge/") - 1);

        if (c->path.data[sizeof("/cache/purge") - 1] != '/') {
            return ngx_http_linguamate_admin_error(r, lmcf, c,
                       NGX_HTTP_NOT_FOUND, "NOT_FOUND", "Resource not found");
        }

        /* a procedure as the tRPC route reads it: "router.procedure" */

        for (i = 0; i < proc.len; i++) {
            if (proc.len > 128
                || !((proc.data[i] >= 'a' && proc.data[i] <= 'z')
                     || (proc.data[i] >= 'A' && proc.data[i] <= 'Z')
                     || (proc.data[i] >= '0' && proc.data[i] <= '9')
                     || proc.data[i] == '.' || proc.data[i] == '_'
                     || proc.data[i] == '-'))
            {
                return ngx_http_linguamate_admin_error(r, lmcf, c,
                           NGX_HTTP_BAD_REQUEST, "VALIDATION_ERROR",
                           "A procedure is up to 128 characters of "
                           "[A-Za-z0-9._-]");
            }
        }

        pp = &proc;
        c->target = proc;

    } else if (c->path.len != sizeof("/cache/purge") - 1) {
        return ngx_http_linguamate_admin_error(r, lmcf, c,
                   NGX_HTTP_NOT_FOUND, "NOT_FOUND", "Resource not found");
    }

    if (r->method != NGX_HTTP_POST) {
        return ngx_http_linguamate_admin_post_only(r, lmcf, c);
    }

    gen = ngx_http_linguamate_cache_purge(lmcf, pp);

    b = ngx_create_temp_buf(r->pool, 96 + NGX_ATOMIC_T_LEN
                                     + (pp ? pp->len : 0));
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (pp) {
        b->last = ngx_sprintf(b->last, "{\"success\":true,\"purged\":"
                              "\"procedure\",\"procedure\":\"%V\","
                              "\"generation\":%uA}\n", pp, gen);

    } else {
        b->last = ngx_sprintf(b->last, "{\"success\":true,\"purged\":"
                              "\"all\",\"generation\":%uA}\n", gen);
    }

    c->status = NGX_HTTP_OK;
    ngx_http_linguamate_admin_log(r, lmcf, c);

    return ngx_http_linguamate_admin_reply(r, c, NGX_HTTP_OK, b);
}


/* POST /breakers/NAME/reset, POST /breakers/reset */

static ngx_int_t
ngx_http_linguamate_admin_breaker(ngx_http_request_t *r,
    ngx_http_linguamate_main_conf_t *lmcf, ngx_http_linguamate_admin_call_t *c)
{
    ngx_buf_t   *b;
    ngx_str_t    name, *np;

    ngx_str_set(&c->action, "breaker_reset");

    np = NULL;

    if (!(c->path.len == sizeof("/breakers/reset") - 1
          && ngx_strncmp(c->path.data, "/breakers/reset", c->path.len) == 0))
    {
        if (c->path.len <= sizeof("/breakers//reset") - 1
            || ngx_strncmp(c->path.data + c->path.len - 6, "/reset", 6) != 0)
        {
            return ngx_http_linguamate_admin_error(r, lmcf, c,
                       NGX_HTTP_NOT_FOUND, "NOT_FOUND", "Resource not found");
        }

        name.data = c->path.data + sizeof("/breakers/") - 1;
        name.len = c->path.len - (sizeof("/breakers/") - 1) - 6;
        np = &name;
        c->target = name;
    }

    if (r->method != NGX_HTTP_POST) {
        return ngx_http_linguamate_admin_post_only(r, lmcf, c);
    }

    if (ngx_http_linguamate_breaker_reset(lmcf, np) != NGX_OK) {
        return ngx_http_linguamate_admin_error(r, lmcf, c,
                   NGX_HTTP_NOT_FOUND, "NOT_FOUND", "No such breaker");
    }

    b = ngx_create_temp_buf(r->pool, 64 + (np ? 6 * np->len : 0));
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b->last = ngx_cpymem(b->last, "{\"success\":true,\"reset\":",
                         sizeof("{\"success\":true,\"reset\":") - 1);

    if (np) {
        *b->last++ = '"';
        b->last = ngx_http_linguamate_json_escape(b->last, np->data, np->len);
        *b->last++ = '"';

    } else {
        b->last = ngx_cpymem(b->last, "\"all\"", 5);
    }

    b->last = ngx_cpymem(b->last, "}\n", 2);

    c->status = NGX_HTTP_OK;
    ngx_http_linguamate_admin_log(r, lmcf, c);

    return ngx_http_linguamate_admin_reply(r, c, NGX_HTTP_OK, b);
}


/*
 * POST /sessions/revoke-all, /sessions/SID/revoke, /users/SUB/revoke:
 * the change reaches every worker at once through the session zone.
 */

static ngx_int_t
ngx_http_linguamate_admin_revoke(ngx_http_request_t *r,
    ngx_http_linguamate_main_conf_t *lmcf, ngx_http_linguamate_admin_call_t *c)
{
    u_char                        *dst, *src;
    int64_t                        before;
    ngx_buf_t                     *b;
    ngx_str_t                      id;
    ngx_http_linguamate_revoke_e   kind;

    if (c->path.len == sizeof("/sessions/revoke-all") - 1
        && ngx_strncmp(c->path.data, "/sessions/revoke-all",
                       c->path.len) == 0)
    {
        kind = NGX_HTTP_LINGUAMATE_REVOKE_ALL;
        ngx_str_set(&c->action, "sessions_revoke_all");
        ngx_str_set(&id, "");

    } else if (c->path.len > sizeof("/revoke") - 1
               && ngx_strncmp(c->path.data + c->path.len
                              - (sizeof("/revoke") - 1), "/revoke",
                              sizeof("/revoke") - 1) == 0)
    {
        /* the caller let only these two through */

        if (ngx_strncmp(c->path.data, "/sessions/", sizeof("/sessions/") - 1)
            == 0)
        {
            kind = NGX_HTTP_LINGUAMATE_REVOKE_SESSION;
            ngx_str_set(&c->action, "session_revoke");
            id.data = c->path.data + sizeof("/sessions/") - 1;

        } else {
            kind = NGX_HTTP_LINGUAMATE_REVOKE_USER;
            ngx_str_set(&c->action, "user_revoke");
            id.data = c->path.data + sizeof("/users/") - 1;
        }

        id.len = c->path.data + c->path.len - (sizeof("/revoke") - 1)
                 - id.data;

        if (id.len == 0 || id.len > 512
            || ngx_strlchr(id.data, id.data + id.len, '/'))
        {
            return ngx_http_linguamate_admin_error(r, lmcf, c,
                       NGX_HTTP_NOT_FOUND, "NOT_FOUND", "Resource not found");
        }

        /* the id is %-encoded in the path */

        dst = ngx_pnalloc(r->pool, id.len);
        if (dst == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        src = id.data;
        id.data = dst;
        ngx_unescape_uri(&dst, &src, id.len, 0);
        id.len = dst - id.data;

        c->target = id;

    } else {
        ngx_str_set(&c->action, "unknown");
        return ngx_http_linguamate_admin_error(r, lmcf, c, NGX_HTTP_NOT_FOUND,
                                               "NOT_FOUND",
                                               "Resource not found");
    }

    if (r->method != NGX_HTTP_POST) {
        return ngx_http_linguamate_admin_post_only(r, lmcf, c);
    }

    if (lmcf->session_zone == NULL) {
        return ngx_http_linguamate_admin_error(r, lmcf, c,
                   NGX_HTTP_SERVICE_UNAVAILABLE, "SERVICE_UNAVAILABLE",
                   "No linguamate_session_zone is configured");
    }

    before = ngx_http_linguamate_now_ms();

    if (ngx_http_linguamate_session_revoke(lmcf->session_zone, r->pool,
                                           kind, &id, &before,
                                           r->connection->log)
        != NGX_OK)
    {
        return ngx_http_linguamate_admin_error(r, lmcf, c,
                   NGX_HTTP_INTERNAL_SERVER_ERROR, "INTERNAL_SERVER_ERROR",
                   "The revocation could not be stored");
    }

    b = ngx_create_temp_buf(r->pool, 128 + NGX_HTTP_LINGUAMATE_ISO_LEN);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b->last = ngx_sprintf(b->last, "{\"success\":true,\"revoked\":\"%s\","
                          "\"issuedBefore\":\"",
                          ngx_http_linguamate_revoke_names[kind]);
    b->last = ngx_http_linguamate_iso_time(b->last,
                                           (time_t) (before / 1000),
                                           (ngx_msec_t) (before % 1000));
    b->last = ngx_cpymem(b->last, "\"}\n", 3);

    c->status = NGX_HTTP_OK;
    ngx_http_linguamate_admin_log(r, lmcf, c);

    return ngx_http_linguamate_admin_reply(r, c, NGX_HTTP_OK, b);
}


/*
 * NGX_DECLINED: the caller may go on.  The token is compared as SHA-256
 * digests with CRYPTO_memcmp, so neither its bytes nor its length leak
 * through timing.
 */

static ngx_int_t
ngx_http_linguamate_admin_auth(ngx_http_request_t *r,
    ngx_http_linguamate_main_conf_t *lmcf, ngx_http_linguamate_admin_call_t *c)
{
    u_char                           given[SHA256_DIGEST_LENGTH];
    ngx_str_t                        token;
    ngx_uint_t                       i, match;
    ngx_table_elt_t                 *auth;
    ngx_http_linguamate_admin_key_t *key;

    ngx_str_set(&c->action, "auth");

    if (lmcf->admin_keys == NULL || lmcf->admin_keys->nelts == 0) {
        return ngx_http_linguamate_admin_error(r, lmcf, c, NGX_HTTP_FORBIDDEN,
                   "FORBIDDEN",
                   "The operations API is disabled: ADMIN_TOKEN is not set");
    }

    if (!ngx_http_linguamate_client_allowlisted(r, lmcf->admin_allowlist)) {
        return ngx_http_linguamate_admin_error(r, lmcf, c, NGX_HTTP_FORBIDDEN,
                   "FORBIDDEN",
                   "This address may not use the operations API");
    }

    auth = r->headers_in.authorization;
    token.len = 0;

    if (auth && auth->value.len > 7
        && ngx_strncasecmp(auth->value.data, (u_char *) "Bearer ", 7) == 0)
    {
        token.data = auth->value.data + 7;
        token.len = auth->value.len - 7;
    }

    if (token.len) {
        SHA256(token.data, token.len, given);

        /* every key is compared, whichever matches */

        key = lmcf->admin_keys->elts;
        match = lmcf->admin_keys->nelts;

        for (i = 0; i < lmcf->admin_keys->nelts; i++) {
            if (CRYPTO_memcmp(given, key[i].digest, SHA256_DIGEST_LENGTH)
                == 0)
            {
                match = i;
            }
        }

        if (match < lmcf->admin_keys->nelts) {
            c->operator = key[match].name;
            return NGX_DECLINED;
        }
    }

    if (ngx_http_linguamate_add_header(r, "WWW-Authenticate",
            sizeof("WWW-Authenticate") - 1,
            (u_char *) "Bearer realm=\"linguamate-admin\"",
            sizeof("Bearer realm=\"linguamate-admin\"") - 1)
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_linguamate_admin_error(r, lmcf, c,
               NGX_HTTP_UNAUTHORIZED, "UNAUTHORIZED",
               token.len ? "Invalid admin token" : "Authentication required");
}


/*
 * The admin keys, at configuration time: ADMIN_TOKEN as "admin", then
 * each "name:token" of ADMIN_TOKENS (comma separated).  Names are
 * 1-64 characters of [A-Za-z0-9._@-], tokens at least 32 bytes, and no
 * two names or tokens alike.  Only digests are kept; no message ever
 * shows a token.
 */

ngx_int_t
ngx_http_linguamate_admin_tokens(ngx_conf_t *cf,
    ngx_http_linguamate_main_conf_t *lmcf)
{
    u_char     *p, *end, *start, *colon;
    ngx_str_t   name, token;
    ngx_uint_t  n;

    lmcf->admin_keys = ngx_array_create(cf->pool, 2,
                                     sizeof(ngx_http_linguamate_admin_key_t));
    if (lmcf->admin_keys == NULL) {
        return NGX_ERROR;
    }

    if (lmcf->admin_token.len) {
        ngx_str_set(&name, "admin");

        if (ngx_http_linguamate_admin_key_add(cf, lmcf, &name,
                                              &lmcf->admin_token, 0)
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    p = lmcf->admin_tokens.data;
    end = p + lmcf->admin_tokens.len;
    n = 0;

    while (p < end) {
        while (p < end && (*p == ',' || *p == ' ' || *p == '\t')) {
            p++;
        }

        if (p == end) {
            break;
        }

        start = p;
        colon = NULL;

        while (p < end && *p != ',' && *p != ' ' && *p != '\t') {
            if (*p == ':' && colon == NULL) {
                colon = p;
            }

            p++;
        }

        n++;

        if (colon == NULL) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "linguamate: invalid value for ADMIN_TOKENS: "
                               "entry %ui is not \"name:token\"", n);
            return NGX_ERROR;
        }

        name.data = start;
        name.len = colon - start;
        token.data = colon + 1;
        token.len = p - token.data;

        if (ngx_http_linguamate_admin_key_add(cf, lmcf, &name, &token, n)
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_linguamate_admin_key_add(ngx_conf_t *cf,
    ngx_http_linguamate_main_conf_t *lmcf, ngx_str_t *name, ngx_str_t *token,
    ngx_uint_t n)
{
    u_char                           c, digest[SHA256_DIGEST_LENGTH];
    ngx_uint_t                       i;
    ngx_http_linguamate_admin_key_t *key;

    if (name->len == 0 || name->len > 64) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "linguamate: invalid value for ADMIN_TOKENS: "
                           "entry %ui needs a name of 1 to 64 characters", n);
        return NGX_ERROR;
    }

    for (i = 0; i < name->len; i++) {
        c = ngx_tolower(name->data[i]);

        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.'
              || c == '_' || c == '-' || c == '@'))
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "linguamate: invalid value for ADMIN_TOKENS: "
                               "the name of entry %ui may only have letters, "
                               "digits and \"._@-\"", n);
            return NGX_ERROR;
        }
    }

    if (token->len < NGX_HTTP_LINGUAMATE_SECRET_MIN) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "linguamate: invalid value for ADMIN_TOKENS: "
                           "the token of \"%V\" must be at least %d bytes",
                           name, NGX_HTTP_LINGUAMATE_SECRET_MIN);
        return NGX_ERROR;
    }

    SHA256(token->data, token->len, digest);

    key = lmcf->admin_keys->elts;

    for (i = 0; i < lmcf->admin_keys->nelts; i++) {
        if (key[i].name.len == name->len
            && ngx_strncmp(key[i].name.data, name->data, name->len) == 0)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "linguamate: invalid value for ADMIN_TOKENS: "
                               "\"%V\" is named twice%s", name,
                               i == 0 && lmcf->admin_token.len
                               ? " (ADMIN_TOKEN is \"admin\")" : "");
            return NGX_ERROR;
        }

        if (ngx_memcmp(key[i].digest, digest, SHA256_DIGEST_LENGTH) == 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "linguamate: invalid value for ADMIN_TOKENS: "
                               "\"%V\" and \"%V\" have the same token",
                               &key[i].name, name);
            return NGX_ERROR;
        }
    }

    key = ngx_array_push(lmcf->admin_keys);
    if (key == NULL) {
        return NGX_ERROR;
    }

    key->name = *name;
    ngx_memcpy(key->digest, digest, SHA256_DIGEST_LENGTH);

    return NGX_OK;
}


static ngx_int_t
ngx_http_linguamate_admin_state(ngx_http_request_t *r,
    ngx_http_linguamate_main_conf_t *lmcf, ngx_http_linguamate_admin_call_t *c)
{
    size_t                        len;
    ngx_buf_t                    *b;
    ngx_uint_t                    i, open;
    ngx_http_linguamate_zone_t  **zp;

    zp = lmcf->zones.elts;

    len = 512 + lmcf->zones.nelts * (128 + 5 * NGX_ATOMIC_T_LEN)
          + ngx_http_linguamate_breakers_json_len(lmcf)
          + ngx_http_linguamate_flags_json_len();

    for (i = 0; i < lmcf->zones.nelts; i++) {
        len += zp[i]->name.len;
    }

    b = ngx_create_temp_buf(r->pool, len);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    *b->last++ = '{';
    b->last = ngx_http_linguamate_flags_json(lmcf, b->last);
    b->last = ngx_cpymem(b->last, ",\"zones\":[", sizeof(",\"zones\":[") - 1);

    for (i = 0; i < lmcf->zones.nelts; i++) {
        b->last = ngx_sprintf(b->last, "%s{\"name\":\"%V\",\"kind\":\"%s\","
                              "\"sizeBytes\":%uz,\"entries\":%uA,"
                              "\"rejected\":%uA,\"evicted\":%uA}",
                              i ? "," : "", &zp[i]->name,
                              zp[i]->kind == NGX_HTTP_LINGUAMATE_ZONE_LIMIT
                              ? "rate_limit"
                              : zp[i]->kind == NGX_HTTP_LINGUAMATE_ZONE_LOCKOUT
                              ? "lockout"
                              : zp[i]->kind == NGX_HTTP_LINGUAMATE_ZONE_SESSION
                              ? "sessions"
                              : zp[i]->kind == NGX_HTTP_LINGUAMATE_ZONE_METRICS
                              ? "metrics"
                              : zp[i]->kind == NGX_HTTP_LINGUAMATE_ZONE_FLAGS
                              ? "flags" : "breakers",
                              zp[i]->shm_zone->shm.size,
                              zp[i]->sh->nodes, zp[i]->sh->rejected,
                              zp[i]->sh->evicted);
    }

    b->last = ngx_cpymem(b->last, "],\"breakers\":",
                         sizeof("],\"breakers\":") - 1);
    b->last = ngx_http_linguamate_breakers_json(lmcf, b->last, &open);
    b->last = ngx_cpymem(b->last, "}\n", 2);

    return ngx_http_linguamate_admin_reply(r, c, NGX_HTTP_OK, b);
}


/* PATCH /flags: read the body, then change the flags in the zone */

static ngx_int_t
ngx_http_linguamate_admin_flags(ngx_http_request_t *r,
    ngx_http_linguamate_main_conf_t *lmcf, ngx_http_linguamate_admin_call_t *c)
{
    ngx_int_t  rc;

    rc = ngx_http_read_client_request_body(r,
                                       ngx_http_linguamate_admin_flags_body);

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return rc;
    }

    return NGX_DONE;
}


static void
ngx_http_linguamate_admin_flags_body(ngx_http_request_t *r)
{
    u_char                            *p;
    size_t                             len;
    ngx_int_t                          rc;
    ngx_buf_t                         *b;
    ngx_str_t                          in, changes, extra;
    const char                        *field;
    ngx_http_linguamate_main_conf_t   *lmcf;
    ngx_http_linguamate_admin_call_t   c;
    ngx_http_linguamate_flags_error_t  err;

    lmcf = ngx_http_get_module_main_conf(r, ngx_http_linguamate_module);

    ngx_memzero(&c, sizeof(ngx_http_linguamate_admin_call_t));
    c.method = r->method_name;
    ngx_str_set(&c.action, "flags");

    rc = ngx_http_linguamate_body(r, 4096, &in);

    if (rc == NGX_DECLINED) {
        ngx_http_finalize_request(r, ngx_http_linguamate_admin_error(r, lmcf,
                                  &c, NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
                                  "PAYLOAD_TOO_LARGE", "Payload too large"));
        return;
    }

    if (rc != NGX_OK) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    rc = ngx_http_linguamate_flags_patch(r, in.data, in.len, &changes, &b,
                                         &err);

    if (rc == NGX_DECLINED) {
        field = err.field;

        c.status = NGX_HTTP_BAD_REQUEST;
        len = sizeof(",\"invalid\":\"\"") + 6 * 64;
        c.extra.data = ngx_pnalloc(r->pool, len);

        if (c.extra.data) {
            extra.len = ngx_min(ngx_strlen(field), 64);
            p = ngx_cpymem(c.extra.data, ",\"invalid\":\"",
                           sizeof(",\"invalid\":\"") - 1);
            p = ngx_http_linguamate_json_escape(p, (u_char *) field,
                                                extra.len);
            *p++ = '"';
            c.extra.len = p - c.extra.data;
        }

        ngx_http_linguamate_admin_log(r, lmcf, &c);

        /* a field is a key the client sent: escaped for the answer */

        len = ngx_strlen(field);
        p = ngx_pnalloc(r->pool,
                        ngx_http_linguamate_json_escape_len((u_char *) field,
                                                            len) + 1);
        if (p == NULL) {
            ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
            return;
        }

        *ngx_http_linguamate_json_escape(p, (u_char *) field, len) = '\0';

        ngx_http_finalize_request(r,
            ngx_http_linguamate_validation_error(r, (const char *) p,
                                                 err.message));
        return;
    }

    if (rc != NGX_OK) {
        ngx_http_finalize_request(r, ngx_http_linguamate_admin_error(r, lmcf,
                                  &c, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                  "INTERNAL_SERVER_ERROR",
                                  "The flags could not be changed"));
        return;
    }

    c.status = NGX_HTTP_OK;
    c.extra = changes;
    ngx_http_linguamate_admin_log(r, lmcf, &c);

    ngx_http_finalize_request(r,
                              ngx_http_linguamate_send_json(r, NGX_HTTP_OK, b));
}


/* GET: the state of a key; DELETE: unlock it in every lockout zone */

static ngx_int_t
ngx_http_linguamate_admin_lockout(ngx_http_request_t *r,
    ngx_http_linguamate_main_conf_t *lmcf, ngx_http_linguamate_admin_call_t *c)
{
    size_t                               len;
    ngx_buf_t                           *b;
    ngx_str_t                            key;
    ngx_uint_t                           i, found;
    ngx_http_linguamate_zone_t         **zp;
    ngx_http_linguamate_lockout_info_t   info;

    if (r->method == NGX_HTTP_DELETE) {
        ngx_str_set(&c->action, "lockout_unlock");

    } else if (r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD)) {
        ngx_str_set(&c->action, "lockout_status");

    } else {
        ngx_str_set(&c->action, "lockout");
        return ngx_http_linguamate_admin_error(r, lmcf, c,
                   NGX_HTTP_NOT_ALLOWED, "METHOD_NOT_ALLOWED",
                   "Method not allowed");
    }

    if (ngx_http_linguamate_admin_key(r, &c->arg, &key) != NGX_OK) {
        return ngx_http_linguamate_admin_error(r, lmcf, c,
                   NGX_HTTP_BAD_REQUEST, "VALIDATION_ERROR",
                   "The key must be an email, an IP address, or "
                   "email:... / ip:...");
    }

    c->target = key;
    zp = lmcf->zones.elts;
    found = 0;
    ngx_memzero(&info, sizeof(info));

    for (i = 0; i < lmcf->zones.nelts; i++) {
        if (zp[i]->kind != NGX_HTTP_LINGUAMATE_ZONE_LOCKOUT) {
            continue;
        }

        if (r->method == NGX_HTTP_DELETE) {
            if (ngx_http_linguamate_lockout_unlock(zp[i], &key) == NGX_OK) {
                found = 1;
            }

        } else if (!found
                   && ngx_http_linguamate_lockout_status(zp[i], &key, &info)
                      == NGX_OK)
        {
            found = 1;
        }
    }

    if (!found) {
        return ngx_http_linguamate_admin_error(r, lmcf, c,
                   NGX_HTTP_NOT_FOUND, "NOT_FOUND",
                   "No failures or lockout recorded for this key");
    }

    len = 256 + 6 * key.len;

    b = ngx_create_temp_buf(r->pool, len);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b->last = ngx_cpymem(b->last, "{\"key\":\"", 8);
    b->last = ngx_http_linguamate_json_escape(b->last, key.data, key.len);

    if (r->method == NGX_HTTP_DELETE) {
        b->last = ngx_cpymem(b->last, "\",\"unlocked\":true}\n",
                             sizeof("\",\"unlocked\":true}\n") - 1);

    } else {
        b->last = ngx_sprintf(b->last, "\",\"locked\":%s,\"failures\":%ui,"
                              "\"retryAfter\":%M,\"lockedAt\":",
                              info.locked ? "true" : "false", info.failures,
                              (info.remaining_ms + 999) / 1000);

        if (info.locked) {
            *b->last++ = '"';
            b->last = ngx_http_linguamate_iso_time(b->last, info.locked_at, 0);
            *b->last++ = '"';

        } else {
            b->last = ngx_cpymem(b->last, "null", 4);
        }

        b->last = ngx_cpymem(b->last, "}\n", 2);
    }

    c->status = NGX_HTTP_OK;
    ngx_http_linguamate_admin_log(r, lmcf, c);

    return ngx_http_linguamate_admin_reply(r, c, NGX_HTTP_OK, b);
}


/* an email, an address, or an explicit "email:..." / "ip:..." */

static ngx_int_t
ngx_http_linguamate_admin_key(ngx_http_request_t *r, ngx_str_t *arg,
    ngx_str_t *key)
{
    u_char  *p, *dst, *src;
    size_t   len;

    p = ngx_pnalloc(r->pool, arg->len + sizeof("email:"));
    if (p == NULL) {
        return NGX_ERROR;
    }

    /* decode %40 and friends */

    dst = p + sizeof("email:") - 1;
    src = arg->data;
    ngx_unescape_uri(&dst, &src, arg->len, 0);
    len = dst - (p + sizeof("email:") - 1);
    src = p + sizeof("email:") - 1;

    if (len == 0 || len > 300 || ngx_strlchr(src, src + len, '/')) {
        return NGX_ERROR;
    }

    if ((len > 6 && ngx_strncmp(src, "email:", 6) == 0)
        || (len > 3 && ngx_strncmp(src, "ip:", 3) == 0))
    {
        key->data = src;
        key->len = len;

    } else if (ngx_strlchr(src, src + len, '@')) {
        ngx_memcpy(p, "email:", 6);
        key->data = p;
        key->len = len + 6;

    } else {
        ngx_memcpy(p + 3, "ip:", 3);
        key->data = p + 3;
        key->len = len + 3;
    }

    if (key->data[0] == 'e') {
        ngx_strlow(key->data, key->data, key->len);
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_linguamate_admin_reply(ngx_http_request_t *r,
    ngx_http_linguamate_admin_call_t *c, ngx_uint_t status, ngx_buf_t *b)
{
    if (ngx_http_discard_request_body(r) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (c->action.len == 5 && ngx_strncmp(c->action.data, "state", 5) == 0) {
        /* "state" is logged here; the others log their own outcome */
        c->status = status;
        ngx_http_linguamate_admin_log(r,
            ngx_http_get_module_main_conf(r, ngx_http_linguamate_module), c);
    }

    return ngx_http_linguamate_send_json(r, status, b);
}


static ngx_int_t
ngx_http_linguamate_admin_post_only(ngx_http_request_t *r,
    ngx_http_linguamate_main_conf_t *lmcf, ngx_http_linguamate_admin_call_t *c)
{
    if (ngx_http_linguamate_add_header(r, "Allow", sizeof("Allow") - 1,
                                       (u_char *) "POST", sizeof("POST") - 1)
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_linguamate_admin_error(r, lmcf, c, NGX_HTTP_NOT_ALLOWED,
                                           "METHOD_NOT_ALLOWED",
                                           "Method not allowed");
}


static ngx_int_t
ngx_http_linguamate_admin_error(ngx_http_request_t *r,
    ngx_http_linguamate_main_conf_t *lmcf, ngx_http_linguamate_admin_call_t *c,
    ngx_uint_t status, const char *code, const char *message)
{
    c->status = status;
    ngx_http_linguamate_admin_log(r, lmcf, c);

    return ngx_http_linguamate_send_error(r, status, code, message, NULL);
}


/* admin_action: who did what to which key, and how it went */

static void
ngx_http_linguamate_admin_log(ngx_http_request_t *r,
    ngx_http_linguamate_main_conf_t *lmcf, ngx_http_linguamate_admin_call_t *c)
{
    u_char      buf[1024], *p, *last, *v;
    size_t      vlen;
    ngx_str_t   msg, extra;
    ngx_uint_t  level;

    p = buf;
    last = buf + sizeof(buf);

    p = ngx_slprintf(p, last, ",\"cat\":\"admin\",\"action\":\"%V\","
                     "\"status\":%ui,\"client\":\"", &c->action, c->status);
    p = ngx_http_linguamate_json_escape(p, r->connection->addr_text.data,
                                        ngx_min(r->connection->addr_text.len,
                                                64));
    *p++ = '"';

    /* who: the name of the token, checked at configuration time */

    if (c->operator.len) {
        p = ngx_slprintf(p, last, ",\"operator\":\"%V\"", &c->operator);
    }

    if (c->target.len) {
        /* an account is shown masked, as in the lockout log */

        p = ngx_slprintf(p, last, ",\"target\":\"");
        v = c->target.data;
        vlen = ngx_min(c->target.len, 128);

        if (vlen > 6 && ngx_strncmp(v, "email:", 6) == 0) {
            p = ngx_cpymem(p, "email:", 6);
            p = ngx_http_linguamate_mask_email(p, last - 128, v + 6,
                                               vlen - 6);

        } else if (last - p > 128 + 6 * (ngx_int_t) vlen) {
            p = ngx_http_linguamate_json_escape(p, v, vlen);
        }

        *p++ = '"';
    }

    if (c->extra.len && c->extra.len < (size_t) (last - p) - 128) {
        p = ngx_cpymem(p, c->extra.data, c->extra.len);
    }

    extra.data = buf;
    extra.len = p - buf;

    msg.data = ngx_pnalloc(r->pool, c->method.len + r->uri.len + 2);
    if (msg.data == NULL) {
        return;
    }

    msg.len = ngx_sprintf(msg.data, "%V %V", &c->method, &r->uri) - msg.data;

    level = (c->status >= 400) ? NGX_HTTP_LINGUAMATE_LOG_WARN
                               : NGX_HTTP_LINGUAMATE_LOG_INFO;

    /* a change is part of the audit trail, whatever the log level */

    if (c->status < 400 && !(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        level |= NGX_HTTP_LINGUAMATE_LOG_AUDIT;
    }

    ngx_http_linguamate_log_request(r, level, "admin_action", &msg, &extra);
}
