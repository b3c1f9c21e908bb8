/*
 * Copyright (C) ngx_linguamate developers
 *
 * Parse layer of the live flags: the PATCH /api/admin/flags body read
 * into the changes it asks for (patch_parse()), all or nothing, and a
 * flag's value checked (a value read back from STATE_DIR) and written as
 * the API shows it.  flags.c applies the changes; fuzz/fuzz_flags.c links
 * this file alone.
 *
 * Layer 1 (core), not 0: the flags, their names and the log levels are
 * the X-macro lists of ngx_http_linguamate_lists.h, a flag's kind and
 * bound are its setting's (NGX_HTTP_LINGUAMATE_SETTINGS of module.h);
 * the tables are generated from those lists, written once, rather than
 * copied here.  Only macros and types are used: no function of core.
 */


#include <yajl/yajl_tree.h>

#include "ngx_http_linguamate_module.h"
#include "ngx_http_linguamate_flags_parse.h"


static ngx_int_t ngx_http_linguamate_patch_value(yajl_val v, ngx_uint_t flag,
    ngx_int_t *set, ngx_uint_t *value, const char **message);
static const char *ngx_http_linguamate_api_level(ngx_uint_t level);


/*
 * A flag is what its setting is: the kind (BOOL, LEVEL, UINT) and the
 * upper bound of each setting, as constants
 */

#define NGX_HTTP_LINGUAMATE_SETTING_KIND(env, dir, kind, def, field, lo, hi) \
    NGX_HTTP_LINGUAMATE_SK_##env = NGX_HTTP_LINGUAMATE_KIND_##kind,
#define NGX_HTTP_LINGUAMATE_SETTING_MAX(env, dir, kind, def, field, lo, hi)  \
    NGX_HTTP_LINGUAMATE_SMAX_##env = (hi),

enum {
    NGX_HTTP_LINGUAMATE_SETTINGS(NGX_HTTP_LINGUAMATE_SETTING_KIND)
};

enum {
    NGX_HTTP_LINGUAMATE_SETTINGS(NGX_HTTP_LINGUAMATE_SETTING_MAX)
};


/* the tables of NGX_HTTP_LINGUAMATE_FLAGS, by flag */

#define NGX_HTTP_LINGUAMATE_FLAG_NAME(id, name, setting)  ngx_string(name),
#define NGX_HTTP_LINGUAMATE_FLAG_KIND(id, name, setting)                     \
    NGX_HTTP_LINGUAMATE_SK_##setting,
#define NGX_HTTP_LINGUAMATE_FLAG_MAX(id, name, setting)                      \
    NGX_HTTP_LINGUAMATE_SMAX_##setting,

/* the names: the API's, the environment's */
ngx_str_t  ngx_http_linguamate_flag_names[] = {
    NGX_HTTP_LINGUAMATE_FLAGS(NGX_HTTP_LINGUAMATE_FLAG_NAME)
};

static const ngx_uint_t  ngx_http_linguamate_flag_kinds[] = {
    NGX_HTTP_LINGUAMATE_FLAGS(NGX_HTTP_LINGUAMATE_FLAG_KIND)
};

static const ngx_uint_t  ngx_http_linguamate_flag_max[] = {
    NGX_HTTP_LINGUAMATE_FLAGS(NGX_HTTP_LINGUAMATE_FLAG_MAX)
};

/* a group ("features") is a bit of a ngx_uint_t in patch_parse() */
_Static_assert(NGX_HTTP_LINGUAMATE_NFLAGS <= 32, "too many flags");

/* the log levels of the logLevel flag: PATCH sets those a line can have */

typedef struct {
    const char                 *name;
    ngx_uint_t                  level;
    ngx_uint_t                  line;
} ngx_http_linguamate_api_level_t;

#define NGX_HTTP_LINGUAMATE_API_LEVEL(id, n, name, line)  { name, n, line },

static ngx_http_linguamate_api_level_t  ngx_http_linguamate_api_levels[] = {
    NGX_HTTP_LINGUAMATE_LOG_LEVELS(NGX_HTTP_LINGUAMATE_API_LEVEL)
    { NULL, 0, 0 }
};


