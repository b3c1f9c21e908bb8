/*
 * Copyright (C) ngx_linguamate developers
 *
 * The module table: directives, configuration create/merge, and the
 * assembly of the features: one handler per phase, each running a table
 * of steps in a fixed order with the reason for each; the header and body
 * filters; the variables.  The top layer: it may call every other one.
 */


#include "ngx_http_linguamate_module.h"
#include "ngx_http_linguamate_settings.h"
#include "ngx_http_linguamate_json.h"
#include "ngx_http_linguamate_log.h"
#include "ngx_http_linguamate_session.h"
#include "ngx_http_linguamate_cluster.h"
#include "ngx_http_linguamate_limit.h"
#include "ngx_http_linguamate_lockout.h"
#include "ngx_http_linguamate_auth.h"
#include "ngx_http_linguamate_metrics.h"
#include "ngx_http_linguamate_breaker.h"
#include "ngx_http_linguamate_cors.h"
#include "ngx_http_linguamate_toolkit.h"
#include "ngx_http_linguamate_deadline.h"
#include "ngx_http_linguamate_flags.h"
#include "ngx_http_linguamate_trpc.h"
#include "ngx_http_linguamate_ingest.h"
#include "ngx_http_linguamate_health.h"
#include "ngx_http_linguamate_admin.h"


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
static char *ngx_http_linguamate_set_route(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static ngx_int_t ngx_http_linguamate_add_handler(ngx_conf_t *cf,
    ngx_http_phases phase, ngx_http_handler_pt handler);
static ngx_int_t ngx_http_linguamate_add_variables(ngx_conf_t *cf);
static ngx_int_t ngx_http_linguamate_run_steps(ngx_http_request_t *r,
    ngx_uint_t phase, ngx_http_linguamate_step_t *step);
static ngx_int_t ngx_http_linguamate_post_read_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_linguamate_rewrite_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_linguamate_preaccess_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_linguamate_access_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_linguamate_precontent_handler(
    ngx_http_request_t *r);
static ngx_int_t ngx_http_linguamate_log_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_linguamate_header_filter(ngx_http_request_t *r);
static ngx_int_t ngx_http_linguamate_headers(ngx_http_request_t *r,
    ngx_http_linguamate_ctx_t *ctx, ngx_http_linguamate_loc_conf_t *llcf);
static ngx_int_t ngx_http_linguamate_body_filter(ngx_http_request_t *r,
    ngx_chain_t *in);


static ngx_http_output_header_filter_pt  ngx_http_next_header_filter;
static ngx_http_output_body_filter_pt    ngx_http_next_body_filter;


static ngx_http_variable_t  ngx_http_linguamate_vars[] = {

    { ngx_string("linguamate_correlation_id"), NULL,
      ngx_http_linguamate_corr_variable, 0,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("linguamate_env"), NULL,
      ngx_http_linguamate_env_variable, 0, 0, 0 },

    { ngx_string("linguamate_log_line"), NULL,
      ngx_http_linguamate_log_variable, 0,
      NGX_HTTP_VAR_NOCACHEABLE|NGX_HTTP_VAR_NOHASH, 0 },

    { ngx_string("linguamate_app_upstream"), NULL,
      ngx_http_linguamate_app_variable, 0, 0, 0 },

    { ngx_string("linguamate_user_id"), NULL,
      ngx_http_linguamate_user_variable, 0,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("linguamate_session_id"), NULL,
      ngx_http_linguamate_user_variable, 1,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("linguamate_toolkit_target"), NULL,
      ngx_http_linguamate_toolkit_variable, 0,
      NGX_HTTP_VAR_NOCACHEABLE|NGX_HTTP_VAR_NOHASH, 0 },

    { ngx_string("linguamate_toolkit_key"), NULL,
      ngx_http_linguamate_toolkit_variable, 1,
      NGX_HTTP_VAR_NOCACHEABLE|NGX_HTTP_VAR_NOHASH, 0 },

    { ngx_string("linguamate_limit_status"), NULL,
      ngx_http_linguamate_limit_status_variable, 0,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("linguamate_log_enabled"), NULL,
      ngx_http_linguamate_log_enabled_variable, 0,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("linguamate_cache_key"), NULL,
      ngx_http_linguamate_cache_key_variable, 0,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

      ngx_http_null_variable
};


#if (NGX_DEBUG)
static const char  *ngx_http_linguamate_phase_names[] = {
    "post_read", "server_rewrite", "find_config", "rewrite", "post_rewrite",
    "preaccess", "access", "post_access", "precontent", "content", "log"
};
#endif


/*
 * The phase tables.  nginx runs the handlers of one phase in the reverse
 * order of their registration, and a module's handlers before those of
 * the modules loaded before it (rewrite's "return", access's "allow"):
 * so the module registers one handler per phase, and the order of the
 * features is the order of these tables, with the reason for each step.
 * A step answers as a phase handler: NGX_DECLINED goes on to the next.
 */

static ngx_http_linguamate_step_t  ngx_http_linguamate_post_read_steps[] = {

    { ngx_http_linguamate_call_read, "call",
      "core: the ctx is made and the request line read as a tRPC call, "
      "once, before anything can refuse the request (a body over "
      "client_max_body_size is refused before any location handler): so "
      "every refusal under the prefix has the tRPC shape" },

    { ngx_http_linguamate_trpc_refuse, "trpc_path",
      "a tRPC path that is not canonical is refused before a location is "
      "chosen: it never reaches the app and nginx never redirects it" },

    { NULL, NULL, NULL }
};


static ngx_http_linguamate_step_t  ngx_http_linguamate_rewrite_steps[] = {

    { ngx_http_linguamate_route_handler, "route",
      "first: the route label is set for the metrics of every answer, "
      "refused ones included" },

    { ngx_http_linguamate_cors_preflight, "cors_preflight",
      "a preflight is answered before any gate, limit or auth: browsers "
      "send it without credentials, and it spends no limit" },

    { ngx_http_linguamate_maintenance_step, "maintenance",
      "maintenance before the tRPC gate and the feature gate: one answer "
      "(503 MAINTENANCE) for everything but health, metrics, the "
      "operations API and the error pages" },

    { ngx_http_linguamate_trpc_gate, "trpc_gate",
      "a batch too large, no app, or a procedure of a feature that is off: "
      "refused in REWRITE, before the rewrite module's return and any "
      "limit is spent" },

    { ngx_http_linguamate_feature_step, "feature",
      "the location's feature (linguamate_feature) last of the gates" },

    { NULL, NULL, NULL }
};


static ngx_http_linguamate_step_t  ngx_http_linguamate_preaccess_steps[] = {

    { ngx_http_linguamate_cluster_gate, "cluster",
      "cluster mode, Redis away: a location set to fail closed answers "
      "503 before it spends a limit; the default (open) serves from this "
      "replica's own state" },

    { ngx_http_linguamate_limit_handler, "limit",
      "limits before auth: a flood is refused by a counter before any "
      "token is verified; after the gates, so a refused gate spends no "
      "limit" },

    { NULL, NULL, NULL }
};


static ngx_http_linguamate_step_t  ngx_http_linguamate_access_steps[] = {

    { ngx_http_linguamate_auth_handler, "auth",
      "the token first: who the caller is decides the rest" },

    { ngx_http_linguamate_lockout_handler, "lockout",
      "after auth, before the breaker: a locked-out account is refused "
      "without reaching the app (it may read the body, then resume here)" },

    { ngx_http_linguamate_breaker_gate, "breaker",
      "last: no half-open probe is spent on a call refused by auth or the "
      "lockout" },

    { NULL, NULL, NULL }
};


static ngx_http_linguamate_step_t  ngx_http_linguamate_precontent_steps[] = {

    { ngx_http_linguamate_deadline_arm, "deadline",
      "REQUEST_TIMEOUT_MS is armed once access is granted: it bounds the "
      "content phase (the app, the toolkit), not the edge's checks" },

    { NULL, NULL, NULL }
};


static ngx_http_linguamate_step_t  ngx_http_linguamate_log_steps[] = {

    { ngx_http_linguamate_metrics_log, "metrics",
      "the request counters first, whatever happened" },

    { ngx_http_linguamate_trpc_log, "trpc_scan",
      "a 207 batch answer not read to the end counts its auth procedures "
      "as failed for the lockout" },

    { ngx_http_linguamate_lockout_log_step, "lockout",
      "after the scan (it may lock): a lock decided by this request is "
      "written to the event log and the lockout journal here, not from "
      "the header or body filter that counted it" },

    { ngx_http_linguamate_toolkit_log, "toolkit",
      "a toolkit call that ended early counts its attempts so far for its "
      "breaker (instead of the next step)" },

    { ngx_http_linguamate_breaker_log, "breaker",
      "last: the upstream's attempts of a call that passed the breaker's "
      "gate move the breaker on" },

    { NULL, NULL, NULL }
};


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

    { ngx_string("linguamate_cluster_fail"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_enum_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_linguamate_loc_conf_t, cluster_fail),
      &ngx_http_linguamate_cluster_fail_modes },

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
    ngx_http_linguamate_main_conf_t  *lmcf;

    ngx_http_next_header_filter = ngx_http_top_header_filter;
    ngx_http_top_header_filter = ngx_http_linguamate_header_filter;

    ngx_http_next_body_filter = ngx_http_top_body_filter;
    ngx_http_top_body_filter = ngx_http_linguamate_body_filter;

    /* one handler per phase; the order of the features is in the tables */

    if (ngx_http_linguamate_add_handler(cf, NGX_HTTP_POST_READ_PHASE,
                                ngx_http_linguamate_post_read_handler)
        != NGX_OK
        || ngx_http_linguamate_add_handler(cf, NGX_HTTP_REWRITE_PHASE,
                                ngx_http_linguamate_rewrite_handler)
           != NGX_OK
        || ngx_http_linguamate_add_handler(cf, NGX_HTTP_PREACCESS_PHASE,
                                ngx_http_linguamate_preaccess_handler)
           != NGX_OK
        || ngx_http_linguamate_add_handler(cf, NGX_HTTP_ACCESS_PHASE,
                                ngx_http_linguamate_access_handler)
           != NGX_OK
        || ngx_http_linguamate_add_handler(cf, NGX_HTTP_PRECONTENT_PHASE,
                                ngx_http_linguamate_precontent_handler)
           != NGX_OK
        || ngx_http_linguamate_add_handler(cf, NGX_HTTP_LOG_PHASE,
                                ngx_http_linguamate_log_handler)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    lmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_linguamate_module);

    if (ngx_http_linguamate_limit_cluster(cf, lmcf) != NGX_OK
        || ngx_http_linguamate_lockout_cluster(cf, lmcf) != NGX_OK)
    {
        return NGX_ERROR;
    }

    return ngx_http_linguamate_cluster_postconf(cf, lmcf);
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

    return ngx_http_linguamate_cluster_init(cf, conf);
}


static ngx_int_t
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

static char *
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
    llcf->cluster_fail = NGX_CONF_UNSET_UINT;
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
    ngx_conf_merge_uint_value(conf->cluster_fail, prev->cluster_fail,
                              NGX_HTTP_LINGUAMATE_CLUSTER_FAIL_OPEN);
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

    if (ngx_http_linguamate_cluster_init_process(cycle) != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_http_linguamate_jwt_init_process(cycle);
}


static void
ngx_http_linguamate_exit_process(ngx_cycle_t *cycle)
{
    ngx_http_linguamate_cluster_exit_process(cycle);
    ngx_http_linguamate_jwt_exit_process();
}


static ngx_int_t
ngx_http_linguamate_add_variables(ngx_conf_t *cf)
{
    ngx_http_variable_t  *var, *v;

    for (v = ngx_http_linguamate_vars; v->name.len; v++) {
        var = ngx_http_add_variable(cf, &v->name, v->flags);
        if (var == NULL) {
            return NGX_ERROR;
        }

        var->get_handler = v->get_handler;
        var->data = v->data;
    }

    return NGX_OK;
}


/*
 * Run a phase table.  Each step answers as the phase handler it was: a
 * step that suspends the request (NGX_DONE, NGX_AGAIN: the lockout reads
 * the body, then resumes the phases) is resumed at the same step, as
 * nginx resumes at the same handler, unless the request was redirected
 * since.  In ACCESS, NGX_OK goes on to the next step with "satisfy all"
 * (as nginx's access checker does per handler) and grants access at once
 * with "satisfy any".  A refusal (401/403 too) ends the table: nginx
 * records it under "satisfy any" and asks the other modules ("allow");
 * the later steps (the lockout, the breaker) do not run for a request the
 * edge refused, so no breaker probe is spent on it, and a request that
 * "allow" then grants passes without them.
 */

static ngx_int_t
ngx_http_linguamate_run_steps(ngx_http_request_t *r, ngx_uint_t phase,
    ngx_http_linguamate_step_t *step)
{
    ngx_int_t                        rc, access;
    ngx_uint_t                       i, any;
    ngx_http_linguamate_ctx_t       *ctx;
    ngx_http_core_loc_conf_t        *clcf;
    ngx_http_linguamate_loc_conf_t  *llcf;

    i = 0;
    ctx = NULL;

    if (r == r->main) {

        /*
         * the ctx is made by the first table after POST_READ of a
         * location with the module on (a tRPC call has it from
         * call_read); elsewhere the steps see only one that exists
         */

        llcf = ngx_http_get_module_loc_conf(r, ngx_http_linguamate_module);

        if (llcf->enable && phase != NGX_HTTP_POST_READ_PHASE) {
            ctx = ngx_http_linguamate_get_ctx(r);
            if (ctx == NULL) {
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }

        } else {
            ctx = ngx_http_linguamate_find_ctx(r);
        }
    }

    if (ctx) {

        if (ctx->step_phase == phase + 1
            && ctx->step_uri_changes == r->uri_changes)
        {
            i = ctx->step;
        }

        ctx->step_phase = 0;
    }

    if (ctx && ctx->refusal.set && !ctx->refusal.sent) {

        if (r->uri_changes != ctx->refusal.uri_changes) {
            /*
             * an error_page redirect of a refusal: the location renders
             * it; the edge's policy was applied where it refused
             */
            return NGX_DECLINED;
        }

        if (phase == NGX_HTTP_PRECONTENT_PHASE) {
            /* refused in ACCESS, then granted ("satisfy any") */
            ctx->refusal.set = 0;
        }
    }

    any = 0;

    if (phase == NGX_HTTP_ACCESS_PHASE) {
        clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);
        any = (clcf->satisfy == NGX_HTTP_SATISFY_ANY);
    }

    access = NGX_DECLINED;

    for ( /* void */ ; step[i].handler; i++) {

        ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "linguamate phase %s step: %s",
                       ngx_http_linguamate_phase_names[phase], step[i].name);

        /*
         * where to resume if the step suspends the request: noted before
         * the call, as after NGX_DONE the request may be gone already
         */

        if (ctx) {
            ctx->step = i;
            ctx->step_phase = phase + 1;
            ctx->step_uri_changes = r->uri_changes;
        }

        rc = step[i].handler(r);

        if (rc == NGX_DONE || rc == NGX_AGAIN) {
            return rc;
        }

        if (ctx) {
            ctx->step_phase = 0;
        }

        if (rc == NGX_DECLINED) {
            continue;
        }

        ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "linguamate step %s: %i", step[i].name, rc);

        if (phase == NGX_HTTP_ACCESS_PHASE && rc == NGX_OK && !any) {
            access = NGX_OK;
            continue;
        }

        return rc;
    }

    return access;
}


