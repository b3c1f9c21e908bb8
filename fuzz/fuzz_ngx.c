/*
 * Copyright (C) ngx_linguamate developers
 *
 * Thin stand-ins for the parts of a running nginx that the module's
 * parsers touch, so that a harness can include a module source file and
 * call its static parsers directly.  nginx's own ngx_string.c,
 * ngx_palloc.c, ngx_inet.c ... (1.22.1, from Debian's source archive) are
 * linked as they are; only the process-wide state is stood in for here.
 * Anything else a module file refers to is left out by the linker
 * (-ffunction-sections, --gc-sections) as long as no parser reaches it.
 */

#include "fuzz_ngx.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>


static ngx_time_t    fuzz_ngx_time;
static ngx_log_t     fuzz_ngx_log;
static ngx_cycle_t   fuzz_ngx_cycle;

volatile ngx_time_t   *ngx_cached_time = &fuzz_ngx_time;
volatile ngx_msec_t    ngx_current_msec;
volatile ngx_cycle_t  *ngx_cycle = &fuzz_ngx_cycle;
ngx_uint_t             ngx_pagesize = 4096;
ngx_uint_t             ngx_pagesize_shift = 12;
ngx_uint_t             ngx_cacheline_size = 64;
ngx_int_t              ngx_ncpu = 1;

ngx_module_t           ngx_http_linguamate_module;
ngx_module_t           ngx_core_module;        /* the state layer's chown */
ngx_pid_t              ngx_pid = 1;            /* FILE.tmp.PID */

static void           *fuzz_ngx_main_conf[1];
static ngx_pool_t     *fuzz_ngx_pool;


void
ngx_log_error_core(ngx_uint_t level, ngx_log_t *log, ngx_err_t err,
    const char *fmt, ...)
{
    /* the message is formatted (its arguments are read), then dropped */

    u_char   buf[NGX_MAX_ERROR_STR];
    va_list  args;

    va_start(args, fmt);
    (void) ngx_vslprintf(buf, buf + sizeof(buf), fmt, args);
    va_end(args);
}


void *
ngx_alloc(size_t size, ngx_log_t *log)
{
    return malloc(size);
}


void *
ngx_calloc(size_t size, ngx_log_t *log)
{
    return calloc(1, size);
}


void *
ngx_memalign(size_t alignment, size_t size, ngx_log_t *log)
{
    void  *p;

    if (posix_memalign(&p, alignment, size) != 0) {
        return NULL;
    }

    return p;
}


ngx_http_request_t *
fuzz_ngx_request(ngx_http_linguamate_main_conf_t *lmcf)
{
    ngx_http_request_t  *r;
    ngx_connection_t    *c;
    ngx_pool_t          *pool;

    fuzz_ngx_time.sec = time(NULL);
    fuzz_ngx_log.log_level = NGX_LOG_DEBUG;
    fuzz_ngx_cycle.log = &fuzz_ngx_log;

    pool = ngx_create_pool(1024, &fuzz_ngx_log);
    if (pool == NULL) {
        abort();
    }

    r = ngx_pcalloc(pool, sizeof(ngx_http_request_t));
    c = ngx_pcalloc(pool, sizeof(ngx_connection_t));
    if (r == NULL || c == NULL) {
        abort();
    }

    fuzz_ngx_pool = pool;
    c->log = &fuzz_ngx_log;
    c->pool = pool;
    r->connection = c;
    r->pool = pool;
    fuzz_ngx_main_conf[0] = lmcf;
    r->main_conf = fuzz_ngx_main_conf;

    return r;
}


void
fuzz_ngx_request_free(ngx_http_request_t *r)
{
    ngx_destroy_pool(r->pool);
}


u_char *
fuzz_ngx_strdup(const uint8_t *data, size_t size)
{
    u_char  *p;

    p = malloc(size + 1);
    if (p == NULL) {
        abort();
    }

    memcpy(p, data, size);
    p[size] = '\0';

    return p;
}


