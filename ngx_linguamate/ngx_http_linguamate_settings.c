/*
 * Copyright (C) ngx_linguamate developers
 *
 * Settings: the contract's environment names, read from directives, the
 * process environment and a dotenv file, in that order of precedence, and
 * validated once at configuration time so that "nginx -t" names a bad
 * setting and a reload with one keeps the old configuration serving.
 */


#include "ngx_http_linguamate_module.h"
#include "ngx_http_linguamate_settings.h"


typedef struct {
    ngx_conf_t                       *cf;
    ngx_http_linguamate_raw_t        *file_raw;
    ngx_str_t                        *file;
} ngx_http_linguamate_dotenv_ctx_t;


static int ngx_http_linguamate_dotenv_pair(void *data,
    const unsigned char *key, size_t key_len, const unsigned char *val,
    size_t val_len, unsigned line);
static ngx_int_t ngx_http_linguamate_read_env_file(ngx_conf_t *cf,
    ngx_http_linguamate_main_conf_t *lmcf, ngx_http_linguamate_raw_t *raw);
static const char *ngx_http_linguamate_parse_value(ngx_conf_t *cf,
    ngx_http_linguamate_main_conf_t *lmcf,
    ngx_http_linguamate_setting_t *s, ngx_str_t *value);
static const char *ngx_http_linguamate_parse_cidrs(ngx_conf_t *cf,
    ngx_str_t *value, ngx_array_t **out);
static const char *ngx_http_linguamate_parse_origins(ngx_conf_t *cf,
    ngx_str_t *value, ngx_array_t **out);
static const char *ngx_http_linguamate_check_url(ngx_str_t *value);
static ngx_int_t ngx_http_linguamate_check_secrets(ngx_conf_t *cf,
    ngx_http_linguamate_main_conf_t *lmcf);
static void ngx_http_linguamate_warn(ngx_conf_t *cf,
    ngx_http_linguamate_main_conf_t *lmcf, const char *fmt, ...);
static ngx_msec_t ngx_http_linguamate_process_start(void);


