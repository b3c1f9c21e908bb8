/*
 * Copyright (C) ngx_linguamate developers
 *
 * The core: the settings, the confs, the request ctx and the core helpers.
 * Each concern has its own header (ngx_http_linguamate_<concern>.h); a
 * file includes this one and only the headers it uses
 * (scripts/check-includes).
 */

#ifndef _NGX_HTTP_LINGUAMATE_MODULE_H_INCLUDED_
#define _NGX_HTTP_LINGUAMATE_MODULE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_linguamate_parse.h"
#include "ngx_http_linguamate_lists.h"

/* the shared zones are the state layer's (ngx_http_linguamate_shm.h) */
typedef struct ngx_http_linguamate_zone_s  ngx_http_linguamate_zone_t;


#define NGX_HTTP_LINGUAMATE_VERSION      "1.0.0"
#define NGX_HTTP_LINGUAMATE_NAME         "Language Learning Backend"

/* the package version and commit compiled in (scripts/build-info.sh) */
extern ngx_str_t  ngx_http_linguamate_build_version;
extern ngx_str_t  ngx_http_linguamate_build_commit;
extern ngx_str_t  ngx_http_linguamate_build_json;

#define NGX_HTTP_LINGUAMATE_ENV_DEVELOPMENT  0
#define NGX_HTTP_LINGUAMATE_ENV_TEST         1
#define NGX_HTTP_LINGUAMATE_ENV_STAGING      2
#define NGX_HTTP_LINGUAMATE_ENV_PRODUCTION   3

/* or-ed into a level: written whatever LOG_LEVEL is (admin_action) */
#define NGX_HTTP_LINGUAMATE_LOG_AUDIT    0x10000

#define NGX_HTTP_LINGUAMATE_SECRET_MIN   32

/*
 * Requests per window: up to LIMIT_MAX a limit is an exact sliding log
 * that keeps each one; above it, up to LIMIT_BUCKETED_MAX, a bucketed
 * window of fixed size (limit.c)
 */
#define NGX_HTTP_LINGUAMATE_LIMIT_MAX    10000
#define NGX_HTTP_LINGUAMATE_LIMIT_BUCKETED_MAX  100000000

/* linguamate_cluster_fail: what a location does while Redis is away */
#define NGX_HTTP_LINGUAMATE_CLUSTER_FAIL_OPEN    0
#define NGX_HTTP_LINGUAMATE_CLUSTER_FAIL_CLOSED  1

/* procedures a tRPC batch may hold */
#define NGX_HTTP_LINGUAMATE_TRPC_MAX     64
#define NGX_HTTP_LINGUAMATE_ISO_LEN  (sizeof("1970-01-01T00:00:00.000Z") - 1)

/*
 * The client telemetry counters of metrics.c: the log records by level
 * (trace .. security), the analytics events, and the refused batches by
 * endpoint and reason (REJECTED + endpoint * REASONS + reason).
 */
#define NGX_HTTP_LINGUAMATE_CM_LEVELS        0
#define NGX_HTTP_LINGUAMATE_CM_ANALYTICS_N   8
#define NGX_HTTP_LINGUAMATE_CM_REJECTED      9
#define NGX_HTTP_LINGUAMATE_CM_N             17

#define NGX_HTTP_LINGUAMATE_CM_INGEST        0
#define NGX_HTTP_LINGUAMATE_CM_ANALYTICS     1

#define NGX_HTTP_LINGUAMATE_CM_VALIDATION    0
#define NGX_HTTP_LINGUAMATE_CM_SIGNATURE     1
#define NGX_HTTP_LINGUAMATE_CM_SKEW          2
#define NGX_HTTP_LINGUAMATE_CM_TOO_LARGE     3
#define NGX_HTTP_LINGUAMATE_CM_REASONS       4

/* linguamate_feature: 0 is none */
#define NGX_HTTP_LINGUAMATE_FEATURE_CHAT         1
#define NGX_HTTP_LINGUAMATE_FEATURE_ANALYTICS    2


/*
 * The settings of the contract.  One line per setting: the environment
 * name, the directive suffix ("linguamate_" + suffix), the kind of value,
 * the default (NULL: none), the field of the main conf, and bounds for
 * numbers.  The command table, the resolver and the docs all follow this
 * list.
 */

