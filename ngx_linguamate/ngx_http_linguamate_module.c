/*
 * Copyright (C) ngx_linguamate developers
 *
 * The module table: directives, configuration create/merge, and the
 * registration of handlers, filters and variables.
 */


#include "ngx_http_linguamate_module.h"


static ngx_int_t ngx_http_linguamate_preconfiguration(ngx_conf_t *cf);
static ngx_int_t ngx_http_linguamate_postconfiguration(ngx_conf_t *cf);
static void *ngx_http_linguamate_create_main_conf(ngx_conf_t *cf);
static char *ngx_http_linguamate_init_main_conf(ngx_conf_t *cf, void *conf);
static void *ngx_http_linguamate_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_linguamate_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);
static char *ngx_http_linguamate_endpoint(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static ngx_int_t ngx_http_linguamate_init_module(ngx_cycle_t *cycle);
static ngx_int_t ngx_http_linguamate_init_process(ngx_cycle_t *cycle);
static void ngx_http_linguamate_exit_process(ngx_cycle_t *cycle);


/* linguamate_endpoint NAME: NGX_HTTP_LINGUAMATE_ENDPOINTS */

#define NGX_HTTP_LINGUAMATE_EP_ENUM(id, name, h, m, probe, cache, maint)     \
    { ngx_string(name), NGX_HTTP_LINGUAMATE_EP_##id },

static ngx_conf_enum_t  ngx_http_linguamate_endpoints[] = {
    NGX_HTTP_LINGUAMATE_ENDPOINTS(NGX_HTTP_LINGUAMATE_EP_ENUM)
    { ngx_null_string, 0 }
};

_Static_assert(sizeof(ngx_http_linguamate_endpoints)
               / sizeof(ngx_conf_enum_t) == NGX_HTTP_LINGUAMATE_NENDPOINTS,
               "a name per endpoint, and the terminator");


/* the endpoints' probe and cache columns, by endpoint */

#define NGX_HTTP_LINGUAMATE_EP_PROBE(id, name, h, m, probe, cache, maint)    \
    [NGX_HTTP_LINGUAMATE_EP_##id] = (probe),
#define NGX_HTTP_LINGUAMATE_EP_CACHE(id, name, h, m, probe, cache, maint)    \
    [NGX_HTTP_LINGUAMATE_EP_##id] = (cache),

static const u_char  ngx_http_linguamate_endpoint_probe[] = {
    NGX_HTTP_LINGUAMATE_ENDPOINTS(NGX_HTTP_LINGUAMATE_EP_PROBE)
};

static const u_char  ngx_http_linguamate_endpoint_cache[] = {
    NGX_HTTP_LINGUAMATE_ENDPOINTS(NGX_HTTP_LINGUAMATE_EP_CACHE)
};


static ngx_conf_enum_t  ngx_http_linguamate_auth_modes[] = {
    { ngx_string("off"), NGX_HTTP_LINGUAMATE_AUTH_OFF },
    { ngx_string("on"), NGX_HTTP_LINGUAMATE_AUTH_ON },
    { ngx_string("optional"), NGX_HTTP_LINGUAMATE_AUTH_OPTIONAL },
    { ngx_string("public"), NGX_HTTP_LINGUAMATE_AUTH_PUBLIC },
    { ngx_null_string, 0 }
};


#define NGX_HTTP_LINGUAMATE_SETTING_CMD(env, dir, kind, def, field, lo, hi)  \
    { ngx_string("linguamate_" #dir),                                        \
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,                                     \
      ngx_http_linguamate_set_setting,                                       \
      NGX_HTTP_MAIN_CONF_OFFSET,                                             \
      NGX_HTTP_LINGUAMATE_S_##env,                                           \
      NULL },

static ngx_command_t  ngx_http_linguamate_commands[] = {

    NGX_HTTP_LINGUAMATE_SETTINGS(NGX_HTTP_LINGUAMATE_SETTING_CMD)

    { ngx_string("linguamate_env_file"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_linguamate_set_env_file,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("linguamate_env_from_process"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_linguamate_main_conf_t, env_from_process),
      NULL },

    { ngx_string("linguamate_event_log"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_linguamate_event_log,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("linguamate"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_linguamate_loc_conf_t, enable),
      NULL },

    { ngx_string("linguamate_cors"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_linguamate_loc_conf_t, cors),
      NULL },

    { ngx_string("linguamate_feature"),
      NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_linguamate_feature,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("linguamate_trpc"),
      NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_linguamate_loc_conf_t, trpc),
      NULL },

    { ngx_string("linguamate_trpc_prefix"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_linguamate_main_conf_t, trpc_prefix),
      NULL },

    { ngx_string("linguamate_maintenance"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_linguamate_loc_conf_t, maintenance),
      NULL },

    { ngx_string("linguamate_cache"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_linguamate_loc_conf_t, cache),
      NULL },

    { ngx_string("linguamate_route"),
      NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_linguamate_set_route,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("linguamate_limit_zone"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_2MORE,
      ngx_http_linguamate_limit_zone,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("linguamate_limit"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE12,
      ngx_http_linguamate_limit,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("linguamate_metrics"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_linguamate_loc_conf_t, metrics),
      NULL },

    { ngx_string("linguamate_limit_dry_run"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_linguamate_loc_conf_t, limit_dry_run),
      NULL },

    { ngx_string("linguamate_lockout_zone"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_2MORE,
      ngx_http_linguamate_lockout_zone,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("linguamate_lockout"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_linguamate_lockout,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("linguamate_jwt_cache"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_linguamate_main_conf_t, jwt_cache),
      NULL },

    { ngx_string("linguamate_session_zone"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE2,
      ngx_http_linguamate_session_zone,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("linguamate_auth"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_enum_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_linguamate_loc_conf_t, auth),
      ngx_http_linguamate_auth_modes },

    { ngx_string("linguamate_breaker"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_http_linguamate_breaker,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("linguamate_circuit_breaker"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_linguamate_circuit_breaker,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("linguamate_toolkit"),
      NGX_HTTP_LOC_CONF|NGX_CONF_TAKE12,
      ngx_http_linguamate_toolkit,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("linguamate_endpoint"),
      NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_linguamate_endpoint,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_linguamate_loc_conf_t, endpoint),
      ngx_http_linguamate_endpoints },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_linguamate_module_ctx = {
    ngx_http_linguamate_preconfiguration,   /* preconfiguration */
    ngx_http_linguamate_postconfiguration,  /* postconfiguration */

    ngx_http_linguamate_create_main_conf,   /* create main configuration */
    ngx_http_linguamate_init_main_conf,     /* init main configuration */

    NULL,                                   /* create server configuration */
    NULL,                                   /* merge server configuration */

    ngx_http_linguamate_create_loc_conf,    /* create location configuration */
    ngx_http_linguamate_merge_loc_conf      /* merge location configuration */
};


ngx_module_t  ngx_http_linguamate_module = {
    NGX_MODULE_V1,
    &ngx_http_linguamate_module_ctx,        /* module context */
    ngx_http_linguamate_commands,           /* module directives */
    NGX_HTTP_MODULE,                        /* module type */
    NULL,                                   /* init master */
    ngx_http_linguamate_init_module,        /* init module */
    ngx_http_linguamate_init_process,       /* init process */
    NULL,                                   /* init thread */
    NULL,                                   /* exit thread */
    ngx_http_linguamate_exit_process,       /* exit process */
    NULL,                                   /* exit master */
    NGX_MODULE_V1_PADDING
};


static ngx_int_t
ngx_http_linguamate_preconfiguration(ngx_conf_t *cf)
{
    if (ngx_http_linguamate_add_variables(cf) != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_http_linguamate_jwt_variables(cf);
}


static ngx_int_t
ngx_http_linguamate_postconfiguration(ngx_conf_t *cf)
{
    if (ngx_http_linguamate_request_init(cf) != NGX_OK) {
        return NGX_ERROR;
    }

    if (ngx_http_linguamate_limit_init(cf) != NGX_OK) {
        return NGX_ERROR;
    }

    /*
     * ACCESS handlers run last-registered first: auth, then the lockout,
     * then the breaker gate (no probe is spent on an unauthorized call)
     */

    if (ngx_http_linguamate_breakers_postconf(cf) != NGX_OK) {
        return NGX_ERROR;
    }

    if (ngx_http_linguamate_lockout_init(cf) != NGX_OK) {
        return NGX_ERROR;
    }

    if (ngx_http_linguamate_jwt_init(cf) != NGX_OK) {
        return NGX_ERROR;
    }

    /* REWRITE: the preflight first, then maintenance and features */

    if (ngx_http_linguamate_flags_postconf(cf) != NGX_OK) {
        return NGX_ERROR;
    }

    if (ngx_http_linguamate_deadline_init(cf) != NGX_OK) {
        return NGX_ERROR;
    }

    if (ngx_http_linguamate_trpc_init(cf) != NGX_OK) {
        return NGX_ERROR;
    }

    if (ngx_http_linguamate_cors_init(cf) != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_http_linguamate_metrics_postconf(cf);
}


static void *
ngx_http_linguamate_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_linguamate_main_conf_t  *lmcf;

    lmcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_linguamate_main_conf_t));
    if (lmcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     lmcf->raw[] = { 0 };
     *     lmcf->env_file = { 0, NULL };
     *     lmcf->not_ready = { 0, NULL };
     */

    lmcf->env_from_process = NGX_CONF_UNSET;
    lmcf->jwt_cache = NGX_CONF_UNSET;

    if (ngx_array_init(&lmcf->warnings, cf->pool, 4, sizeof(ngx_str_t))
        != NGX_OK)
    {
        return NULL;
    }

    if (ngx_array_init(&lmcf->zones, cf->pool, 4,
                       sizeof(ngx_http_linguamate_zone_t *))
        != NGX_OK)
    {
        return NULL;
    }

    if (ngx_array_init(&lmcf->routes, cf->pool, 16, sizeof(ngx_str_t))
        != NGX_OK)
    {
        return NULL;
    }

    if (ngx_array_init(&lmcf->breakers, cf->pool, 4,
                       sizeof(ngx_http_linguamate_breaker_conf_t))
        != NGX_OK)
    {
        return NULL;
    }

    return lmcf;
}


static char *
ngx_http_linguamate_init_main_conf(ngx_conf_t *cf, void *conf)
{
    ngx_http_linguamate_main_conf_t *lmcf = conf;

    char  *rv;

    if (lmcf->trpc_prefix.data == NULL) {
        ngx_str_set(&lmcf->trpc_prefix, "/api/trpc/");

    } else if (lmcf->trpc_prefix.len && lmcf->trpc_prefix.data[0] != '/') {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "linguamate_trpc_prefix must start with \"/\"");
        return NGX_CONF_ERROR;
    }

    /* verified tokens kept per worker: 8-way sets, 0 turns it off */

    if (lmcf->jwt_cache == NGX_CONF_UNSET) {
        lmcf->jwt_cache = 4096;

    } else if (lmcf->jwt_cache > 1048576) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "linguamate_jwt_cache takes 0 to 1048576 entries");
        return NGX_CONF_ERROR;
    }

    lmcf->jwt_cache = ngx_align(lmcf->jwt_cache, 8);

    rv = ngx_http_linguamate_resolve_settings(cf, conf);
    if (rv != NGX_CONF_OK) {
        return rv;
    }

    if (ngx_http_linguamate_admin_tokens(cf, conf) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    if (ngx_http_linguamate_metrics_init(cf, conf) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    if (ngx_http_linguamate_breakers_init(cf, conf) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    if (ngx_http_linguamate_flags_init(cf, conf) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    if (ngx_http_linguamate_cors_check(cf, conf) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


ngx_int_t
ngx_http_linguamate_add_handler(ngx_conf_t *cf, ngx_http_phases phase,
    ngx_http_handler_pt handler)
{
    ngx_http_handler_pt        *h;
    ngx_http_core_main_conf_t  *cmcf;

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    h = ngx_array_push(&cmcf->phases[phase].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = handler;

    return NGX_OK;
}


/* linguamate_route NAME: a bounded label for metrics, keys and logs */

char *
ngx_http_linguamate_set_route(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_linguamate_loc_conf_t *llcf = conf;

    ngx_str_t                        *value, *name;
    ngx_uint_t                        i;
    ngx_http_linguamate_main_conf_t  *lmcf;

    if (llcf->route.data) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (value[1].len == 0 || value[1].len >= 64) {
        return "must be 1 to 63 characters";
    }

    for (i = 0; i < value[1].len; i++) {
        if (!isalnum(value[1].data[i]) && value[1].data[i] != '_'
            && value[1].data[i] != '-' && value[1].data[i] != '.')
        {
            return "must be made of letters, digits, \"_\", \"-\" and \".\"";
        }
    }

    llcf->route = value[1];

    lmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_linguamate_module);
    name = lmcf->routes.elts;

    for (i = 0; i < lmcf->routes.nelts; i++) {
        if (name[i].len == value[1].len
            && ngx_strncmp(name[i].data, value[1].data, value[1].len) == 0)
        {
            llcf->route_index = i + 1;
            return NGX_CONF_OK;
        }
    }

    name = ngx_array_push(&lmcf->routes);
    if (name == NULL) {
        return NGX_CONF_ERROR;
    }

    *name = value[1];
    llcf->route_index = lmcf->routes.nelts;

    return NGX_CONF_OK;
}


static void *
ngx_http_linguamate_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_linguamate_loc_conf_t  *llcf;

    llcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_linguamate_loc_conf_t));
    if (llcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     llcf->route = { 0, NULL };
     *     llcf->limits = NULL;
     *     llcf->lockout = NULL;
     */

    llcf->enable = NGX_CONF_UNSET;
    llcf->endpoint = NGX_CONF_UNSET_UINT;
    llcf->limit_dry_run = NGX_CONF_UNSET;
    llcf->auth = NGX_CONF_UNSET_UINT;
    llcf->metrics = NGX_CONF_UNSET;
    llcf->breaker = NGX_CONF_UNSET_PTR;
    llcf->cors = NGX_CONF_UNSET;
    llcf->feature = NGX_CONF_UNSET_UINT;
    llcf->maintenance = NGX_CONF_UNSET;
    llcf->cache = NGX_CONF_UNSET;
    llcf->trpc = NGX_CONF_UNSET;

    return llcf;
}


static char *
ngx_http_linguamate_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_linguamate_loc_conf_t  *prev = parent;
    ngx_http_linguamate_loc_conf_t  *conf = child;

    ngx_conf_merge_value(conf->enable, prev->enable, 0);
    ngx_conf_merge_value(conf->limit_dry_run, prev->limit_dry_run, 0);
    ngx_conf_merge_value(conf->cors, prev->cors, 0);

    /* unset stays unset: counted wherever the module is on, then */
    if (conf->metrics == NGX_CONF_UNSET) {
        conf->metrics = prev->metrics;
    }
    ngx_conf_merge_uint_value(conf->auth, prev->auth,
                              NGX_HTTP_LINGUAMATE_AUTH_OFF);

    /*
     * limits are inherited only by a level that declares none, as
     * limit_req; the probes (health, metrics) that inherit theirs are
     * outside them unless RATE_LIMIT_PROBES says otherwise
     */

    if (conf->limits == NULL) {
        conf->limits = prev->limits;

        conf->probe = conf->endpoint < NGX_HTTP_LINGUAMATE_NENDPOINTS
                      && ngx_http_linguamate_endpoint_probe[conf->endpoint];
    }

    if (conf->lockout == NULL) {
        conf->lockout = prev->lockout;
    }

    ngx_conf_merge_ptr_value(conf->breaker, prev->breaker, NULL);

    /* an endpoint belongs to its own location; it is not inherited */

    if (conf->endpoint == NGX_CONF_UNSET_UINT) {
        conf->endpoint = NGX_HTTP_LINGUAMATE_EP_NONE;
    }

    ngx_conf_merge_uint_value(conf->feature, prev->feature, 0);
    ngx_conf_merge_value(conf->trpc, prev->trpc, 0);
    ngx_conf_merge_value(conf->maintenance, prev->maintenance, 1);

    /*
     * caching headers: where asked for, and by default on the in-process
     * answers that are the same for everyone
     */

    if (conf->cache == NGX_CONF_UNSET) {
        conf->cache = prev->cache;
    }

    if (conf->cache == NGX_CONF_UNSET
        && conf->endpoint != NGX_HTTP_LINGUAMATE_EP_NONE)
    {
        conf->cache = conf->endpoint < NGX_HTTP_LINGUAMATE_NENDPOINTS
                      && ngx_http_linguamate_endpoint_cache[conf->endpoint];
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_linguamate_endpoint(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_linguamate_loc_conf_t *llcf = conf;

    char                      *rv;
    ngx_http_core_loc_conf_t  *clcf;

    rv = ngx_conf_set_enum_slot(cf, cmd, conf);
    if (rv != NGX_CONF_OK) {
        return rv;
    }

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_linguamate_endpoint_handler;

    /* an endpoint answers with the envelope and headers: switch them on */

    if (llcf->enable == NGX_CONF_UNSET) {
        llcf->enable = 1;
    }

    return NGX_CONF_OK;
}


/*
 * Runs in the master after the log files are open, at start and at every
 * reload: the warnings of the new configuration go to the log stream.
 */

static ngx_int_t
ngx_http_linguamate_init_module(ngx_cycle_t *cycle)
{
    ngx_str_t                        *w, extra;
    ngx_uint_t                        i;
    ngx_http_linguamate_main_conf_t  *lmcf;

    lmcf = ngx_http_cycle_get_module_main_conf(cycle,
                                               ngx_http_linguamate_module);

    /* "nginx -t" printed the warnings already and must not write the log */

    if (lmcf == NULL || ngx_test_config) {
        return NGX_OK;
    }

    ngx_str_set(&extra, ",\"cat\":\"config\"");

    w = lmcf->warnings.elts;

    for (i = 0; i < lmcf->warnings.nelts; i++) {
        ngx_http_linguamate_log_event(lmcf, NGX_HTTP_LINGUAMATE_LOG_WARN,
                                      "config_warning", &w[i], &extra);
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_linguamate_init_process(ngx_cycle_t *cycle)
{
    ngx_http_linguamate_random_reset();
    ngx_http_linguamate_session_init_process();

    return ngx_http_linguamate_jwt_init_process(cycle);
}


static void
ngx_http_linguamate_exit_process(ngx_cycle_t *cycle)
{
    ngx_http_linguamate_jwt_exit_process();
}
