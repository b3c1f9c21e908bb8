/*
 * Copyright (C) ngx_linguamate developers
 *
 * The Redis client on nginx's event loop (see the header).  The states:
 *
 *   IDLE       no connection; the reconnect timer is set (or the worker
 *              exits)
 *   CONNECTING a non-blocking connect() is under way (write event)
 *   TLS        the TLS handshake of rediss:// (nginx's ngx_ssl_handshake)
 *   HELLO      AUTH, SELECT and PING sent, their replies awaited
 *   READY      commands are accepted
 *
 * Replies come in the order of the commands (the protocol's rule, without
 * CLIENT REPLY), so the callbacks wait in a ring; a subscriber's messages
 * are the replies no command asked for, recognised by their shape.
 */


#include "ngx_http_linguamate_module.h"
#include "ngx_http_linguamate_redis.h"

#include <hiredis/hiredis.h>


#define NGX_HTTP_LINGUAMATE_REDIS_IDLE        0
#define NGX_HTTP_LINGUAMATE_REDIS_CONNECTING  1
#define NGX_HTTP_LINGUAMATE_REDIS_TLS         2
#define NGX_HTTP_LINGUAMATE_REDIS_HELLO       3
#define NGX_HTTP_LINGUAMATE_REDIS_READY       4

#define NGX_HTTP_LINGUAMATE_REDIS_CONNECT_TIMEOUT  2000

/* what a hostile or broken server can make us hold: elements of one
   array, bytes of replies not yet complete, bytes read in one pass */
#define NGX_HTTP_LINGUAMATE_REDIS_MAX_ELEMENTS     1048576
#define NGX_HTTP_LINGUAMATE_REDIS_MAX_UNREAD       (64 * 1024 * 1024)
#define NGX_HTTP_LINGUAMATE_REDIS_READ_PASS        (1024 * 1024)


typedef struct {
    ngx_http_linguamate_redis_reply_pt   handler;
    void                                *data;
} ngx_http_linguamate_redis_cb_t;


struct ngx_http_linguamate_redis_s {
    ngx_http_linguamate_redis_url_t     *url;
    const char                          *role;
    ngx_log_t                            log;
    ngx_uint_t                           state;
    ngx_uint_t                           gen;       /* bumped at close */
    ngx_uint_t                           next_addr;

    ngx_peer_connection_t                pc;
    ngx_connection_t                    *c;
    redisReader                         *reader;

    u_char                              *out;
    size_t                               out_len;
    size_t                               out_pos;
    size_t                               out_cap;

    ngx_http_linguamate_redis_cb_t      *ring;
    ngx_uint_t                           head;
    ngx_uint_t                           owed;
    ngx_uint_t                           hello;     /* replies to wait */

    ngx_event_t                          retry;
    ngx_msec_t                           backoff;
    ngx_uint_t                           failures;

#if (NGX_SSL)
    ngx_ssl_t                           *ssl;
#endif

    ngx_http_linguamate_redis_state_pt   on_state;
    ngx_http_linguamate_redis_reply_pt   on_push;
    void                                *data;
};


static void ngx_http_linguamate_redis_retry(ngx_event_t *ev);
static void ngx_http_linguamate_redis_read(ngx_event_t *rev);
static void ngx_http_linguamate_redis_write(ngx_event_t *wev);
static ngx_int_t ngx_http_linguamate_redis_test_connect(
    ngx_http_linguamate_redis_t *rc);
static void ngx_http_linguamate_redis_connected(
    ngx_http_linguamate_redis_t *rc);
static void *ngx_http_linguamate_redis_create_array(
    const redisReadTask *task, int elements);
#if (NGX_SSL)
static void ngx_http_linguamate_redis_tls_done(ngx_connection_t *c);
static ngx_int_t ngx_http_linguamate_redis_check_cert(
    ngx_http_linguamate_redis_t *rc, ngx_connection_t *c);
#endif
static void ngx_http_linguamate_redis_hello(ngx_http_linguamate_redis_t *rc);
static void ngx_http_linguamate_redis_hello_reply(
    ngx_http_linguamate_redis_t *rc, redisReply *reply, void *data);
static void ngx_http_linguamate_redis_lost(ngx_http_linguamate_redis_t *rc,
    const char *why);
static void ngx_http_linguamate_redis_close(ngx_http_linguamate_redis_t *rc);
static ngx_int_t ngx_http_linguamate_redis_flush(
    ngx_http_linguamate_redis_t *rc);
static ngx_int_t ngx_http_linguamate_redis_push(
    ngx_http_linguamate_redis_t *rc, int argc, const char **argv,
    const size_t *argvlen, ngx_http_linguamate_redis_reply_pt handler,
    void *data);
static ngx_uint_t ngx_http_linguamate_redis_is_message(redisReply *reply);
static ngx_int_t ngx_http_linguamate_redis_unescape(ngx_conf_t *cf,
    u_char *p, size_t len, ngx_str_t *out);
