/*
 * Copyright (C) ngx_linguamate developers
 *
 * libFuzzer harness for the bearer tokens (ngx_http_linguamate_jwt.c),
 * through the module's own functions with a fixed HS256 secret:
 *
 *   0: an Authorization header value: bearer(), then jwt_verify() of
 *      the token (split, header, signature, libjwt, claims, times);
 *   1: a POST /api/auth/refresh body: refresh_token(), then
 *      jwt_verify() of the token as a refresh token;
 *   2: a claims payload, signed here with the secret so that it passes
 *      the signature and reaches the streaming claims parser and the
 *      claim checks (exp, nbf, iat, iat_ms, type, sub, sid, jti) in
 *      jwt_verify();
 *   3: a header and claims (split at the first 0xff byte), signed: the
 *      header's checks after the signature (alg, typ, crit, what jansson
 *      refused), then the claims; and each $linguamate_jwt_claim_ of a
 *      valid token.
 */

#include "fuzz_ngx.h"

#include "../ngx_linguamate/ngx_http_linguamate_jwt.c"


#define FUZZ_SECRET  "fuzz-jwt-secret-0123456789abcdef"


static ngx_http_linguamate_main_conf_t  fuzz_lmcf;


/* flags.c is not linked: strict mode off */

ngx_uint_t
ngx_http_linguamate_flag(ngx_http_linguamate_main_conf_t *lmcf,
    ngx_uint_t flag)
{
    return 0;
}


/* request.c is not linked: the request's module context */

static ngx_http_linguamate_ctx_t  *fuzz_ctx;


ngx_http_linguamate_ctx_t *
ngx_http_linguamate_get_ctx(ngx_http_request_t *r)
{
    return fuzz_ctx;
}


/* session.c is not linked: no session zone, never called */

ngx_uint_t
ngx_http_linguamate_session_generation(ngx_http_linguamate_zone_t *zone)
{
    abort();
}


ngx_int_t
ngx_http_linguamate_session_revoked(ngx_http_linguamate_zone_t *zone,
    ngx_str_t *sub, ngx_str_t *sid, int64_t issued)
{
    abort();
}


static void
fuzz_verify(ngx_http_request_t *r, ngx_str_t *token, const char *type)
{
    ngx_uint_t                    reason;
    ngx_http_linguamate_claims_t  claims;

    reason = ngx_http_linguamate_jwt_verify(r, token, type, &claims);

    if (reason == NGX_HTTP_LINGUAMATE_AUTH_OK
        && (claims.sub.len == 0 || claims.payload.data == NULL
            || claims.payload.data[claims.payload.len] != '\0'))
    {
        abort();    /* a valid token names its subject */
    }
}


static void
fuzz_claim(ngx_http_request_t *r, const char *name)
{
    ngx_str_t                  var;
    ngx_http_variable_value_t  v;

    var.data = (u_char *) name;
    var.len = ngx_strlen(name);

    ngx_memzero(&v, sizeof(ngx_http_variable_value_t));

    if (ngx_http_linguamate_claim_variable(r, &v, (uintptr_t) &var) != NGX_OK
        || (!v.not_found && v.len && v.data == NULL))
    {
        abort();
    }
}


static void
fuzz_signed(ngx_http_request_t *r, const uint8_t *hdr, size_t hlen,
    const uint8_t *data, size_t size)
{
    ngx_str_t                     token;
    ngx_uint_t                    reason;
    ngx_http_linguamate_ctx_t    *ctx;
    ngx_http_linguamate_claims_t  claims;

    token = fuzz_ngx_jwt(r->pool, FUZZ_SECRET, hdr, hlen, data, size);

    reason = ngx_http_linguamate_jwt_verify(r, &token,
                 (size && data[0] & 1) ? "refresh" : "access", &claims);

    if (reason != NGX_HTTP_LINGUAMATE_AUTH_OK) {
        return;
    }

    if (claims.sub.len == 0 || claims.payload.data == NULL
        || claims.payload.data[claims.payload.len] != '\0')
    {
        abort();
    }

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_linguamate_ctx_t));
    if (ctx == NULL) {
        abort();
    }

    ctx->claims = claims;
    ctx->auth_ok = 1;
    fuzz_ctx = ctx;

    fuzz_claim(r, "linguamate_jwt_claim_sub");
    fuzz_claim(r, "linguamate_jwt_claim_email");
    fuzz_claim(r, "linguamate_jwt_claim_exp");

    fuzz_ctx = NULL;
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    u_char                           *s;
    ngx_str_t                         token;
    ngx_int_t                         rc;
    const char                       *field, *message;
    ngx_table_elt_t                   h;
    const uint8_t                    *sep;
    ngx_http_request_t               *r;

    if (size < 1) {
        return 0;
    }

    ngx_str_set(&fuzz_lmcf.jwt_secret, FUZZ_SECRET);
    ngx_str_set(&fuzz_lmcf.jwt_secret_previous, "fuzz-previous");
    fuzz_lmcf.jwt_leeway = 30;
    fuzz_lmcf.jwt_cache = 64;      /* 8 sets: evictions happen */

    r = fuzz_ngx_request(&fuzz_lmcf);
    s = fuzz_ngx_strdup(data + 1, size - 1);

    switch (data[0] % 4) {

    case 0:
        ngx_memzero(&h, sizeof(ngx_table_elt_t));
        h.value.data = s;
        h.value.len = size - 1;
        r->headers_in.authorization = &h;

        if (ngx_http_linguamate_bearer(r, &token) == NGX_OK) {
            if (token.len == 0 || token.data < s
                || token.data + token.len > s + size - 1)
            {
                abort();
            }

            fuzz_verify(r, &token, "access");
        }

        break;

    case 1:
        rc = ngx_http_linguamate_refresh_token(r->pool, s, size - 1, &token,
                                               &field, &message);
        if (rc == NGX_OK) {
            fuzz_verify(r, &token, "refresh");

        } else if (rc == NGX_DECLINED && (field == NULL || message == NULL)) {
            abort();
        }

        break;

    case 2:
        fuzz_signed(r, (u_char *) "{\"alg\":\"HS256\",\"typ\":\"JWT\"}",
                    sizeof("{\"alg\":\"HS256\",\"typ\":\"JWT\"}") - 1,
                    data + 1, size - 1);
        break;

    default:
        sep = memchr(data + 1, 0xff, size - 1);

        if (sep) {
            fuzz_signed(r, data + 1, sep - data - 1, sep + 1,
                        data + size - sep - 1);
        }
    }

    free(s);
    fuzz_ngx_request_free(r);

    return 0;
}
