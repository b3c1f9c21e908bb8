/*
 * Copyright (C) ngx_linguamate developers
 *
 * The module's lists, as X-macros: the log levels, the client's log
 * levels, the auth reasons, the live flags, the revocation kinds and the
 * built-in endpoints.  Each list is written once here; the enums below
 * and the tables of the files that use it are generated from it, so an
 * entry is added with one line (and, for an endpoint or a flag, the code
 * that gives it a meaning).  Names are the contract's: byte for byte.
 */

#ifndef _NGX_HTTP_LINGUAMATE_LISTS_H_INCLUDED_
#define _NGX_HTTP_LINGUAMATE_LISTS_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>


/*
 * Log levels, pino's.  X(ID, number, name, line): the constant
 * NGX_HTTP_LINGUAMATE_LOG_<ID>, pino's number (the "level" of a line),
 * the name LOG_LEVEL takes (any case) and the flags API shows, and whether
 * a line can have the level: "silent" is a threshold only (no line is
 * written at it, the pretty log would call one "LOG", PATCH does not set
 * it).  The pretty log's name is #ID.  Used by log.c (pretty names),
 * settings.c (LOG_LEVEL), flags.c (the live logLevel) and, through the
 * client levels below, ingest.c.
 */

#define NGX_HTTP_LINGUAMATE_LOG_LEVELS(X)                                    \
    X(TRACE, 10, "trace", 1)                                                 \
    X(DEBUG, 20, "debug", 1)                                                 \
    X(INFO, 30, "info", 1)                                                   \
    X(WARN, 40, "warn", 1)                                                   \
    X(ERROR, 50, "error", 1)                                                 \
    X(FATAL, 60, "fatal", 1)                                                 \
    X(SILENT, 100, "silent", 0)

#define NGX_HTTP_LINGUAMATE_LOG_LEVEL_ID(id, n, name, line)                  \
    NGX_HTTP_LINGUAMATE_LOG_##id = (n),
#define NGX_HTTP_LINGUAMATE_LOG_LEVEL_INDEX(id, n, name, line)               \
    NGX_HTTP_LINGUAMATE_LOGI_##id,

enum {
    NGX_HTTP_LINGUAMATE_LOG_LEVELS(NGX_HTTP_LINGUAMATE_LOG_LEVEL_ID)
};

/* their positions in the list, and the count */
enum {
    NGX_HTTP_LINGUAMATE_LOG_LEVELS(NGX_HTTP_LINGUAMATE_LOG_LEVEL_INDEX)
    NGX_HTTP_LINGUAMATE_NLOG_LEVELS
};


/*
 * The levels of the app's log records (/api/ingest/logs, the contract's
 * "lvl").  X(ID, level, label, security): the name as the app sends it is
 * #ID; the server log line's level (NGX_HTTP_LINGUAMATE_LOG_<level>); the
 * label of linguamate_client_logs_total{level}; security records carry
 * "security":true.  The counters follow this order from CM_LEVELS on.
 */

#define NGX_HTTP_LINGUAMATE_CLIENT_LEVELS(X)                                 \
    X(TRACE, TRACE, "trace", 0)                                              \
    X(DEBUG, DEBUG, "debug", 0)                                              \
    X(INFO, INFO, "info", 0)                                                 \
    X(NOTICE, INFO, "notice", 0)                                             \
    X(WARN, WARN, "warn", 0)                                                 \
    X(ERROR, ERROR, "error", 0)                                              \
    X(FATAL, FATAL, "fatal", 0)                                              \
    X(SECURITY, WARN, "security", 1)

#define NGX_HTTP_LINGUAMATE_CLIENT_LEVEL_ID(id, level, label, security)      \
    NGX_HTTP_LINGUAMATE_CL_##id,

enum {
    NGX_HTTP_LINGUAMATE_CLIENT_LEVELS(NGX_HTTP_LINGUAMATE_CLIENT_LEVEL_ID)
    NGX_HTTP_LINGUAMATE_NCLIENT_LEVELS
};