#define NGX_HTTP_LINGUAMATE_SETTING_DESC(env, dir, kind, def, field, lo, hi) \
    { ngx_string(#env), ngx_string("linguamate_" #dir),                      \
      NGX_HTTP_LINGUAMATE_KIND_##kind, def,                                  \
      offsetof(ngx_http_linguamate_main_conf_t, field), lo, hi },

ngx_http_linguamate_setting_t  ngx_http_linguamate_settings[] = {
    NGX_HTTP_LINGUAMATE_SETTINGS(NGX_HTTP_LINGUAMATE_SETTING_DESC)
    { ngx_null_string, ngx_null_string, 0, NULL, 0, 0, 0 }
};


static ngx_str_t  ngx_http_linguamate_env_names[] = {
    ngx_string("development"),
    ngx_string("test"),
    ngx_string("staging"),
    ngx_string("production"),
};


/*
 * A fixed, documented development secret: tokens survive restarts while
 * developing; production refuses to start without a real one.
 */
static ngx_str_t  ngx_http_linguamate_dev_secret =
    ngx_string("linguamate-development-secret-not-for-production-use");


char *
ngx_http_linguamate_set_setting(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_linguamate_main_conf_t *lmcf = conf;

    ngx_str_t                  *value;
    ngx_http_linguamate_raw_t  *raw;

    raw = &lmcf->raw[cmd->offset];

    if (raw->set) {
        return "is duplicate";
    }

    value = cf->args->elts;

    raw->value = value[1];
    raw->source = "directive";
    raw->file = cf->conf_file->file.name;
    raw->line = cf->conf_file->line;
    raw->set = 1;

    return NGX_CONF_OK;
}


char *
ngx_http_linguamate_set_env_file(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_linguamate_main_conf_t *lmcf = conf;

    ngx_str_t  *value;

    if (lmcf->env_file.data) {
        return "is duplicate";
    }

    value = cf->args->elts;
    lmcf->env_file = value[1];

    if (ngx_conf_full_name(cf->cycle, &lmcf->env_file, 1) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static int
ngx_http_linguamate_dotenv_pair(void *data, const unsigned char *key,
    size_t key_len, const unsigned char *val, size_t val_len, unsigned line)
{
    ngx_http_linguamate_dotenv_ctx_t *dctx = data;

    ngx_uint_t                  i;
    ngx_http_linguamate_raw_t  *raw;

    for (i = 0; i < NGX_HTTP_LINGUAMATE_NSETTINGS; i++) {
        if (ngx_http_linguamate_settings[i].env.len != key_len
            || ngx_strncmp(ngx_http_linguamate_settings[i].env.data, key,
                           key_len) != 0)
        {
            continue;
        }

        /* a later line wins, as in dotenv */

        raw = &dctx->file_raw[i];
        raw->value.data = (u_char *) val;
        raw->value.len = val_len;
        raw->source = "env file";
        raw->file = *dctx->file;
        raw->line = line;
        raw->set = 1;

        break;
    }

    return 0;
}


static ngx_int_t
ngx_http_linguamate_read_env_file(ngx_conf_t *cf,
    ngx_http_linguamate_main_conf_t *lmcf, ngx_http_linguamate_raw_t *raw)
{
    int                               rc;
    u_char                           *buf, *scratch;
    ssize_t                           n;
    unsigned                          line;
    ngx_fd_t                          fd;
    ngx_file_t                        file;
    const char                       *err;
    ngx_file_info_t                   fi;
    ngx_http_linguamate_dotenv_ctx_t  dctx;

    fd = ngx_open_file(lmcf->env_file.data, NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);

    if (fd == NGX_INVALID_FILE) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           "linguamate: cannot open env file \"%V\"",
                           &lmcf->env_file);
        return NGX_ERROR;
    }

    ngx_memzero(&file, sizeof(ngx_file_t));
    file.fd = fd;
    file.name = lmcf->env_file;
    file.log = cf->log;

    if (ngx_fd_info(fd, &fi) == NGX_FILE_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           "linguamate: cannot stat env file \"%V\"",
                           &lmcf->env_file);
        goto failed;
    }

    /* an env file is a few kilobytes; refuse anything absurd */

    if (ngx_file_size(&fi) > 1024 * 1024) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "linguamate: env file \"%V\" is larger than 1 MB",
                           &lmcf->env_file);
        goto failed;
    }

    buf = ngx_pnalloc(cf->pool, (size_t) ngx_file_size(&fi) + 1);
    scratch = ngx_pnalloc(cf->pool, (size_t) ngx_file_size(&fi) + 1);
    if (buf == NULL || scratch == NULL) {
        goto failed;
    }

    n = ngx_read_file(&file, buf, (size_t) ngx_file_size(&fi), 0);
    if (n == NGX_ERROR) {
        goto failed;
    }

    dctx.cf = cf;
    dctx.file_raw = raw;
    dctx.file = &lmcf->env_file;

    rc = ngx_http_linguamate_dotenv_parse(buf, (size_t) n, scratch,
                                          ngx_http_linguamate_dotenv_pair,
                                          &dctx, &line, &err);
    if (rc != 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "linguamate: %s in env file \"%V\" line %ud",
                           err ? err : "error", &lmcf->env_file, line);
        goto failed;
    }

    (void) ngx_close_file(fd);
    return NGX_OK;

failed:

    (void) ngx_close_file(fd);
    return NGX_ERROR;
}