static redisReader *ngx_http_linguamate_redis_reader(void);


/*
 * hiredis' own reply functions, copied from its first reader, with
 * createArray bounded: "*2000000000" would make hiredis calloc 16 GB
 * before a single element came.  The same for every client of the
 * process, filled once, read-only afterwards.
 */
static redisReplyObjectFunctions  ngx_http_linguamate_redis_hiredis_fn;
static redisReplyObjectFunctions  ngx_http_linguamate_redis_fn;


/*
 * REDIS_URL: redis://[[USER]:PASSWORD@]HOST[:PORT][/DB] and rediss://.
 * The user and the password may be percent-encoded.  A host name is
 * resolved here, once, as nginx resolves proxy_pass's: at configuration,
 * never on the event loop.
 */

ngx_int_t
ngx_http_linguamate_redis_url_parse(ngx_conf_t *cf, ngx_str_t *value,
    ngx_http_linguamate_redis_url_t *u, ngx_str_t *err)
{
    u_char     *p, *last, *at, *colon, *slash;
    ngx_int_t   db;
    ngx_url_t   url;

    ngx_memzero(u, sizeof(ngx_http_linguamate_redis_url_t));

    p = value->data;
    last = p + value->len;

    if (value->len > 8 && ngx_strncasecmp(p, (u_char *) "redis://", 8) == 0)
    {
        p += 8;

    } else if (value->len > 9
               && ngx_strncasecmp(p, (u_char *) "rediss://", 9) == 0)
    {
#if (NGX_SSL)
        p += 9;
        u->tls = 1;
#else
        ngx_str_set(err, "rediss:// needs nginx built with OpenSSL");
        return NGX_ERROR;
#endif

    } else {
        ngx_str_set(err, "is not a redis:// or rediss:// URL");
        return NGX_ERROR;
    }

    /* the credentials: up to the last "@" before the path */

    slash = ngx_strlchr(p, last, '/');
    at = NULL;

    for (colon = p; colon < (slash ? slash : last); colon++) {
        if (*colon == '@') {
            at = colon;
        }
    }

    if (at) {
        colon = ngx_strlchr(p, at, ':');

        if (colon == NULL) {
            /* redis://PASSWORD@host, as some clients accept */
            if (ngx_http_linguamate_redis_unescape(cf, p, at - p,
                                                   &u->password)
                != NGX_OK)
            {
                ngx_str_set(err, "has a bad percent-encoding");
                return NGX_ERROR;
            }

        } else {
            if (ngx_http_linguamate_redis_unescape(cf, p, colon - p,
                                                   &u->user)
                != NGX_OK
                || ngx_http_linguamate_redis_unescape(cf, colon + 1,
                                                      at - colon - 1,
                                                      &u->password)
                   != NGX_OK)
            {
                ngx_str_set(err, "has a bad percent-encoding");
                return NGX_ERROR;
            }
        }

        p = at + 1;
    }

    /* the database */

    if (slash) {
        if (slash + 1 < last) {
            db = ngx_atoi(slash + 1, last - slash - 1);
            if (db == NGX_ERROR || db > 65535) {
                ngx_str_set(err, "has a database that is not a number");
                return NGX_ERROR;
            }

            u->db = (ngx_uint_t) db;
        }

        last = slash;
    }

    if (p == last) {
        ngx_str_set(err, "has no host");
        return NGX_ERROR;
    }

    ngx_memzero(&url, sizeof(ngx_url_t));

    url.url.data = p;
    url.url.len = last - p;
    url.default_port = 6379;

    if (ngx_parse_url(cf->pool, &url) != NGX_OK || url.naddrs == 0) {
        if (url.err) {
            err->data = (u_char *) url.err;
            err->len = ngx_strlen(url.err);

        } else {
            ngx_str_set(err, "has a host that does not resolve");
        }

        return NGX_ERROR;
    }

    u->host = url.host;
    u->port = url.port ? url.port : 6379;
    u->addrs = url.addrs;
    u->naddrs = url.naddrs;

    return NGX_OK;
}


static ngx_int_t
ngx_http_linguamate_redis_unescape(ngx_conf_t *cf, u_char *p, size_t len,
    ngx_str_t *out)
{
    u_char      *d;
    ngx_int_t    hi, lo;
    ngx_uint_t   i;

    out->data = ngx_pnalloc(cf->pool, len + 1);
    if (out->data == NULL) {
        return NGX_ERROR;
    }

    d = out->data;

    for (i = 0; i < len; i++) {
        if (p[i] != '%') {
            *d++ = p[i];
            continue;
        }

        if (i + 2 >= len) {
            return NGX_ERROR;
        }

        hi = ngx_hextoi(&p[i + 1], 1);
        lo = ngx_hextoi(&p[i + 2], 1);

        if (hi == NGX_ERROR || lo == NGX_ERROR) {
            return NGX_ERROR;
        }

        *d++ = (u_char) (hi * 16 + lo);
        i += 2;
    }

    out->len = d - out->data;
    *d = '\0';

    return NGX_OK;
}