static ngx_int_t
ngx_http_linguamate_post_read_handler(ngx_http_request_t *r)
{
    return ngx_http_linguamate_run_steps(r, NGX_HTTP_POST_READ_PHASE,
                                         ngx_http_linguamate_post_read_steps);
}


static ngx_int_t
ngx_http_linguamate_rewrite_handler(ngx_http_request_t *r)
{
    return ngx_http_linguamate_run_steps(r, NGX_HTTP_REWRITE_PHASE,
                                         ngx_http_linguamate_rewrite_steps);
}


static ngx_int_t
ngx_http_linguamate_preaccess_handler(ngx_http_request_t *r)
{
    return ngx_http_linguamate_run_steps(r, NGX_HTTP_PREACCESS_PHASE,
                                         ngx_http_linguamate_preaccess_steps);
}


static ngx_int_t
ngx_http_linguamate_access_handler(ngx_http_request_t *r)
{
    return ngx_http_linguamate_run_steps(r, NGX_HTTP_ACCESS_PHASE,
                                         ngx_http_linguamate_access_steps);
}


static ngx_int_t
ngx_http_linguamate_precontent_handler(ngx_http_request_t *r)
{
    return ngx_http_linguamate_run_steps(r, NGX_HTTP_PRECONTENT_PHASE,
                                         ngx_http_linguamate_precontent_steps);
}