char *
ngx_http_linguamate_resolve_settings(ngx_conf_t *cf,
    ngx_http_linguamate_main_conf_t *lmcf)
{
    char                           *env;
    const char                     *err;
    ngx_uint_t                      i;
    ngx_str_t                       value;
    ngx_http_linguamate_raw_t      *raw, *chosen;
    ngx_http_linguamate_raw_t       file_raw[NGX_HTTP_LINGUAMATE_NSETTINGS];
    ngx_http_linguamate_raw_t       env_raw[NGX_HTTP_LINGUAMATE_NSETTINGS];
    ngx_http_linguamate_setting_t  *s;

    ngx_memzero(file_raw, sizeof(file_raw));
    ngx_memzero(env_raw, sizeof(env_raw));

    if (lmcf->env_file.data
        && ngx_http_linguamate_read_env_file(cf, lmcf, file_raw) != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    if (lmcf->env_from_process == NGX_CONF_UNSET) {
        lmcf->env_from_process = 1;
    }

    for (i = 0; i < NGX_HTTP_LINGUAMATE_NSETTINGS; i++) {
        s = &ngx_http_linguamate_settings[i];
        raw = &lmcf->raw[i];

        /* directive, then process environment, then env file, then default */

        if (!raw->set && lmcf->env_from_process) {
            env = getenv((char *) s->env.data);

            if (env != NULL) {
                env_raw[i].value.data = (u_char *) env;
                env_raw[i].value.len = ngx_strlen(env);
                env_raw[i].source = "environment";
                env_raw[i].set = 1;
            }
        }

        chosen = raw->set ? raw : env_raw[i].set ? &env_raw[i]
                 : file_raw[i].set ? &file_raw[i] : NULL;

        if (chosen == NULL || chosen->value.len == 0) {
            if (s->deflt == NULL) {
                continue;
            }

            value.data = (u_char *) s->deflt;
            value.len = ngx_strlen(s->deflt);

            if (chosen == NULL) {
                raw->source = "default";
            }

        } else {
            value = chosen->value;

            /*
             * keep a NUL-terminated copy: env file buffers and environ
             * are not ours, and paths are handed to open()
             */

            value.data = ngx_pnalloc(cf->pool, chosen->value.len + 1);
            if (value.data == NULL) {
                return NGX_CONF_ERROR;
            }

            *ngx_cpymem(value.data, chosen->value.data, chosen->value.len)
                = '\0';

            if (chosen != raw) {
                *raw = *chosen;
                raw->value = value;
            }
        }

        err = ngx_http_linguamate_parse_value(cf, lmcf, s, &value);

        if (err == NULL) {
            continue;
        }

        if (s->kind == NGX_HTTP_LINGUAMATE_KIND_SECRET) {
            ngx_str_set(&value, "(not shown)");
        }

        if (raw->line) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "linguamate: invalid value \"%V\" for %V "
                               "(%s, %V:%ui): %s",
                               &value, &s->env, raw->source, &raw->file,
                               raw->line, err);
        } else {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "linguamate: invalid value \"%V\" for %V "
                               "(%s): %s",
                               &value, &s->env,
                               raw->source ? raw->source : "default", err);
        }

        return NGX_CONF_ERROR;
    }

    lmcf->env_name = ngx_http_linguamate_env_names[lmcf->node_env];

    if (ngx_http_linguamate_check_secrets(cf, lmcf) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    lmcf->hostname = cf->cycle->hostname;
    lmcf->master_start = ngx_http_linguamate_process_start();

    lmcf->log = ngx_conf_open_file(cf->cycle, &lmcf->log_file);
    if (lmcf->log == NULL) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/* LOG_LEVEL: the names of the log levels, and their numbers */
#define NGX_HTTP_LINGUAMATE_LEVEL_NAME(id, n, name, line)  name,
#define NGX_HTTP_LINGUAMATE_LEVEL_VALUE(id, n, name, line)  n,

static const char *
ngx_http_linguamate_parse_value(ngx_conf_t *cf,
    ngx_http_linguamate_main_conf_t *lmcf, ngx_http_linguamate_setting_t *s,
    ngx_str_t *value)
{
    int                              b;
    u_char                          *field, *msg;
    int64_t                          secs;
    uint64_t                         n;
    ngx_uint_t                       i;
    ngx_http_linguamate_duration_t  *d;

    static const char  *levels[] = {
        NGX_HTTP_LINGUAMATE_LOG_LEVELS(NGX_HTTP_LINGUAMATE_LEVEL_NAME) NULL
    };
    static ngx_uint_t   level_values[] = {
        NGX_HTTP_LINGUAMATE_LOG_LEVELS(NGX_HTTP_LINGUAMATE_LEVEL_VALUE)
    };

    /* the message below names them all */
    _Static_assert(NGX_HTTP_LINGUAMATE_NLOG_LEVELS == 7,
                   "LOG_LEVEL's message names each level");

    field = (u_char *) lmcf + s->offset;

    switch (s->kind) {

    case NGX_HTTP_LINGUAMATE_KIND_ENV:
        for (i = 0; i < 4; i++) {
            if (value->len == ngx_http_linguamate_env_names[i].len
                && ngx_strncasecmp(value->data,
                                   ngx_http_linguamate_env_names[i].data,
                                   value->len) == 0)
            {
                *(ngx_uint_t *) field = i;
                return NULL;
            }
        }

        return "must be development, test, staging or production";

    case NGX_HTTP_LINGUAMATE_KIND_WORKERS:
        if (value->len == 4 && ngx_strncmp(value->data, "auto", 4) == 0) {
            *(ngx_uint_t *) field = 0;
            return NULL;
        }

        /* fall through */

    case NGX_HTTP_LINGUAMATE_KIND_UINT:
        if (ngx_http_linguamate_parse_uint(value->data, value->len,
                                           s->max, &n) != 0
            || n < s->min)
        {
            msg = ngx_pnalloc(cf->pool, 64);
            if (msg == NULL) {
                return "must be an integer in range";
            }

            (void) ngx_snprintf(msg, 64, "must be an integer from %uL "
                                "to %uL%Z", s->min, s->max);
            return (const char *) msg;
        }

        *(ngx_uint_t *) field = (ngx_uint_t) n;
        return NULL;

    case NGX_HTTP_LINGUAMATE_KIND_BOOL:
        if (ngx_http_linguamate_parse_bool(value->data, value->len, &b)
            != 0)
        {
            return "must be true or false";
        }

        *(ngx_flag_t *) field = b;
        return NULL;

    case NGX_HTTP_LINGUAMATE_KIND_DURATION:
        if (ngx_http_linguamate_parse_duration(value->data, value->len,
                                               &secs) != 0)
        {
            return "must be a duration such as 3600, 90s, 15m, 12h, 7d or 2w";
        }

        d = (ngx_http_linguamate_duration_t *) field;
        d->text = *value;
        d->seconds = (time_t) secs;
        return NULL;

    case NGX_HTTP_LINGUAMATE_KIND_LEVEL:
        for (i = 0; levels[i]; i++) {
            if (ngx_strlen(levels[i]) == value->len
                && ngx_strncasecmp(value->data, (u_char *) levels[i],
                                   value->len) == 0)
            {
                *(ngx_uint_t *) field = level_values[i];
                return NULL;
            }
        }

        return "must be trace, debug, info, warn, error, fatal or silent";

    case NGX_HTTP_LINGUAMATE_KIND_CIDRS:
        return ngx_http_linguamate_parse_cidrs(cf, value,
                                               (ngx_array_t **) field);

    case NGX_HTTP_LINGUAMATE_KIND_ORIGINS:
        return ngx_http_linguamate_parse_origins(cf, value,
                                                 (ngx_array_t **) field);

    case NGX_HTTP_LINGUAMATE_KIND_URL:
        if (ngx_http_linguamate_check_url(value) != NULL) {
            return ngx_http_linguamate_check_url(value);
        }

        *(ngx_str_t *) field = *value;
        return NULL;

    case NGX_HTTP_LINGUAMATE_KIND_PATH:
        if (value->len == 6 && ngx_strncmp(value->data, "stdout", 6) == 0) {
            ngx_str_set(value, "/dev/stdout");

        } else if (value->len == 6
                   && ngx_strncmp(value->data, "stderr", 6) == 0)
        {
            ngx_str_set(value, "/dev/stderr");
        }

        for (i = 0; i < value->len; i++) {
            if (value->data[i] < 0x20 || value->data[i] == 0x7f) {
                return "must be a file system path";
            }
        }

        if (ngx_conf_full_name(cf->cycle, value, 0) != NGX_OK) {
            return "cannot be resolved";
        }

        *(ngx_str_t *) field = *value;
        return NULL;

    case NGX_HTTP_LINGUAMATE_KIND_TEXT:
        if (value->len > 128) {
            return "must be at most 128 characters";
        }

        for (i = 0; i < value->len; i++) {
            if (value->data[i] < 0x20 || value->data[i] > 0x7e
                || value->data[i] == '"' || value->data[i] == '\\')
            {
                return "must be printable ASCII without quotes";
            }
        }

        *(ngx_str_t *) field = *value;
        return NULL;

    case NGX_HTTP_LINGUAMATE_KIND_SECRET:
        for (i = 0; i < value->len; i++) {
            if (value->data[i] < 0x20 || value->data[i] == 0x7f) {
                return "must not contain control characters";
            }
        }

        *(ngx_str_t *) field = *value;
        return NULL;
    }

    return "unknown setting kind";
}


static const char *
ngx_http_linguamate_parse_cidrs(ngx_conf_t *cf, ngx_str_t *value,
    ngx_array_t **out)
{
    u_char      *p, *end, *start;
    ngx_str_t    item;
    ngx_int_t    rc;
    ngx_cidr_t  *cidr;

    *out = ngx_array_create(cf->pool, 4, sizeof(ngx_cidr_t));
    if (*out == NULL) {
        return "out of memory";
    }

    p = value->data;
    end = p + value->len;

    while (p < end) {
        while (p < end && (*p == ',' || *p == ' ' || *p == '\t')) {
            p++;
        }

        start = p;

        while (p < end && *p != ',' && *p != ' ' && *p != '\t') {
            p++;
        }

        if (p == start) {
            break;
        }

        /* ngx_ptocidr() writes into its argument; give it a copy */

        item.len = (size_t) (p - start);
        item.data = ngx_pstrdup(cf->pool, &(ngx_str_t) { item.len, start });
        if (item.data == NULL) {
            return "out of memory";
        }

        cidr = ngx_array_push(*out);
        if (cidr == NULL) {
            return "out of memory";
        }

        rc = ngx_ptocidr(&item, cidr);

        if (rc == NGX_ERROR) {
            return "must be a list of IPv4 or IPv6 addresses or CIDRs";
        }

        if (rc == NGX_DONE) {
            ngx_conf_log_error(NGX_LOG_WARN, cf, 0,
                               "linguamate: low address bits of \"%*s\" "
                               "are meaningless", (size_t) (p - start),
                               start);
        }
    }

    return NULL;
}


static const char *
ngx_http_linguamate_parse_origins(ngx_conf_t *cf, ngx_str_t *value,
    ngx_array_t **out)
{
    u_char     *p, *end, *start, *e, *q;
    ngx_str_t  *o;

    *out = ngx_array_create(cf->pool, 4, sizeof(ngx_str_t));
    if (*out == NULL) {
        return "out of memory";
    }

    p = value->data;
    end = p + value->len;

    while (p < end) {
        while (p < end && (*p == ',' || *p == ' ' || *p == '\t')) {
            p++;
        }

        start = p;

        while (p < end && *p != ',') {
            p++;
        }

        e = p;

        while (e > start && (e[-1] == ' ' || e[-1] == '\t')) {
            e--;
        }

        if (e == start) {
            continue;
        }

        for (q = start; q < e; q++) {
            if (*q <= 0x20 || *q >= 0x7f) {
                return "must be a comma-separated list of origins";
            }
        }

        o = ngx_array_push(*out);
        if (o == NULL) {
            return "out of memory";
        }

        o->data = start;
        o->len = (size_t) (e - start);

        /* an origin has no path: "https://app.example.com" */

        if (o->len > 1 && o->data[o->len - 1] == '/') {
            return "origins must not end with \"/\"";
        }
    }

    return NULL;
}


static const char *
ngx_http_linguamate_check_url(ngx_str_t *value)
{
    u_char      *p, *end, *host;
    ngx_uint_t   port;

    p = value->data;
    end = p + value->len;

    if (value->len > 7 && ngx_strncasecmp(p, (u_char *) "http://", 7) == 0) {
        p += 7;

    } else if (value->len > 8
               && ngx_strncasecmp(p, (u_char *) "https://", 8) == 0)
    {
        p += 8;

    } else {
        return "must be an http:// or https:// URL";
    }

    host = p;

    if (p < end && *p == '[') {
        while (p < end && *p != ']') {
            if (!(ngx_strchr("0123456789abcdefABCDEF:.[", *p))) {
                return "has an invalid IPv6 address";
            }
            p++;
        }

        if (p == end) {
            return "has an invalid IPv6 address";
        }

        p++;

    } else {
        while (p < end && (isalnum(*p) || *p == '.' || *p == '-'
                           || *p == '_'))
        {
            p++;
        }
    }

    if (p == host) {
        return "must name a host";
    }

    if (p < end && *p == ':') {
        p++;
        port = 0;

        if (p == end || !isdigit(*p)) {
            return "has an invalid port";
        }

        while (p < end && isdigit(*p)) {
            port = port * 10 + (*p++ - '0');
            if (port > 65535) {
                return "has an invalid port";
            }
        }

        if (port == 0) {
            return "has an invalid port";
        }
    }

    if (p < end && *p != '/') {
        return "has an invalid host";
    }

    for ( /* void */ ; p < end; p++) {
        if (*p <= 0x20 || *p >= 0x7f) {
            return "must not contain spaces or control characters";
        }
    }

    return NULL;
}


static ngx_int_t
ngx_http_linguamate_check_secrets(ngx_conf_t *cf,
    ngx_http_linguamate_main_conf_t *lmcf)
{
    ngx_uint_t  env;

    env = lmcf->node_env;

    if (lmcf->jwt_secret.len < NGX_HTTP_LINGUAMATE_SECRET_MIN) {

        if (env == NGX_HTTP_LINGUAMATE_ENV_PRODUCTION) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "linguamate: JWT_SECRET %s in production; "
                               "set it to at least %d bytes",
                               lmcf->jwt_secret.len ? "is too short"
                                                    : "is not set",
                               NGX_HTTP_LINGUAMATE_SECRET_MIN);
            return NGX_ERROR;
        }

        if (env == NGX_HTTP_LINGUAMATE_ENV_STAGING) {
            ngx_str_set(&lmcf->not_ready, "JWT_SECRET is not set or "
                        "shorter than 32 bytes");
        }

        if (lmcf->jwt_secret.len == 0) {
            ngx_http_linguamate_warn(cf, lmcf, "JWT_SECRET is not set; "
                                     "using the development default "
                                     "secret (never in production)");
            lmcf->jwt_secret = ngx_http_linguamate_dev_secret;
            lmcf->secret_is_default = 1;

        } else {
            ngx_http_linguamate_warn(cf, lmcf, "JWT_SECRET is shorter than "
                                     "%d bytes; production refuses it",
                                     NGX_HTTP_LINGUAMATE_SECRET_MIN);
        }
    }

    if (lmcf->jwt_secret_previous.len
        && lmcf->jwt_secret_previous.len < NGX_HTTP_LINGUAMATE_SECRET_MIN)
    {
        if (env == NGX_HTTP_LINGUAMATE_ENV_PRODUCTION) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "linguamate: JWT_SECRET_PREVIOUS is shorter "
                               "than %d bytes",
                               NGX_HTTP_LINGUAMATE_SECRET_MIN);
            return NGX_ERROR;
        }

        ngx_http_linguamate_warn(cf, lmcf, "JWT_SECRET_PREVIOUS is shorter "
                                 "than %d bytes; production refuses it",
                                 NGX_HTTP_LINGUAMATE_SECRET_MIN);
    }

    if (lmcf->admin_token.len
        && lmcf->admin_token.len < NGX_HTTP_LINGUAMATE_SECRET_MIN)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "linguamate: invalid value for ADMIN_TOKEN: "
                           "must be at least %d bytes",
                           NGX_HTTP_LINGUAMATE_SECRET_MIN);
        return NGX_ERROR;
    }

    return NGX_OK;
}