#define NGX_HTTP_LINGUAMATE_SETTINGS(X)                                      \
    X(NODE_ENV, node_env, ENV, "development", node_env, 0, 0)                \
    X(PORT, port, UINT, "3000", port, 1, 65535)                              \
    X(WORKER_PROCESSES, worker_processes, WORKERS, "auto",                   \
      worker_processes, 1, 1024)                                             \
    X(JWT_SECRET, jwt_secret, SECRET, NULL, jwt_secret, 0, 0)                \
    X(JWT_SECRET_PREVIOUS, jwt_secret_previous, SECRET, NULL,                \
      jwt_secret_previous, 0, 0)                                             \
    X(JWT_EXPIRES_IN, jwt_expires_in, DURATION, "7d", jwt_expires_in, 0, 0)  \
    X(JWT_REFRESH_EXPIRES_IN, jwt_refresh_expires_in, DURATION, "30d",       \
      jwt_refresh_expires_in, 0, 0)                                          \
    X(JWT_LEEWAY_SECONDS, jwt_leeway_seconds, UINT, "30",                    \
      jwt_leeway, 0, 3600)                                                   \
    X(CORS_ALLOWED_ORIGINS, cors_allowed_origins, ORIGINS, NULL,             \
      cors_origins, 0, 0)                                                    \
    X(CORS_ALLOW_CREDENTIALS, cors_allow_credentials, BOOL, "true",          \
      cors_allow_credentials, 0, 0)                                          \
    X(RATE_LIMIT_WINDOW_MS, rate_limit_window_ms, UINT, "60000",             \
      rate_limit_window_ms, 1000, 86400000)                                  \
    X(RATE_LIMIT_MAX_REQUESTS, rate_limit_max_requests, UINT, "60",          \
      rate_limit_max_requests, 1, NGX_HTTP_LINGUAMATE_LIMIT_BUCKETED_MAX)    \
    X(RATE_LIMIT_MAX_LOGIN_ATTEMPTS, rate_limit_max_login_attempts, UINT,    \
      "5", rate_limit_max_login_attempts, 1, 1000)                           \
    X(RATE_LIMIT_ALLOWLIST, rate_limit_allowlist, CIDRS, NULL,               \
      rate_limit_allowlist, 0, 0)                                            \
    X(RATE_LIMIT_PROBES, rate_limit_probes, BOOL, "false",                   \
      rate_limit_probes, 0, 0)                                               \
    X(CIRCUIT_BREAKER_FAILURE_THRESHOLD, circuit_breaker_failure_threshold,  \
      UINT, "5", cb_failure_threshold, 1, 1000000)                           \
    X(CIRCUIT_BREAKER_VOLUME_THRESHOLD, circuit_breaker_volume_threshold,    \
      UINT, "10", cb_volume_threshold, 1, 1000000)                           \
    X(CIRCUIT_BREAKER_RESET_TIMEOUT_MS, circuit_breaker_reset_timeout_ms,    \
      UINT, "60000", cb_reset_timeout_ms, 100, 86400000)                     \
    X(CIRCUIT_BREAKER_MONITORING_PERIOD_MS,                                  \
      circuit_breaker_monitoring_period_ms, UINT, "60000",                   \
      cb_monitoring_period_ms, 1000, 86400000)                               \
    X(REQUEST_TIMEOUT_MS, request_timeout_ms, UINT, "30000",                 \
      request_timeout_ms, 100, 3600000)                                      \
    X(EXPO_PUBLIC_TOOLKIT_URL, toolkit_url, URL, "https://toolkit.rork.com", \
      toolkit_url, 0, 0)                                                     \
    X(TOOLKIT_API_KEY, toolkit_api_key, SECRET, NULL, toolkit_api_key, 0, 0) \
    X(APP_UPSTREAM_URL, app_upstream_url, URL, NULL, app_upstream_url, 0, 0) \
    X(LOG_LEVEL, log_level, LEVEL, "info", log_level, 0, 0)                  \
    X(LOG_PRETTY, log_pretty, BOOL, "false", log_pretty, 0, 0)               \
    X(LOG_FILE, log_file, PATH, "/dev/stdout", log_file, 0, 0)               \
    X(MAINTENANCE_MODE, maintenance_mode, BOOL, "false", maintenance, 0, 0)  \
    X(FEATURE_CHAT_ENABLED, feature_chat_enabled, BOOL, "true",              \
      feature_chat, 0, 0)                                                    \
    X(FEATURE_ANALYTICS_ENABLED, feature_analytics_enabled, BOOL, "true",    \
      feature_analytics, 0, 0)                                               \
    X(CACHE_TTL_SECONDS, cache_ttl_seconds, UINT, "60", cache_ttl_seconds,   \
      0, 31536000)                                                           \
    X(SECURITY_STRICT_MODE, security_strict_mode, BOOL, "false",             \
      strict_mode, 0, 0)                                                     \
    X(LOG_SIGNING_KEY, log_signing_key, SECRET, NULL, log_signing_key, 0, 0) \
    X(ADMIN_TOKEN, admin_token, SECRET, NULL, admin_token, 0, 0)             \
    X(ADMIN_TOKENS, admin_tokens, SECRET, NULL, admin_tokens, 0, 0)          \
    X(ADMIN_ALLOWLIST, admin_allowlist, CIDRS, "127.0.0.0/8,::1/128",        \
      admin_allowlist, 0, 0)                                                 \
    X(GIT_COMMIT_SHA, git_commit_sha, TEXT, "unknown", git_commit_sha, 0, 0) \
    X(MEMORY_LIMIT_MB, memory_limit_mb, UINT, "0", memory_limit_mb, 0,      \
      16777216)                                                              \
    X(STATE_DIR, state_dir, PATH, ".run/state", state_dir, 0, 0)            \
    X(SECURITY_STRICT_MAX_TOKEN_AGE, security_strict_max_token_age,          \
      DURATION, "1d", strict_max_token_age, 0, 0)                            \
    X(MAINTENANCE_RETRY_AFTER, maintenance_retry_after, DURATION, "5m",      \
      maintenance_retry_after, 0, 0)                                         \
    X(REDIS_URL, redis_url, SECRET, NULL, redis_url, 0, 0)                   \
    X(CLUSTER_SYNC_MS, cluster_sync_ms, UINT, "100", cluster_sync_ms, 10,    \
      10000)