u_char *
ngx_http_linguamate_flag_value(u_char *p, ngx_uint_t flag, ngx_uint_t value)
{
    switch (ngx_http_linguamate_flag_kinds[flag]) {
    case NGX_HTTP_LINGUAMATE_KIND_LEVEL:
        return ngx_sprintf(p, "\"%s\"", ngx_http_linguamate_api_level(value));
    case NGX_HTTP_LINGUAMATE_KIND_UINT:
        return ngx_sprintf(p, "%ui", value);
    default:
        return ngx_sprintf(p, "%s", value ? "true" : "false");
    }
}


/*
 * A value read back from STATE_DIR: one of the flag's setting (any log
 * level, "silent" too, as LOG_LEVEL may say)
 */

ngx_uint_t
ngx_http_linguamate_flag_valid(ngx_uint_t flag, ngx_int_t v)
{
    ngx_http_linguamate_api_level_t  *l;

    switch (ngx_http_linguamate_flag_kinds[flag]) {
    case NGX_HTTP_LINGUAMATE_KIND_LEVEL:
        for (l = ngx_http_linguamate_api_levels; l->name; l++) {
            if ((ngx_int_t) l->level == v) {
                return 1;
            }
        }

        return 0;
    case NGX_HTTP_LINGUAMATE_KIND_UINT:
        return v >= 0 && v <= (ngx_int_t) ngx_http_linguamate_flag_max[flag];
    default:
        return v == 0 || v == 1;
    }
}


static const char *
ngx_http_linguamate_api_level(ngx_uint_t level)
{
    ngx_http_linguamate_api_level_t  *l;

    for (l = ngx_http_linguamate_api_levels; l->name; l++) {
        if (l->level == level) {
            return l->name;
        }
    }

    return "silent";
}


/* a nested flag's group: the length of "features" in "features.chat" */

size_t
ngx_http_linguamate_flag_group(ngx_uint_t flag)
{
    u_char     *dot;
    ngx_str_t  *name;

    name = &ngx_http_linguamate_flag_names[flag];
    dot = ngx_strlchr(name->data, name->data + name->len, '.');

    return dot ? (size_t) (dot - name->data) : 0;
}


/* the messages below name every flag */
_Static_assert(NGX_HTTP_LINGUAMATE_NFLAGS == 6,
               "patch_parse()'s messages name each flag");