static void
ngx_http_linguamate_warn(ngx_conf_t *cf,
    ngx_http_linguamate_main_conf_t *lmcf, const char *fmt, ...)
{
    u_char     *p, buf[NGX_MAX_ERROR_STR];
    va_list     args;
    ngx_str_t  *w;

    va_start(args, fmt);
    p = ngx_vslprintf(buf, buf + sizeof(buf), fmt, args);
    va_end(args);

    /* "nginx -t" shows it now; the log stream gets a config_warning line */

    ngx_conf_log_error(NGX_LOG_WARN, cf, 0, "linguamate: %*s",
                       (size_t) (p - buf), buf);

    w = ngx_array_push(&lmcf->warnings);
    if (w == NULL) {
        return;
    }

    w->len = (size_t) (p - buf);
    w->data = ngx_pnalloc(cf->pool, w->len);
    if (w->data == NULL) {
        w->len = 0;
        return;
    }

    ngx_memcpy(w->data, buf, w->len);
}


/*
 * The start of this process (the master, when called at configuration
 * time) in epoch milliseconds, from /proc: uptime then counts from the
 * master's start, whichever worker answers and however often it reloads.
 */

static ngx_msec_t
ngx_http_linguamate_process_start(void)
{
    u_char      buf[1024], *p, *last;
    ssize_t     n;
    ngx_fd_t    fd;
    ngx_uint_t  field;
    uint64_t    ticks, btime;
    long        hz;
    ngx_time_t *tp;

    tp = ngx_timeofday();

    ticks = 0;
    btime = 0;

    fd = ngx_open_file("/proc/self/stat", NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);
    if (fd == NGX_INVALID_FILE) {
        goto fallback;
    }

    n = read(fd, buf, sizeof(buf) - 1);
    (void) ngx_close_file(fd);

    if (n <= 0) {
        goto fallback;
    }

    last = buf + n;

    /* field 2 (comm) may hold spaces; count from its closing paren */

    p = last;
    while (p > buf && p[-1] != ')') {
        p--;
    }

    for (field = 2; p < last && field < 22; p++) {
        if (*p == ' ') {
            field++;
        }
    }

    while (p < last && *p >= '0' && *p <= '9') {
        ticks = ticks * 10 + (*p++ - '0');
    }

    fd = ngx_open_file("/proc/stat", NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);
    if (fd == NGX_INVALID_FILE) {
        goto fallback;
    }

    {
        u_char  sbuf[16384];

        n = read(fd, sbuf, sizeof(sbuf) - 1);
        (void) ngx_close_file(fd);

        if (n <= 0) {
            goto fallback;
        }

        sbuf[n] = '\0';
        p = (u_char *) ngx_strstr(sbuf, "\nbtime ");
        if (p == NULL) {
            goto fallback;
        }

        for (p += 7; *p >= '0' && *p <= '9'; p++) {
            btime = btime * 10 + (*p - '0');
        }
    }

    hz = sysconf(_SC_CLK_TCK);

    if (hz <= 0 || btime == 0 || ticks == 0) {
        goto fallback;
    }

    return (ngx_msec_t) (btime * 1000 + ticks * 1000 / (uint64_t) hz);

fallback:

    return (ngx_msec_t) tp->sec * 1000 + tp->msec;
}