#define NGX_HTTP_LINGUAMATE_SETTING_ID(env, dir, kind, def, field, lo, hi)   \
    NGX_HTTP_LINGUAMATE_S_##env,

enum {
    NGX_HTTP_LINGUAMATE_SETTINGS(NGX_HTTP_LINGUAMATE_SETTING_ID)
    NGX_HTTP_LINGUAMATE_NSETTINGS
};


typedef enum {
    NGX_HTTP_LINGUAMATE_KIND_ENV = 0,
    NGX_HTTP_LINGUAMATE_KIND_UINT,
    NGX_HTTP_LINGUAMATE_KIND_WORKERS,
    NGX_HTTP_LINGUAMATE_KIND_SECRET,
    NGX_HTTP_LINGUAMATE_KIND_DURATION,
    NGX_HTTP_LINGUAMATE_KIND_ORIGINS,
    NGX_HTTP_LINGUAMATE_KIND_BOOL,
    NGX_HTTP_LINGUAMATE_KIND_CIDRS,
    NGX_HTTP_LINGUAMATE_KIND_URL,
    NGX_HTTP_LINGUAMATE_KIND_LEVEL,
    NGX_HTTP_LINGUAMATE_KIND_PATH,
    NGX_HTTP_LINGUAMATE_KIND_TEXT
} ngx_http_linguamate_kind_e;


typedef struct {
    ngx_str_t                   env;
    ngx_str_t                   directive;
    ngx_http_linguamate_kind_e  kind;
    char                       *deflt;
    size_t                      offset;
    uint64_t                    min;
    uint64_t                    max;
} ngx_http_linguamate_setting_t;


/* where a setting's value came from, for messages */
typedef struct {
    ngx_str_t                   value;
    const char                 *source;     /* "directive", "environment" */
    ngx_str_t                   file;
    ngx_uint_t                  line;
    unsigned                    set:1;
} ngx_http_linguamate_raw_t;


typedef struct {
    ngx_str_t                   text;       /* as configured: "7d" */
    time_t                      seconds;
} ngx_http_linguamate_duration_t;


typedef struct ngx_http_linguamate_toolkit_s  ngx_http_linguamate_toolkit_t;