void ngx_cdecl
ngx_conf_log_error(ngx_uint_t level, ngx_conf_t *cf, ngx_err_t err,
    const char *fmt, ...)
{
    u_char   buf[NGX_MAX_CONF_ERRSTR];
    va_list  args;

    va_start(args, fmt);
    (void) ngx_vslprintf(buf, buf + sizeof(buf), fmt, args);
    va_end(args);
}


ngx_conf_t *
fuzz_ngx_conf(ngx_http_request_t *r)
{
    ngx_conf_t  *cf;

    cf = ngx_pcalloc(r->pool, sizeof(ngx_conf_t));
    if (cf == NULL) {
        abort();
    }

    cf->pool = r->pool;
    cf->temp_pool = r->pool;
    cf->log = r->connection->log;
    cf->cycle = (ngx_cycle_t *) ngx_cycle;

    return cf;
}


/* a request body of the bytes of data, cut into pieces at each cut */

ngx_chain_t *
fuzz_ngx_chain(ngx_pool_t *pool, const uint8_t *data, size_t size,
    size_t cut)
{
    size_t        n;
    ngx_buf_t    *b;
    ngx_chain_t  *head, **last, *cl;

    head = NULL;
    last = &head;

    do {
        n = (cut && cut < size) ? cut : size;

        b = ngx_calloc_buf(pool);
        cl = ngx_alloc_chain_link(pool);
        if (b == NULL || cl == NULL) {
            abort();
        }

        /* each piece in its own exact-size allocation */

        b->start = ngx_pnalloc(pool, n ? n : 1);
        if (b->start == NULL) {
            abort();
        }

        ngx_memcpy(b->start, data, n);
        b->pos = b->start;
        b->last = b->start + n;
        b->end = b->last;
        b->memory = 1;

        cl->buf = b;
        cl->next = NULL;
        *last = cl;
        last = &cl->next;

        data += n;
        size -= n;

    } while (size);

    cl->buf->last_buf = 1;

    return head;
}


/* nginx's prefix is /usr/share/nginx/ here: a relative name goes under it */

ngx_int_t
ngx_conf_full_name(ngx_cycle_t *cycle, ngx_str_t *name, ngx_uint_t conf_prefix)
{
    u_char  *p;

    if (name->len && name->data[0] == '/') {
        return NGX_OK;
    }

    p = ngx_pnalloc(fuzz_ngx_pool, sizeof("/usr/share/nginx/") - 1
                                   + name->len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(ngx_cpymem(p, "/usr/share/nginx/", 17), name->data, name->len);
    name->data = p;
    name->len += 17;

    return NGX_OK;
}


ngx_str_t
fuzz_ngx_jwt(ngx_pool_t *pool, const char *secret, const uint8_t *hdr,
    size_t hlen, const uint8_t *data, size_t size)
{
    u_char        mac[EVP_MAX_MD_SIZE];
    unsigned int  mlen;
    ngx_str_t     token, src, dst;

    token.data = ngx_pnalloc(pool, ngx_base64_encoded_length(hlen) + 2
                                   + ngx_base64_encoded_length(size) + 64);
    if (token.data == NULL) {
        abort();
    }

    dst.data = token.data;
    src.data = (u_char *) hdr;
    src.len = hlen;
    ngx_encode_base64url(&dst, &src);
    dst.data += dst.len;
    *dst.data++ = '.';
    src.data = (u_char *) data;
    src.len = size;
    ngx_encode_base64url(&dst, &src);
    token.len = dst.data + dst.len - token.data;

    if (HMAC(EVP_sha256(), secret, (int) ngx_strlen(secret), token.data,
             token.len, mac, &mlen) == NULL)
    {
        abort();
    }

    dst.data = token.data + token.len;
    *dst.data++ = '.';
    src.data = mac;
    src.len = mlen;
    ngx_encode_base64url(&dst, &src);
    token.len = dst.data + dst.len - token.data;

    return token;
}
