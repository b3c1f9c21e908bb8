/*
 * Copyright (C) ngx_linguamate developers
 *
 * Pure parsers over byte buffers.  Nothing here calls into nginx, so each
 * function can be unit-tested and fuzzed without a running server.
 */

#ifndef _NGX_HTTP_LINGUAMATE_PARSE_H_INCLUDED_
#define _NGX_HTTP_LINGUAMATE_PARSE_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>


#define NGX_HTTP_LINGUAMATE_CORR_ID_MAX  128
#define NGX_HTTP_LINGUAMATE_UUID_LEN     36
#define NGX_HTTP_LINGUAMATE_JWT_MAX      8192

/* longest token lifetime accepted by the duration parser: 10 years */
#define NGX_HTTP_LINGUAMATE_DURATION_MAX  (10LL * 366 * 86400)


/*
 * Called once per KEY=VALUE pair of a dotenv buffer; a non-zero return
 * stops the parse and is passed back to the caller.
 */
typedef int (*ngx_http_linguamate_dotenv_pt)(void *data,
    const unsigned char *key, size_t key_len,
    const unsigned char *val, size_t val_len, unsigned line);


int ngx_http_linguamate_parse_bool(const unsigned char *p, size_t len,
    int *out);
int ngx_http_linguamate_parse_uint(const unsigned char *p, size_t len,
    uint64_t max, uint64_t *out);
int ngx_http_linguamate_parse_duration(const unsigned char *p, size_t len,
    int64_t *seconds);
int ngx_http_linguamate_dotenv_parse(const unsigned char *buf, size_t len,
    unsigned char *scratch, ngx_http_linguamate_dotenv_pt handler,
    void *data, unsigned *err_line, const char **err);
int ngx_http_linguamate_corr_id_valid(const unsigned char *p, size_t len);
int ngx_http_linguamate_json_depth_ok(const unsigned char *p, size_t len,
    unsigned max);
int ngx_http_linguamate_origin_match(const unsigned char *pat, size_t plen,
    const unsigned char *org, size_t olen, int wildcards);
int ngx_http_linguamate_json_member_span(const unsigned char *p, size_t len,
    const char *const *path, size_t span[2]);
int ngx_http_linguamate_secret_key(const unsigned char *p, size_t len);
int ngx_http_linguamate_secret_value(const unsigned char *p, size_t len);
int ngx_http_linguamate_parse_iso8601(const unsigned char *p, size_t len,
    int64_t *ms);
void ngx_http_linguamate_uuid4(const unsigned char rnd[16],
    unsigned char out[NGX_HTTP_LINGUAMATE_UUID_LEN]);


#endif /* _NGX_HTTP_LINGUAMATE_PARSE_H_INCLUDED_ */