typedef struct {
    ngx_str_t                   name;
    ngx_uint_t                  index;
    ngx_uint_t                  slot;           /* in the shared zone */
    ngx_uint_t                  failure_threshold;
    ngx_uint_t                  volume_threshold;
    ngx_msec_t                  reset_timeout;
    ngx_msec_t                  monitoring_period;
    ngx_msec_t                  probe_timeout;
    ngx_uint_t                  probes;
    uint64_t                    statuses[10];   /* bit per status code */
    unsigned                    statuses_set:1;
} ngx_http_linguamate_breaker_conf_t;


typedef struct ngx_http_linguamate_main_conf_s {
    /* settings, resolved and validated */
    ngx_uint_t                  node_env;
    ngx_uint_t                  port;
    ngx_uint_t                  worker_processes;   /* 0: auto */
    ngx_str_t                   jwt_secret;
    ngx_str_t                   jwt_secret_previous;
    ngx_http_linguamate_duration_t  jwt_expires_in;
    ngx_http_linguamate_duration_t  jwt_refresh_expires_in;
    ngx_uint_t                  jwt_leeway;
    ngx_int_t                   jwt_cache;      /* entries per worker */
    ngx_array_t                *cors_origins;       /* of ngx_str_t */
    ngx_flag_t                  cors_allow_credentials;
    ngx_uint_t                  rate_limit_window_ms;
    ngx_uint_t                  rate_limit_max_requests;
    ngx_uint_t                  rate_limit_max_login_attempts;
    ngx_array_t                *rate_limit_allowlist;   /* of ngx_cidr_t */
    ngx_flag_t                  rate_limit_probes;  /* health, metrics */
    ngx_uint_t                  cb_failure_threshold;
    ngx_uint_t                  cb_volume_threshold;
    ngx_uint_t                  cb_reset_timeout_ms;
    ngx_uint_t                  cb_monitoring_period_ms;
    ngx_uint_t                  request_timeout_ms;
    ngx_str_t                   toolkit_url;
    ngx_str_t                   toolkit_api_key;
    ngx_str_t                   app_upstream_url;
    ngx_uint_t                  log_level;
    ngx_flag_t                  log_pretty;
    ngx_str_t                   log_file;
    ngx_flag_t                  maintenance;
    ngx_flag_t                  feature_chat;
    ngx_flag_t                  feature_analytics;
    ngx_uint_t                  cache_ttl_seconds;
    ngx_flag_t                  strict_mode;
    ngx_str_t                   log_signing_key;
    ngx_str_t                   admin_token;
    ngx_str_t                   admin_tokens;       /* name:token,... */
    ngx_array_t                *admin_allowlist;    /* of ngx_cidr_t */
    ngx_str_t                   git_commit_sha;
    ngx_uint_t                  memory_limit_mb;
    ngx_str_t                   state_dir;
    ngx_http_linguamate_duration_t  strict_max_token_age;
    ngx_http_linguamate_duration_t  maintenance_retry_after;
    ngx_str_t                   redis_url;
    ngx_uint_t                  cluster_sync_ms;
    /* cluster mode (cluster.c): NULL without REDIS_URL */
    void                       *cluster;

    /* where each came from */
    ngx_http_linguamate_raw_t   raw[NGX_HTTP_LINGUAMATE_NSETTINGS];
    ngx_str_t                   env_file;
    ngx_flag_t                  env_from_process;

    /* derived at configuration time */
    ngx_str_t                   env_name;       /* "production" */
    ngx_str_t                   hostname;
    ngx_open_file_t            *log;
    ngx_array_t                 warnings;       /* of ngx_str_t */
    ngx_str_t                   not_ready;      /* empty: ready */
    ngx_msec_t                  master_start;   /* epoch ms */
    ngx_uint_t                  secret_is_default;
    ngx_array_t                *admin_keys;     /* admin.c: names, digests */

    ngx_array_t                 zones;  /* of ngx_http_linguamate_zone_t * */
    ngx_http_linguamate_zone_t *session_zone;
    ngx_http_linguamate_zone_t *metrics_zone;
    ngx_http_linguamate_zone_t *breakers_zone;
    ngx_array_t                 breakers;
                                    /* of ngx_http_linguamate_breaker_conf_t */
    ngx_array_t                 routes;     /* of ngx_str_t; index + 1 */

    /* linguamate_event_log: the analytics events; NULL: the server log */
    ngx_str_t                   event_log_path;
    ngx_open_file_t            *event_log;

    ngx_str_t                   trpc_prefix;    /* "/api/trpc/" */

    /* the live flags; NULL until the zone is mapped ("nginx -t") */
    ngx_http_linguamate_zone_t *flags_zone;
    struct ngx_http_linguamate_flags_s  *flags;
    /* LOG_LEVEL in force, in the flags zone: read by the log writer */
    ngx_atomic_t               *live_log_level;
} ngx_http_linguamate_main_conf_t;