/*
 * Why a token is refused: the contract's "reason" of a 401, the label of
 * linguamate_auth_failures_total{reason} and the WWW-Authenticate
 * error_description.  X(ID, name, message): the constant
 * NGX_HTTP_LINGUAMATE_AUTH_<ID> (0 is NGX_HTTP_LINGUAMATE_AUTH_OK), the
 * name, and the envelope's message.  Used by jwt.c and metrics.c.
 */

#define NGX_HTTP_LINGUAMATE_AUTH_REASONS(X)                                  \
    X(MISSING, "MISSING", "Authentication required")                         \
    X(MALFORMED, "MALFORMED", "Invalid token")                               \
    X(BAD_SIGNATURE, "BAD_SIGNATURE", "Invalid token")                       \
    X(EXPIRED, "TOKEN_EXPIRED", "Invalid token")                             \
    X(NOT_YET_VALID, "NOT_YET_VALID", "Invalid token")                       \
    X(WRONG_TYPE, "WRONG_TYPE", "Invalid token")                             \
    X(REVOKED, "REVOKED", "Invalid token")

#define NGX_HTTP_LINGUAMATE_AUTH_REASON_ID(id, name, message)                \
    NGX_HTTP_LINGUAMATE_AUTH_##id,

enum {
    NGX_HTTP_LINGUAMATE_AUTH_OK = 0,
    NGX_HTTP_LINGUAMATE_AUTH_REASONS(NGX_HTTP_LINGUAMATE_AUTH_REASON_ID)
    NGX_HTTP_LINGUAMATE_NAUTH_REASONS       /* with AUTH_OK */
};


/*
 * The live flags (PATCH /api/admin/flags, flags.state, GET
 * /api/admin/state).  X(ID, name, setting): the constant
 * NGX_HTTP_LINGUAMATE_F_<ID>, the name in the API and in flags.state (a
 * dot nests it: "features.chat" is {"features":{"chat":...}}), and the
 * setting it starts from, whose kind (BOOL, LEVEL, UINT) and bounds are
 * the flag's.  The order is the API's.  flags.c holds everything else.
 */

#define NGX_HTTP_LINGUAMATE_FLAGS(X)                                         \
    X(MAINTENANCE, "maintenance", MAINTENANCE_MODE)                          \
    X(CHAT, "features.chat", FEATURE_CHAT_ENABLED)                           \
    X(ANALYTICS, "features.analytics", FEATURE_ANALYTICS_ENABLED)            \
    X(STRICT, "strictMode", SECURITY_STRICT_MODE)                            \
    X(LOG_LEVEL, "logLevel", LOG_LEVEL)                                      \
    X(CACHE_TTL, "cacheTtlSeconds", CACHE_TTL_SECONDS)

#define NGX_HTTP_LINGUAMATE_FLAG_ID(id, name, setting)                       \
    NGX_HTTP_LINGUAMATE_F_##id,

enum {
    NGX_HTTP_LINGUAMATE_FLAGS(NGX_HTTP_LINGUAMATE_FLAG_ID)
    NGX_HTTP_LINGUAMATE_NFLAGS
};


/*
 * A refused PATCH /api/admin/flags: the field (at most 64 bytes, NUL
 * terminated, in the request's pool) and the message (static)
 */

typedef struct {
    const char                 *field;
    const char                 *message;
} ngx_http_linguamate_flags_error_t;


/*
 * What a revocation covers.  X(ID, name, before): the constant
 * NGX_HTTP_LINGUAMATE_REVOKE_<ID>, the name of the operations API's answer
 * ("revoked") and the session zone's key prefix, and whether it revokes
 * every token issued up to now (else the session, whatever its tokens'
 * issue time).
 */

#define NGX_HTTP_LINGUAMATE_REVOKE_KINDS(X)                                  \
    X(ALL, "all", 1)                                                         \
    X(USER, "sub", 1)                                                        \
    X(SESSION, "sid", 0)

#define NGX_HTTP_LINGUAMATE_REVOKE_ID(id, name, before)                      \
    NGX_HTTP_LINGUAMATE_REVOKE_##id,

typedef enum {
    NGX_HTTP_LINGUAMATE_REVOKE_KINDS(NGX_HTTP_LINGUAMATE_REVOKE_ID)
    NGX_HTTP_LINGUAMATE_NREVOKE_KINDS
} ngx_http_linguamate_revoke_e;