ngx_http_linguamate_redis_t *
ngx_http_linguamate_redis_create(ngx_http_linguamate_redis_url_t *u,
    const char *role, ngx_log_t *log,
    ngx_http_linguamate_redis_state_pt on_state,
    ngx_http_linguamate_redis_reply_pt on_push, void *data)
{
    ngx_http_linguamate_redis_t  *rc;

    rc = ngx_calloc(sizeof(ngx_http_linguamate_redis_t), log);
    if (rc == NULL) {
        return NULL;
    }

    rc->ring = ngx_alloc(NGX_HTTP_LINGUAMATE_REDIS_INFLIGHT
                         * sizeof(ngx_http_linguamate_redis_cb_t), log);
    if (rc->ring == NULL) {
        ngx_free(rc);
        return NULL;
    }

    rc->url = u;
    rc->role = role;
    rc->log = *log;
    rc->on_state = on_state;
    rc->on_push = on_push;
    rc->data = data;
    rc->backoff = NGX_HTTP_LINGUAMATE_REDIS_BACKOFF_MIN;

    rc->retry.handler = ngx_http_linguamate_redis_retry;
    rc->retry.data = rc;
    rc->retry.log = &rc->log;
    rc->retry.cancelable = 1;

#if (NGX_SSL)
    if (u->tls) {
        rc->ssl = ngx_pcalloc(ngx_cycle->pool, sizeof(ngx_ssl_t));
        if (rc->ssl == NULL) {
            goto failed;
        }

        rc->ssl->log = &rc->log;

        if (ngx_ssl_create(rc->ssl, NGX_SSL_TLSv1_2 | NGX_SSL_TLSv1_3, NULL)
            != NGX_OK)
        {
            goto failed;
        }

        /* the system's CAs (SSL_CERT_FILE and SSL_CERT_DIR are honoured) */

        if (SSL_CTX_set_default_verify_paths(rc->ssl->ctx) != 1) {
            ngx_ssl_error(NGX_LOG_ERR, &rc->log, 0,
                          "linguamate: redis: no trusted certificates");
        }

        /*
         * The chain is verified all the same; tls_done reads the result:
         * an untrusted certificate is one rate-limited line of ours, not
         * OpenSSL's handshake failure logged by nginx at every attempt.
         */
        SSL_CTX_set_verify(rc->ssl->ctx, SSL_VERIFY_NONE, NULL);

        /* a command queued while SSL_write waits may move the buffer */
        SSL_CTX_set_mode(rc->ssl->ctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    }
#endif

    return rc;

#if (NGX_SSL)
failed:

    ngx_free(rc->ring);
    ngx_free(rc);

    return NULL;
#endif
}


void *
ngx_http_linguamate_redis_data(ngx_http_linguamate_redis_t *rc)
{
    return rc->data;
}


ngx_uint_t
ngx_http_linguamate_redis_ready(ngx_http_linguamate_redis_t *rc)
{
    return rc != NULL && rc->state == NGX_HTTP_LINGUAMATE_REDIS_READY;
}


void
ngx_http_linguamate_redis_connect(ngx_http_linguamate_redis_t *rc)
{
    ngx_int_t          rv;
    ngx_addr_t        *addr;
    ngx_connection_t  *c;

    if (rc->state != NGX_HTTP_LINGUAMATE_REDIS_IDLE) {
        return;
    }

    if (ngx_exiting || ngx_quit || ngx_terminate) {
        return;
    }

    addr = &rc->url->addrs[rc->next_addr++ % rc->url->naddrs];

    ngx_memzero(&rc->pc, sizeof(ngx_peer_connection_t));

    rc->pc.sockaddr = addr->sockaddr;
    rc->pc.socklen = addr->socklen;
    rc->pc.name = &addr->name;
    rc->pc.get = ngx_event_get_peer;
    rc->pc.log = &rc->log;
    /* nginx's own "connect() failed" at every retry would be noise: ours
       are rate-limited */
    rc->pc.log_error = NGX_ERROR_INFO;

    /* before the connect: Redis may speak first ("-DENIED ...") */

    if (rc->reader) {
        redisReaderFree(rc->reader);
    }

    rc->reader = ngx_http_linguamate_redis_reader();
    if (rc->reader == NULL) {
        ngx_http_linguamate_redis_lost(rc, "no memory");
        return;
    }

    rc->state = NGX_HTTP_LINGUAMATE_REDIS_CONNECTING;

    rv = ngx_event_connect_peer(&rc->pc);

    if (rv == NGX_ERROR || rv == NGX_BUSY || rv == NGX_DECLINED
        || rc->pc.connection == NULL)
    {
        /* ngx_event_connect_peer() closed what it opened */
        rc->c = NULL;
        ngx_http_linguamate_redis_lost(rc, "could not connect");
        return;
    }

    c = rc->pc.connection;
    rc->c = c;

    c->data = rc;
    c->log = &rc->log;
    c->read->log = c->log;
    c->write->log = c->log;
    c->read->handler = ngx_http_linguamate_redis_read;
    c->write->handler = ngx_http_linguamate_redis_write;
    c->read->cancelable = 1;
    c->write->cancelable = 1;

    /*
     * Not idle: a graceful shutdown leaves it open, so that what requests
     * in flight change still reaches Redis; the timers are cancelable,
     * the worker exits anyway, and exit_process destroys the client.
     */

    c->pool = ngx_create_pool(512, c->log);
    if (c->pool == NULL) {
        ngx_http_linguamate_redis_lost(rc, "no memory");
        return;
    }

    if (rv == NGX_AGAIN) {
        ngx_add_timer(c->write, NGX_HTTP_LINGUAMATE_REDIS_CONNECT_TIMEOUT);
        return;
    }

    ngx_http_linguamate_redis_connected(rc);
}


static void
ngx_http_linguamate_redis_retry(ngx_event_t *ev)
{
    ngx_http_linguamate_redis_connect(ev->data);
}


static void
ngx_http_linguamate_redis_connected(ngx_http_linguamate_redis_t *rc)
{
    ngx_connection_t  *c;

    c = rc->c;

    if (c->write->timer_set) {
        ngx_del_timer(c->write);
    }

#if (NGX_SSL)
    if (rc->ssl) {
        ngx_int_t  rv;

        rc->state = NGX_HTTP_LINGUAMATE_REDIS_TLS;

        if (ngx_ssl_create_connection(rc->ssl, c, NGX_SSL_BUFFER
                                                  | NGX_SSL_CLIENT)
            != NGX_OK)
        {
            ngx_http_linguamate_redis_lost(rc, "TLS setup failed");
            return;
        }

        /* no SNI for an IP address (RFC 6066) */

        if (rc->url->host.len && rc->url->host.len < 256
            && rc->url->host.data[0] != '['
            && ngx_inet_addr(rc->url->host.data, rc->url->host.len)
               == INADDR_NONE)
        {
            u_char  name[256];

            ngx_memcpy(name, rc->url->host.data, rc->url->host.len);
            name[rc->url->host.len] = '\0';

            (void) SSL_set_tlsext_host_name(c->ssl->connection,
                                            (char *) name);
        }

        rv = ngx_ssl_handshake(c);

        if (rv == NGX_AGAIN) {
            c->ssl->handler = ngx_http_linguamate_redis_tls_done;
            ngx_add_timer(c->write,
                          NGX_HTTP_LINGUAMATE_REDIS_CONNECT_TIMEOUT);
            return;
        }

        ngx_http_linguamate_redis_tls_done(c);
        return;
    }
#endif

    ngx_http_linguamate_redis_hello(rc);
}


#if (NGX_SSL)

static void
ngx_http_linguamate_redis_tls_done(ngx_connection_t *c)
{
    ngx_http_linguamate_redis_t  *rc;

    rc = c->data;

    if (c->write->timer_set) {
        ngx_del_timer(c->write);
    }

    if (!c->ssl->handshaked) {
        ngx_http_linguamate_redis_lost(rc, "TLS handshake failed");
        return;
    }

    if (ngx_http_linguamate_redis_check_cert(rc, c) != NGX_OK) {
        return;
    }

    c->read->handler = ngx_http_linguamate_redis_read;
    c->write->handler = ngx_http_linguamate_redis_write;

    ngx_http_linguamate_redis_hello(rc);
}


/* NGX_OK, or NGX_ERROR: lost */

static ngx_int_t
ngx_http_linguamate_redis_check_cert(ngx_http_linguamate_redis_t *rc,
    ngx_connection_t *c)
{
    long         vr;
    X509        *cert;
    ngx_str_t   *host;
    ngx_uint_t   ok, literal;
    u_char       ip[NGX_SOCKADDR_STRLEN];

    host = &rc->url->host;

    vr = SSL_get_verify_result(c->ssl->connection);

    if (vr != X509_V_OK) {
        if (rc->failures % 10 == 0) {
            ngx_log_error(NGX_LOG_ERR, c->log, 0,
                          "linguamate: redis: certificate of \"%V\" not "
                          "trusted: (%l:%s)", host, vr,
                          X509_verify_cert_error_string(vr));
        }

        ngx_http_linguamate_redis_lost(rc, "TLS certificate not trusted");
        return NGX_ERROR;
    }

    /* an IP literal ("127.0.0.1", "[::1]") is checked against the IP
       addresses of the certificate, a name against its names */

    literal = 0;

    if (host->len >= 2 && host->data[0] == '['
        && host->len - 2 < sizeof(ip))
    {
        ngx_memcpy(ip, host->data + 1, host->len - 2);
        ip[host->len - 2] = '\0';
        literal = 1;

    } else if (host->len < sizeof(ip)
               && ngx_inet_addr(host->data, host->len) != INADDR_NONE)
    {
        ngx_memcpy(ip, host->data, host->len);
        ip[host->len] = '\0';
        literal = 1;
    }

    if (literal) {
        cert = SSL_get_peer_certificate(c->ssl->connection);
        ok = (cert != NULL
              && X509_check_ip_asc(cert, (const char *) ip, 0) == 1);

        if (cert) {
            X509_free(cert);
        }

    } else {
        ok = (ngx_ssl_check_host(c, host) == NGX_OK);
    }

    if (!ok) {
        if (rc->failures % 10 == 0) {
            ngx_log_error(NGX_LOG_ERR, c->log, 0,
                          "linguamate: redis: certificate is not of \"%V\"",
                          host);
        }

        ngx_http_linguamate_redis_lost(rc, "TLS certificate of another host");
        return NGX_ERROR;
    }

    return NGX_OK;
}

#endif


/* AUTH, SELECT, PING; READY when all answered */

static void
ngx_http_linguamate_redis_hello(ngx_http_linguamate_redis_t *rc)
{
    int          argc;
    u_char       dbs[NGX_INT_T_LEN];
    size_t       lens[3];
    const char  *argv[3];

    rc->out_len = 0;
    rc->out_pos = 0;
    rc->head = 0;
    rc->owed = 0;
    rc->hello = 0;
    rc->state = NGX_HTTP_LINGUAMATE_REDIS_HELLO;

    if (rc->url->password.len) {
        argc = 0;
        argv[argc] = "AUTH";
        lens[argc++] = 4;

        if (rc->url->user.len) {
            argv[argc] = (const char *) rc->url->user.data;
            lens[argc++] = rc->url->user.len;
        }

        argv[argc] = (const char *) rc->url->password.data;
        lens[argc++] = rc->url->password.len;

        if (ngx_http_linguamate_redis_push(rc, argc, argv, lens,
                ngx_http_linguamate_redis_hello_reply, (void *) "AUTH")
            != NGX_OK)
        {
            ngx_http_linguamate_redis_lost(rc, "no memory");
            return;
        }

        rc->hello++;
    }

    if (rc->url->db) {
        argv[0] = "SELECT";
        lens[0] = 6;
        argv[1] = (const char *) dbs;
        lens[1] = ngx_sprintf(dbs, "%ui", rc->url->db) - dbs;

        if (ngx_http_linguamate_redis_push(rc, 2, argv, lens,
                ngx_http_linguamate_redis_hello_reply, (void *) "SELECT")
            != NGX_OK)
        {
            ngx_http_linguamate_redis_lost(rc, "no memory");
            return;
        }

        rc->hello++;
    }

    /* READY on the PING's reply, not on the TCP connect: a server that
       accepts and closes (or refuses) never looks up */

    argv[0] = "PING";
    lens[0] = 4;

    if (ngx_http_linguamate_redis_push(rc, 1, argv, lens,
            ngx_http_linguamate_redis_hello_reply, (void *) "PING")
        != NGX_OK)
    {
        ngx_http_linguamate_redis_lost(rc, "no memory");
        return;
    }

    rc->hello++;

    if (ngx_http_linguamate_redis_flush(rc) == NGX_ERROR) {
        ngx_http_linguamate_redis_lost(rc, "send failed");
    }
}


static void
ngx_http_linguamate_redis_hello_reply(ngx_http_linguamate_redis_t *rc,
    redisReply *reply, void *data)
{
    if (reply == NULL) {
        return;                              /* lost: handled there */
    }

    if (reply->type == REDIS_REPLY_ERROR) {
        if (rc->failures % 10 == 0) {
            ngx_log_error(NGX_LOG_ERR, &rc->log, 0,
                          "linguamate: redis: %s refused: %*s",
                          (char *) data, (size_t) reply->len, reply->str);
        }

        ngx_http_linguamate_redis_lost(rc, "refused");
        return;
    }

    if (reply->type != REDIS_REPLY_STATUS) {
        ngx_http_linguamate_redis_lost(rc, "unexpected reply to hello");
        return;
    }

    if (--rc->hello) {
        return;
    }

    rc->state = NGX_HTTP_LINGUAMATE_REDIS_READY;
    rc->backoff = NGX_HTTP_LINGUAMATE_REDIS_BACKOFF_MIN;

    if (rc->failures) {
        ngx_log_error(NGX_LOG_NOTICE, &rc->log, 0,
                      "linguamate: redis %s connection to %V:%d is back "
                      "after %ui failed attempts", rc->role, &rc->url->host,
                      (int) rc->url->port, rc->failures);
    }

    rc->failures = 0;

    if (rc->on_state) {
        rc->on_state(rc, 1);
    }
}


/* a fresh reader for every connection: nothing of the last one is read */

static redisReader *
ngx_http_linguamate_redis_reader(void)
{
    redisReader  *r;

    r = redisReaderCreate();
    if (r == NULL) {
        return NULL;
    }

    if (ngx_http_linguamate_redis_fn.createArray == NULL) {
        if (r->fn == NULL || r->fn->createArray == NULL) {
            redisReaderFree(r);
            return NULL;
        }

        ngx_http_linguamate_redis_hiredis_fn = *r->fn;
        ngx_http_linguamate_redis_fn = *r->fn;
        ngx_http_linguamate_redis_fn.createArray =
                                     ngx_http_linguamate_redis_create_array;
    }

    r->fn = &ngx_http_linguamate_redis_fn;

    return r;
}


/* NULL makes the reader fail ("out of memory"): a protocol error here */

static void *
ngx_http_linguamate_redis_create_array(const redisReadTask *task,
    int elements)
{
    if (elements < 0 || elements > NGX_HTTP_LINGUAMATE_REDIS_MAX_ELEMENTS) {
        return NULL;
    }

    return ngx_http_linguamate_redis_hiredis_fn.createArray(task, elements);
}


ngx_int_t
ngx_http_linguamate_redis_command(ngx_http_linguamate_redis_t *rc, int argc,
    const char **argv, const size_t *argvlen,
    ngx_http_linguamate_redis_reply_pt handler, void *data)
{
    ngx_int_t  rv;

    if (rc == NULL || rc->state != NGX_HTTP_LINGUAMATE_REDIS_READY) {
        return NGX_DECLINED;
    }

    if (rc->owed >= NGX_HTTP_LINGUAMATE_REDIS_INFLIGHT) {
        return NGX_BUSY;
    }

    rv = ngx_http_linguamate_redis_push(rc, argc, argv, argvlen, handler,
                                        data);
    if (rv != NGX_OK) {
        return rv;
    }

    if (ngx_http_linguamate_redis_flush(rc) == NGX_ERROR) {
        /* the callback is called (with NULL) from here */
        ngx_http_linguamate_redis_lost(rc, "send failed");
    }

    return NGX_OK;
}


/* format a command into the output buffer and queue its callback */

static ngx_int_t
ngx_http_linguamate_redis_push(ngx_http_linguamate_redis_t *rc, int argc,
    const char **argv, const size_t *argvlen,
    ngx_http_linguamate_redis_reply_pt handler, void *data)
{
    int                              len;
    char                            *cmd;
    u_char                          *nout;
    size_t                           need, cap;
    ngx_http_linguamate_redis_cb_t  *cb;

    len = redisFormatCommandArgv(&cmd, argc, argv, argvlen);
    if (len < 0) {
        return NGX_ERROR;
    }

    if (rc->out_pos && rc->out_pos == rc->out_len) {
        rc->out_pos = 0;
        rc->out_len = 0;
    }

    need = rc->out_len + (size_t) len;

    if (need > rc->out_cap) {
        cap = ngx_max(need, ngx_max(rc->out_cap * 2, 4096));

        nout = ngx_alloc(cap, &rc->log);
        if (nout == NULL) {
            free(cmd);
            return NGX_ERROR;
        }

        if (rc->out) {
            ngx_memcpy(nout, rc->out + rc->out_pos,
                       rc->out_len - rc->out_pos);
            ngx_free(rc->out);
        }

        rc->out_len -= rc->out_pos;
        rc->out_pos = 0;
        rc->out = nout;
        rc->out_cap = cap;
    }

    ngx_memcpy(rc->out + rc->out_len, cmd, len);
    rc->out_len += len;
    free(cmd);

    cb = &rc->ring[(rc->head + rc->owed) % NGX_HTTP_LINGUAMATE_REDIS_INFLIGHT];
    cb->handler = handler;
    cb->data = data;

    if (rc->owed++ == 0 && rc->c) {
        /* a reply is owed: it must come in time */
        ngx_add_timer(rc->c->read, NGX_HTTP_LINGUAMATE_REDIS_TIMEOUT);
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_linguamate_redis_flush(ngx_http_linguamate_redis_t *rc)
{
    ssize_t            n;
    ngx_connection_t  *c;

    c = rc->c;

    while (rc->out_pos < rc->out_len) {
        n = c->send(c, rc->out + rc->out_pos, rc->out_len - rc->out_pos);

        if (n == NGX_AGAIN) {
            if (ngx_handle_write_event(c->write, 0) != NGX_OK) {
                return NGX_ERROR;
            }

            return NGX_AGAIN;
        }

        if (n == NGX_ERROR || n == 0) {
            return NGX_ERROR;
        }

        rc->out_pos += n;
    }

    rc->out_pos = 0;
    rc->out_len = 0;

    return NGX_OK;
}


/* the non-blocking connect's outcome: NGX_OK, or NGX_ERROR (lost) */

static ngx_int_t
ngx_http_linguamate_redis_test_connect(ngx_http_linguamate_redis_t *rc)
{
    int                err;
    socklen_t          len;
    ngx_connection_t  *c;

    c = rc->c;

    if (c->write->timedout) {
        ngx_http_linguamate_redis_lost(rc, "connect timed out");
        return NGX_ERROR;
    }

    err = 0;
    len = sizeof(int);

    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, (void *) &err, &len) == -1) {
        err = ngx_socket_errno;
    }

    if (err) {
        c->log->action = "connecting to redis";
        ngx_log_error(NGX_LOG_INFO, c->log, err, "connect() failed");
        ngx_http_linguamate_redis_lost(rc, "could not connect");
        return NGX_ERROR;
    }

    return NGX_OK;
}


static void
ngx_http_linguamate_redis_write(ngx_event_t *wev)
{
    ngx_connection_t             *c;
    ngx_http_linguamate_redis_t  *rc;

    c = wev->data;
    rc = c->data;

    if (rc->state == NGX_HTTP_LINGUAMATE_REDIS_CONNECTING) {
        if (ngx_http_linguamate_redis_test_connect(rc) == NGX_OK) {
            ngx_http_linguamate_redis_connected(rc);
        }

        return;
    }

    if (wev->timedout) {
        ngx_http_linguamate_redis_lost(rc, "TLS handshake timed out");
        return;
    }

    if (ngx_http_linguamate_redis_flush(rc) == NGX_ERROR) {
        ngx_http_linguamate_redis_lost(rc, "send failed");
    }
}


static ngx_uint_t
ngx_http_linguamate_redis_is_message(redisReply *reply)
{
    redisReply  *kind;

    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 3) {
        return 0;
    }

    kind = reply->element[0];

    return kind->type == REDIS_REPLY_STRING && kind->len == 7
           && ngx_strncmp(kind->str, "message", 7) == 0;
}