typedef struct {
    ngx_http_linguamate_zone_t *zone;
    ngx_flag_t                  dry_run;
} ngx_http_linguamate_limit_t;


typedef struct {
    ngx_flag_t                  enable;
    ngx_uint_t                  endpoint;
    ngx_str_t                   route;
    ngx_uint_t                  route_index;    /* 0: "other" */
    ngx_flag_t                  metrics;
    ngx_array_t                *limits;     /* of ngx_http_linguamate_limit_t */
    ngx_flag_t                  probe;      /* inherited limits skipped */
    ngx_flag_t                  limit_dry_run;
    ngx_uint_t                  cluster_fail;   /* linguamate_cluster_fail */
    ngx_http_linguamate_zone_t *lockout;
    ngx_uint_t                  auth;
    ngx_http_linguamate_breaker_conf_t  *breaker;
    ngx_str_t                   toolkit_path;
    ngx_flag_t                  toolkit_multipart;
    ngx_flag_t                  cors;
    ngx_uint_t                  feature;
    ngx_flag_t                  maintenance;    /* subject to it */
    ngx_flag_t                  cache;
    ngx_flag_t                  trpc;           /* proxies to the app */
} ngx_http_linguamate_loc_conf_t;


#define NGX_HTTP_LINGUAMATE_LIMIT_NONE         0
#define NGX_HTTP_LINGUAMATE_LIMIT_PASSED       1
#define NGX_HTTP_LINGUAMATE_LIMIT_ALLOWLISTED  2
#define NGX_HTTP_LINGUAMATE_LIMIT_DRY_RUN      3
#define NGX_HTTP_LINGUAMATE_LIMIT_REJECTED     4


#define NGX_HTTP_LINGUAMATE_AUTH_OFF        0
#define NGX_HTTP_LINGUAMATE_AUTH_ON         1
#define NGX_HTTP_LINGUAMATE_AUTH_OPTIONAL   2
/* optional even in strict mode (public procedures), a bad token refused */
#define NGX_HTTP_LINGUAMATE_AUTH_PUBLIC     3


typedef struct {
    ngx_str_t                   sub;
    ngx_str_t                   sid;
    ngx_str_t                   type;
    ngx_str_t                   jti;
    ngx_str_t                   payload;    /* the claims as JSON */
    time_t                      exp;
    time_t                      nbf;
    time_t                      iat;
    int64_t                     iat_ms;     /* the edge's own claim */
    unsigned                    has_nbf:1;
    unsigned                    has_iat:1;
    unsigned                    has_iat_ms:1;
} ngx_http_linguamate_claims_t;


/*
 * A refusal of a phase step (json.c: ngx_http_linguamate_phase_error()),
 * kept until the error endpoint or the filters answer with it.
 */
typedef struct {
    ngx_uint_t                  status;
    const char                 *code;           /* a literal */
    u_char                     *message;        /* NUL-terminated, pool */
    ngx_str_t                   extra;          /* JSON fields, ",..." */
    void                      **loc_conf;       /* of the refusing location */
    ngx_uint_t                  uri_changes;
    unsigned                    keepalive:1;
    unsigned                    set:1;
    unsigned                    sent:1;
    unsigned                    swap:1;         /* headers: as refused */
} ngx_http_linguamate_refusal_t;