/*
 * The built-in endpoints, "linguamate_endpoint NAME".  X(ID, name,
 * handler, methods, probe, cache, maintenance):
 *
 *   ID           the constant NGX_HTTP_LINGUAMATE_EP_<ID> (0 is EP_NONE)
 *   name         the directive's value
 *   handler      ngx_http_linguamate_<handler>(r), the content handler
 *   methods      GET_HEAD (others get a 405 with "Allow: GET, HEAD", the
 *                body is discarded), POST (others get a 405 with "Allow:
 *                POST") or ANY (the handler checks the method itself)
 *   probe        a probe (load balancers, Prometheus): outside the limits
 *                it inherits unless RATE_LIMIT_PROBES (module.c's merge)
 *   cache        caching headers by default ("linguamate_cache", module.c)
 *   maintenance  refused in maintenance mode (flags.c); 0: answers anyway
 *
 * Adding an endpoint: a line here and its handler; module.c (the
 * directive), health.c (the dispatch) and flags.c follow the list.
 */

#define NGX_HTTP_LINGUAMATE_ENDPOINTS(X)                                     \
    X(ROOT, "root", root, GET_HEAD, 0, 0, 1)                                 \
    X(HEALTH, "health", health, GET_HEAD, 1, 0, 0)                           \
    X(HEALTH_LIVE, "health_live", health_live, GET_HEAD, 1, 0, 0)            \
    X(HEALTH_READY, "health_ready", health_ready, GET_HEAD, 1, 0, 0)         \
    X(HEALTH_DETAILED, "health_detailed", health_detailed, GET_HEAD,         \
      1, 0, 0)                                                               \
    X(INFO, "info", info, GET_HEAD, 0, 1, 1)                                 \
    X(NOT_FOUND, "not_found", not_found, ANY, 0, 0, 1)                       \
    X(ERROR, "error", error_page, ANY, 0, 0, 0)                              \
    X(ADMIN, "admin", admin_handler, ANY, 0, 0, 0)                           \
    X(AUTH_SESSION, "auth_session", auth_session, GET_HEAD, 0, 0, 1)         \
    X(AUTH_REFRESH, "auth_refresh", auth_refresh, ANY, 0, 0, 1)              \
    X(AUTH_LOGOUT, "auth_logout", auth_logout, POST, 0, 0, 1)                \
    X(METRICS, "metrics", metrics_handler, GET_HEAD, 1, 0, 0)                \
    X(TOOLKIT_HEALTH, "toolkit_health", toolkit_health, GET_HEAD, 0, 1, 1)   \
    X(INGEST_LOGS, "ingest_logs", ingest_handler, ANY, 0, 0, 1)              \
    X(ANALYTICS_EVENTS, "analytics_events", ingest_handler, ANY, 0, 0, 1)

#define NGX_HTTP_LINGUAMATE_EP_ID(id, name, h, m, probe, cache, maint)       \
    NGX_HTTP_LINGUAMATE_EP_##id,

enum {
    NGX_HTTP_LINGUAMATE_EP_NONE = 0,
    NGX_HTTP_LINGUAMATE_ENDPOINTS(NGX_HTTP_LINGUAMATE_EP_ID)
    NGX_HTTP_LINGUAMATE_NENDPOINTS          /* with EP_NONE */
};

/* the methods column: the methods let through, and the Allow of a 405 */
#define NGX_HTTP_LINGUAMATE_M_GET_HEAD        (NGX_HTTP_GET|NGX_HTTP_HEAD)
#define NGX_HTTP_LINGUAMATE_M_GET_HEAD_ALLOW  "GET, HEAD"
#define NGX_HTTP_LINGUAMATE_M_POST            NGX_HTTP_POST
#define NGX_HTTP_LINGUAMATE_M_POST_ALLOW      "POST"
#define NGX_HTTP_LINGUAMATE_M_ANY             0
#define NGX_HTTP_LINGUAMATE_M_ANY_ALLOW       NULL

#endif /* _NGX_HTTP_LINGUAMATE_LISTS_H_INCLUDED_ */