static void
ngx_http_linguamate_redis_read(ngx_event_t *rev)
{
    u_char                          buf[16384];
    void                           *reply;
    size_t                          total;
    ssize_t                         n;
    ngx_uint_t                      gen;
    ngx_connection_t               *c;
    ngx_http_linguamate_redis_t    *rc;
    ngx_http_linguamate_redis_cb_t  cb;

    c = rev->data;
    rc = c->data;

    if (c->close) {
        /* closed for the worker's exit: not a loss of Redis */
        ngx_http_linguamate_redis_lost(rc, NULL);
        return;
    }

    gen = rc->gen;

    if (rc->state == NGX_HTTP_LINGUAMATE_REDIS_CONNECTING) {
        /* Redis spoke first ("-DENIED", "-ERR max number of clients"),
           before the write event said the connect was done */

        if (ngx_http_linguamate_redis_test_connect(rc) != NGX_OK) {
            return;
        }

        ngx_http_linguamate_redis_connected(rc);

        if (rc->gen != gen
            || rc->state != NGX_HTTP_LINGUAMATE_REDIS_HELLO)
        {
            /* lost, or the TLS handshake has the events now */
            return;
        }
    }

    if (rev->timedout) {
        ngx_http_linguamate_redis_lost(rc, "no reply in time");
        return;
    }

    if (rc->reader == NULL) {
        ngx_http_linguamate_redis_lost(rc, "no reader");
        return;
    }

    total = 0;

    for ( ;; ) {
        if (total >= NGX_HTTP_LINGUAMATE_REDIS_READ_PASS) {
            /* the rest on the next turn of the loop: the timers first */
            ngx_post_event(rev, &ngx_posted_events);
            return;
        }

        n = c->recv(c, buf, sizeof(buf));

        if (n == NGX_AGAIN) {
            break;
        }

        if (n == 0 || n == NGX_ERROR) {
            ngx_http_linguamate_redis_lost(rc, n == 0 ? "closed by redis"
                                                      : "read failed");
            return;
        }

        total += n;

        if (rc->reader->len - rc->reader->pos + n
            > NGX_HTTP_LINGUAMATE_REDIS_MAX_UNREAD)
        {
            ngx_http_linguamate_redis_lost(rc, "reply too large");
            return;
        }

        if (redisReaderFeed(rc->reader, (const char *) buf, n) != REDIS_OK) {
            ngx_http_linguamate_redis_lost(rc, "no memory");
            return;
        }

        for ( ;; ) {
            reply = NULL;

            if (redisReaderGetReply(rc->reader, &reply) != REDIS_OK) {
                ngx_http_linguamate_redis_lost(rc, "protocol error");
                return;
            }

            if (reply == NULL) {
                break;
            }

            if (rc->on_push
                && rc->state == NGX_HTTP_LINGUAMATE_REDIS_READY
                && ngx_http_linguamate_redis_is_message(reply))
            {
                rc->on_push(rc, reply, rc->data);

            } else if (rc->owed == 0) {
                freeReplyObject(reply);
                ngx_http_linguamate_redis_lost(rc, "a reply nobody asked");
                return;

            } else {
                cb = rc->ring[rc->head];
                rc->head = (rc->head + 1) % NGX_HTTP_LINGUAMATE_REDIS_INFLIGHT;
                rc->owed--;

                if (rev->timer_set) {
                    ngx_del_timer(rev);
                }

                if (rc->owed) {
                    ngx_add_timer(rev, NGX_HTTP_LINGUAMATE_REDIS_TIMEOUT);
                }

                cb.handler(rc, reply, cb.data);
            }

            freeReplyObject(reply);

            if (rc->gen != gen) {
                /* a callback's command lost the connection */
                return;
            }
        }
    }

    if (ngx_handle_read_event(rev, 0) != NGX_OK) {
        ngx_http_linguamate_redis_lost(rc, "event failed");
    }
}