typedef struct {
    ngx_str_t                   corr_id;
    ngx_str_t                   session_id;
    u_char                      corr_buf[NGX_HTTP_LINGUAMATE_UUID_LEN];
    ngx_uint_t                  limit_status;
    ngx_uint_t                  route_index;
    ngx_http_linguamate_zone_t *lockout_zone;
    ngx_str_t                  *lockout_key;        /* ip:, email:... */
    ngx_uint_t                  lockout_nkeys;
    ngx_uint_t                  lockout_refuse;     /* why not read */
    ngx_array_t                *lockout_events;     /* locks to write out */
    ngx_http_linguamate_claims_t  claims;
    ngx_http_linguamate_breaker_conf_t  *breaker;   /* passed its gate */
    ngx_http_linguamate_toolkit_t      *toolkit;
    ngx_uint_t                  breaker_period;     /* of the probe */
    unsigned                    breaker_probe:1;
    unsigned                    lockout_ambiguous:1;
    unsigned                    cors_done:1;
    unsigned                    auth_done:1;
    unsigned                    auth_ok:1;
    unsigned                    headers_done:1;
    unsigned                    limit_done:1;
    unsigned                    lockout_done:1;
    unsigned                    body_reading:1;
    unsigned                    body_read:1;
    unsigned                    deadline:1;     /* REQUEST_TIMEOUT_MS */

    /* a tRPC call: its procedures, from the request line */
    ngx_str_t                  *trpc_procs;
    ngx_str_t                   trpc_path;      /* all of it */
    ngx_uint_t                  trpc_n;
    uint64_t                    trpc_auth;      /* bit per auth procedure */
    ngx_uint_t                  trpc_auth_n;
    void                       *trpc_scan;
    unsigned                    trpc_done:1;
    unsigned                    trpc:1;
    unsigned                    trpc_batch:1;
    unsigned                    trpc_too_many:1;
    unsigned                    trpc_chat:1;
    unsigned                    trpc_analytics:1;
    unsigned                    trpc_scanning:1;
    unsigned                    trpc_bad:1;     /* not canonical */

    ngx_http_linguamate_refusal_t  refusal;
    ngx_buf_t                  *refusal_body;   /* in place of nginx's */

    /* a phase's step that suspended (NGX_DONE, NGX_AGAIN): resumed there */
    ngx_uint_t                  step;
    ngx_uint_t                  step_phase;     /* phase + 1; 0: none */
    ngx_uint_t                  step_uri_changes;
} ngx_http_linguamate_ctx_t;


/* a step of a phase table (module.c): a feature's handler, and why here */
typedef struct {
    ngx_http_handler_pt         handler;
    const char                 *name;
    const char                 *reason;
} ngx_http_linguamate_step_t;


extern ngx_module_t  ngx_http_linguamate_module;
extern ngx_http_linguamate_setting_t  ngx_http_linguamate_settings[];


/*
 * The core's helpers (request.c, call.c): the ctx, header helpers, the
 * route, the request line read as a tRPC call.  Every file may use them;
 * they call no feature.
 */

/* request.c */
ngx_http_linguamate_ctx_t *ngx_http_linguamate_get_ctx(ngx_http_request_t *r);
ngx_http_linguamate_ctx_t *ngx_http_linguamate_find_ctx(ngx_http_request_t *r);
void ngx_http_linguamate_random_reset(void);
ngx_table_elt_t *ngx_http_linguamate_list_header(ngx_list_t *list,
    ngx_str_t *name);
ngx_table_elt_t *ngx_http_linguamate_find_header(ngx_http_request_t *r,
    ngx_str_t *name);
ngx_int_t ngx_http_linguamate_add_header(ngx_http_request_t *r,
    const char *name, size_t name_len, u_char *value, size_t len);
ngx_int_t ngx_http_linguamate_client_allowlisted(ngx_http_request_t *r,
    ngx_array_t *cidrs);
void ngx_http_linguamate_route(ngx_http_request_t *r, ngx_str_t *route);
ngx_uint_t ngx_http_linguamate_headers_scan(ngx_http_request_t *r,
    ngx_http_linguamate_ctx_t *ctx, ngx_http_linguamate_loc_conf_t *llcf);
ngx_int_t ngx_http_linguamate_headers_add(ngx_http_request_t *r,
    ngx_http_linguamate_ctx_t *ctx, ngx_uint_t present);
ngx_int_t ngx_http_linguamate_corr_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
ngx_int_t ngx_http_linguamate_env_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);

/* call.c */
ngx_int_t ngx_http_linguamate_call_read(ngx_http_request_t *r);
void ngx_http_linguamate_trpc_parse(ngx_http_request_t *r,
    ngx_http_linguamate_ctx_t *ctx);
ngx_int_t ngx_http_linguamate_trpc_arg(ngx_http_request_t *r,
    const char *name, ngx_str_t *value);
size_t ngx_http_linguamate_form_decode(u_char *dst, u_char *src, size_t len);


#endif /* _NGX_HTTP_LINGUAMATE_MODULE_H_INCLUDED_ */