/* LOG: every step runs; nginx ignores what a log handler returns */

static ngx_int_t
ngx_http_linguamate_log_handler(ngx_http_request_t *r)
{
    ngx_uint_t  i;

    for (i = 0; ngx_http_linguamate_log_steps[i].handler; i++) {
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "linguamate phase log step: %s",
                       ngx_http_linguamate_log_steps[i].name);

        (void) ngx_http_linguamate_log_steps[i].handler(r);
    }

    return NGX_OK;
}


/*
 * The headers of every answer of a linguamate location: the core's scan
 * of an upstream's headers, the features' own (the lockout's account of
 * the answer, CORS, caching), then the core's x-correlation-id and
 * security headers.  A toolkit attempt (a subrequest) is the toolkit's.
 *
 * A refusal of a phase step: without an error_page nginx is sending its
 * own page for the status, in the refusing location: the refusal's body
 * replaces it (here its type and length, in the body filter the bytes).
 * Rendered by the error endpoint after an error_page redirect, it gets the
 * headers of the refusing location (its CORS, its cache policy), as when
 * the step answered itself: the module's loc conf is the one it refused in.
 */

static ngx_int_t
ngx_http_linguamate_header_filter(ngx_http_request_t *r)
{
    void                           **loc_conf;
    ngx_int_t                        rc;
    ngx_http_linguamate_ctx_t       *ctx;
    ngx_http_linguamate_toolkit_t   *tk;
    ngx_http_linguamate_loc_conf_t  *llcf;

    if (r != r->main) {
        /* a toolkit attempt: held back, or handed to the client */

        if (ngx_http_linguamate_toolkit_owns(r, &tk)) {
            return ngx_http_linguamate_toolkit_header(r, tk);
        }

        return ngx_http_next_header_filter(r);
    }

    ctx = ngx_http_get_module_ctx(r, ngx_http_linguamate_module);

    if (ctx == NULL) {
        llcf = ngx_http_get_module_loc_conf(r, ngx_http_linguamate_module);

        if (!llcf->enable) {
            return ngx_http_next_header_filter(r);
        }

        ctx = ngx_http_linguamate_get_ctx(r);
        if (ctx == NULL) {
            return NGX_ERROR;
        }
    }

    loc_conf = r->loc_conf;

    if (ctx->refusal.swap) {
        ctx->refusal.swap = 0;
        r->loc_conf = ctx->refusal.loc_conf;

    } else if (ngx_http_linguamate_refusal_pending(r, ctx)
               && r->uri_changes == ctx->refusal.uri_changes)
    {
        ctx->refusal_body = ngx_http_linguamate_refusal_buf(r, ctx);
        if (ctx->refusal_body == NULL) {
            return NGX_ERROR;
        }
    }

    llcf = ngx_http_get_module_loc_conf(r, ngx_http_linguamate_module);

    if (!llcf->enable || ctx->headers_done) {
        r->loc_conf = loc_conf;
        return ngx_http_next_header_filter(r);
    }

    ctx->headers_done = 1;

    rc = ngx_http_linguamate_headers(r, ctx, llcf);

    r->loc_conf = loc_conf;

    if (rc != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_http_next_header_filter(r);
}


static ngx_int_t
ngx_http_linguamate_headers(ngx_http_request_t *r,
    ngx_http_linguamate_ctx_t *ctx, ngx_http_linguamate_loc_conf_t *llcf)
{
    ngx_uint_t  present;

    present = ngx_http_linguamate_headers_scan(r, ctx, llcf);

    if (ctx->lockout_zone && ctx->lockout_nkeys
        && ngx_http_linguamate_lockout_account(r, ctx) != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (ngx_http_linguamate_cors_headers(r) != NGX_OK) {
        return NGX_ERROR;
    }

    if (llcf->cache == 1 && ngx_http_linguamate_cache_headers(r) != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_http_linguamate_headers_add(r, ctx, present);
}


static ngx_int_t
ngx_http_linguamate_body_filter(ngx_http_request_t *r, ngx_chain_t *in)
{
    ngx_uint_t                      failed, succeeded, last;
    ngx_chain_t                    *cl, out;
    ngx_http_linguamate_ctx_t      *ctx;
    ngx_http_linguamate_toolkit_t  *tk;

    last = 0;

    if (r != r->main) {
        if (ngx_http_linguamate_toolkit_owns(r, &tk)
            && ngx_http_linguamate_toolkit_body_filter(r, tk, in) == NGX_OK)
        {
            return NGX_OK;
        }

        return ngx_http_next_body_filter(r, in);
    }

    ctx = ngx_http_get_module_ctx(r, ngx_http_linguamate_module);

    if (ctx && ctx->refusal_body) {
        /* nginx's page for a refusal: consumed, the refusal's body sent */

        for (cl = in; cl; cl = cl->next) {
            if (cl->buf->last_buf) {
                last = 1;
            }

            cl->buf->pos = cl->buf->last;
            cl->buf->file_pos = cl->buf->file_last;
        }

        if (!last) {
            return NGX_OK;
        }

        out.buf = ctx->refusal_body;
        out.next = NULL;
        ctx->refusal_body = NULL;

        return ngx_http_next_body_filter(r, &out);
    }

    /* a tRPC batch's 207: which auth procedures failed */

    if (ctx && ctx->trpc_scanning && in) {
        switch (ngx_http_linguamate_trpc_scan(r, ctx, in, &failed,
                                              &succeeded))
        {
        case 1:
            ctx->trpc_scanning = 0;
            ngx_http_linguamate_lockout_scanned(r, ctx, failed, succeeded);
            break;

        case NGX_ERROR:
            ctx->trpc_scanning = 0;
            break;

        default:
            break;
        }
    }

    return ngx_http_next_body_filter(r, in);
}