/* close, fail what is owed, retry later (unless the worker exits) */

static void
ngx_http_linguamate_redis_lost(ngx_http_linguamate_redis_t *rc,
    const char *why)
{
    ngx_msec_t                      delay;
    ngx_uint_t                      was_ready, level;
    ngx_http_linguamate_redis_cb_t  cb;

    was_ready = (rc->state == NGX_HTTP_LINGUAMATE_REDIS_READY);

    ngx_http_linguamate_redis_close(rc);

    while (rc->owed) {
        cb = rc->ring[rc->head];
        rc->head = (rc->head + 1) % NGX_HTTP_LINGUAMATE_REDIS_INFLIGHT;
        rc->owed--;
        cb.handler(rc, NULL, cb.data);
    }

    if (why == NULL) {
        /* the worker exits (destroy): Redis is not down for that */
        return;
    }

    if (was_ready && rc->on_state) {
        rc->on_state(rc, 0);
    }

    if (ngx_exiting || ngx_quit || ngx_terminate) {
        return;
    }

    /* the first failure, then one line in ten */

    level = was_ready ? NGX_LOG_ERR : NGX_LOG_WARN;

    if (rc->failures++ % 10 == 0) {
        ngx_log_error(level, &rc->log, 0,
                      "linguamate: redis %s connection to %V:%d: %s; "
                      "retrying in %M ms", rc->role, &rc->url->host,
                      (int) rc->url->port, why, rc->backoff);
    }

    /* 100 ms, doubling to 5 s, each with up to a quarter of jitter */

    delay = rc->backoff + (ngx_random() % (rc->backoff / 4 + 1));
    rc->backoff = ngx_min(rc->backoff * 2,
                          NGX_HTTP_LINGUAMATE_REDIS_BACKOFF_MAX);

    if (!rc->retry.timer_set) {
        ngx_add_timer(&rc->retry, delay);
    }
}