ngx_int_t
ngx_http_linguamate_patch_parse(yajl_val root,
    ngx_http_linguamate_flags_patch_t *patch,
    ngx_http_linguamate_flags_error_t *err)
{
    size_t       i, j, g, len;
    yajl_val     v, fv;
    ngx_int_t   *set;
    ngx_str_t   *name;
    ngx_uint_t   flag, n, groups, *value;
    const char  *key, *fkey;

    set = patch->set;
    value = patch->value;

    ngx_memzero(set, NGX_HTTP_LINGUAMATE_NFLAGS * sizeof(ngx_int_t));

    if (root == NULL || !YAJL_IS_OBJECT(root)) {
        return NGX_ERROR;
    }

    n = 0;
    g = 0;
    groups = 0;     /* bit of the first flag of each group seen */

    for (i = 0; i < root->u.object.len; i++) {
        key = root->u.object.keys[i];
        v = root->u.object.values[i];
        err->field = key;
        len = ngx_strlen(key);

        /* a flag of its own, or the first flag of a group */

        for (flag = 0; flag < NGX_HTTP_LINGUAMATE_NFLAGS; flag++) {
            name = &ngx_http_linguamate_flag_names[flag];
            g = ngx_http_linguamate_flag_group(flag);

            if ((g ? g : name->len) == len
                && ngx_strncmp(key, name->data, len) == 0)
            {
                break;
            }
        }

        if (flag == NGX_HTTP_LINGUAMATE_NFLAGS) {
            err->message = "unknown flag: the flags are maintenance, "
                           "features, strictMode, logLevel and "
                           "cacheTtlSeconds";
            return NGX_ERROR;
        }

        if (g == 0) {
            if (ngx_http_linguamate_patch_value(v, flag, set, value,
                                                &err->message)
                != NGX_OK)
            {
                return NGX_ERROR;
            }

            n++;
            continue;
        }

        /* a group: {"features":{"chat":bool,"analytics":bool}} */

        if (groups & ((ngx_uint_t) 1 << flag)) {
            err->message = "is duplicated";
            return NGX_ERROR;
        }

        groups |= (ngx_uint_t) 1 << flag;

        if (!YAJL_IS_OBJECT(v)) {
            err->message = "must be an object of chat and analytics";
            return NGX_ERROR;
        }

        for (j = 0; j < v->u.object.len; j++) {
            fkey = v->u.object.keys[j];
            fv = v->u.object.values[j];

            for (flag = 0; flag < NGX_HTTP_LINGUAMATE_NFLAGS; flag++) {
                name = &ngx_http_linguamate_flag_names[flag];

                if (ngx_http_linguamate_flag_group(flag) == len
                    && ngx_strncmp(name->data, key, len) == 0
                    && ngx_strcmp(name->data + len + 1, fkey) == 0)
                {
                    break;
                }
            }

            if (flag == NGX_HTTP_LINGUAMATE_NFLAGS) {
                err->field = key;
                err->message = "unknown feature: the features are chat and "
                               "analytics";
                return NGX_ERROR;
            }

            err->field = (const char *)
                         ngx_http_linguamate_flag_names[flag].data;

            if (ngx_http_linguamate_patch_value(fv, flag, set, value,
                                                &err->message)
                != NGX_OK)
            {
                return NGX_ERROR;
            }

            n++;
        }
    }

    if (n == 0) {
        err->field = "body";
        err->message = "names no flag to change";
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* the messages below name the levels and the bound */
_Static_assert(NGX_HTTP_LINGUAMATE_NLOG_LEVELS == 7
               && NGX_HTTP_LINGUAMATE_SMAX_CACHE_TTL_SECONDS == 31536000,
               "patch_value()'s messages name the levels and the bound");

static ngx_int_t
ngx_http_linguamate_patch_value(yajl_val v, ngx_uint_t flag, ngx_int_t *set,
    ngx_uint_t *value, const char **message)
{
    ngx_http_linguamate_api_level_t  *l;

    /* a key given twice: JSON.parse would take the last, yajl the first */

    if (set[flag]) {
        *message = "is duplicated";
        return NGX_ERROR;
    }

    if (YAJL_IS_NULL(v)) {
        set[flag] = 2;
        return NGX_OK;
    }

    switch (ngx_http_linguamate_flag_kinds[flag]) {

    case NGX_HTTP_LINGUAMATE_KIND_LEVEL:
        if (YAJL_IS_STRING(v) && v->u.string) {
            for (l = ngx_http_linguamate_api_levels; l->name; l++) {
                if (l->line && ngx_strcmp(v->u.string, l->name) == 0) {
                    set[flag] = 1;
                    value[flag] = l->level;
                    return NGX_OK;
                }
            }
        }

        *message = "must be one of trace, debug, info, warn, error, fatal "
                   "(or null)";
        return NGX_ERROR;

    case NGX_HTTP_LINGUAMATE_KIND_UINT:
        if (YAJL_IS_INTEGER(v) && YAJL_GET_INTEGER(v) >= 0
            && YAJL_GET_INTEGER(v)
               <= (long long) ngx_http_linguamate_flag_max[flag])
        {
            set[flag] = 1;
            value[flag] = (ngx_uint_t) YAJL_GET_INTEGER(v);
            return NGX_OK;
        }

        /* one integer flag so far: cacheTtlSeconds, its bound here */
        *message = "must be an integer from 0 to 31536000 (or null)";
        return NGX_ERROR;

    default:
        if (YAJL_IS_TRUE(v) || YAJL_IS_FALSE(v)) {
            set[flag] = 1;
            value[flag] = YAJL_IS_TRUE(v) ? 1 : 0;
            return NGX_OK;
        }

        *message = "must be true or false (or null)";
        return NGX_ERROR;
    }
}