static void
ngx_http_linguamate_redis_close(ngx_http_linguamate_redis_t *rc)
{
    ngx_pool_t        *pool;
    ngx_connection_t  *c;

    rc->gen++;
    rc->state = NGX_HTTP_LINGUAMATE_REDIS_IDLE;
    rc->out_len = 0;
    rc->out_pos = 0;
    rc->hello = 0;

    c = rc->c;
    rc->c = NULL;

    if (c == NULL) {
        return;
    }

#if (NGX_SSL)
    if (c->ssl) {
        /* no close_notify: a send that would block would leave
           ngx_ssl_shutdown's handlers on a connection closed here */
        c->ssl->no_wait_shutdown = 1;
        c->ssl->no_send_shutdown = 1;
        (void) ngx_ssl_shutdown(c);
    }
#endif

    pool = c->pool;

    ngx_close_connection(c);

    if (pool) {
        ngx_destroy_pool(pool);
    }
}


/* a caller that cannot go on with this connection (a refused SUBSCRIBE,
   a read-only replica): closed, retried after the backoff */

void
ngx_http_linguamate_redis_drop(ngx_http_linguamate_redis_t *rc,
    const char *why)
{
    if (rc != NULL && rc->state != NGX_HTTP_LINGUAMATE_REDIS_IDLE) {
        ngx_http_linguamate_redis_lost(rc, why);
    }
}


void
ngx_http_linguamate_redis_destroy(ngx_http_linguamate_redis_t *rc)
{
    if (rc == NULL) {
        return;
    }

    if (rc->retry.timer_set) {
        ngx_del_timer(&rc->retry);
    }

    rc->on_state = NULL;
    ngx_http_linguamate_redis_lost(rc, NULL);

    if (rc->reader) {
        redisReaderFree(rc->reader);
    }

#if (NGX_SSL)
    if (rc->ssl && rc->ssl->ctx) {
        SSL_CTX_free(rc->ssl->ctx);
    }
#endif

    ngx_free(rc->out);
    ngx_free(rc->ring);
    ngx_free(rc);
}
