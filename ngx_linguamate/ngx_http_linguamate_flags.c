/*
 * Copyright (C) ngx_linguamate developers
 *
 * Live operations flags: maintenance, the chat and analytics features,
 * strict mode, the log level and the cache TTL.  They sit in a small
 * shared zone, start from the configuration (directive, environment, env
 * file) and are changed live by PATCH /api/admin/flags; every worker reads
 * them with one atomic load on the next request.
 *
 * The rule between a live change and the configuration: a flag changed
 * live keeps its live value until an operator clears it (null in a PATCH)
 * or until the configured value changes (seen at a reload or a start): a
 * live change records the configured value it overrode, and when the
 * configuration no longer says that, the configuration wins.  Live changes
 * are written to STATE_DIR/flags.state so that they survive a restart:
 * a snapshot of the state layer (ngx_http_linguamate_state.c), rewritten
 * whole at each change, "flag" records.
 */


#include <yajl/yajl_tree.h>

#include "ngx_http_linguamate_module.h"
#include "ngx_http_linguamate_json.h"
#include "ngx_http_linguamate_log.h"
#include "ngx_http_linguamate_shm.h"
#include "ngx_http_linguamate_state.h"
#include "ngx_http_linguamate_flags.h"
#include "ngx_http_linguamate_flags_parse.h"


#define NGX_HTTP_LINGUAMATE_FLAGS_SIZE  (32 * 1024)
#define NGX_HTTP_LINGUAMATE_CACHE_SLOTS 256


typedef struct {
    ngx_atomic_t                value;      /* in force */
    ngx_atomic_t                live;       /* 1: set by the API */
    ngx_atomic_t                base;       /* the configured value then */
    ngx_atomic_t                since;      /* epoch seconds of the change */
} ngx_http_linguamate_flag_t;


struct ngx_http_linguamate_flags_s {
    ngx_http_linguamate_flag_t  f[NGX_HTTP_LINGUAMATE_NFLAGS];
    ngx_atomic_t                generation;
    ngx_atomic_t                saved;      /* unused (the zone's layout) */
    /* cache purges: of all entries, of the procedures of a slot */
    ngx_atomic_t                cache_all;
    ngx_atomic_t                cache_slot[NGX_HTTP_LINGUAMATE_CACHE_SLOTS];
    /* a digest of each setting's value, to tell a reload what changed */
    uint32_t                    settings[NGX_HTTP_LINGUAMATE_NSETTINGS];
};

typedef struct ngx_http_linguamate_flags_s  ngx_http_linguamate_flags_t;


typedef struct {
    ngx_http_linguamate_main_conf_t  *lmcf;
    ngx_http_linguamate_state_t      *state;    /* STATE_DIR/flags.state */
} ngx_http_linguamate_flags_zone_t;


/* the tables of NGX_HTTP_LINGUAMATE_FLAGS, by flag */

#define NGX_HTTP_LINGUAMATE_FLAG_ENV(id, name, setting)  #setting,
#define NGX_HTTP_LINGUAMATE_FLAG_SETTING(id, name, setting)                  \
    NGX_HTTP_LINGUAMATE_S_##setting,

static const char  *ngx_http_linguamate_flag_envs[] = {
    NGX_HTTP_LINGUAMATE_FLAGS(NGX_HTTP_LINGUAMATE_FLAG_ENV)
};

static const ngx_uint_t  ngx_http_linguamate_flag_settings[] = {
    NGX_HTTP_LINGUAMATE_FLAGS(NGX_HTTP_LINGUAMATE_FLAG_SETTING)
};

/* the endpoints' maintenance column; a proxied location (EP_NONE) is in */

#define NGX_HTTP_LINGUAMATE_EP_MAINTENANCE(id, name, h, m, probe, cache,    \
                                           maint)                            \
    [NGX_HTTP_LINGUAMATE_EP_##id] = (maint),

static const u_char  ngx_http_linguamate_endpoint_maintenance[] = {
    [NGX_HTTP_LINGUAMATE_EP_NONE] = 1,
    NGX_HTTP_LINGUAMATE_ENDPOINTS(NGX_HTTP_LINGUAMATE_EP_MAINTENANCE)
};

#if (NGX_HTTP_CACHE)
/* NGX_HTTP_CACHE_MISS .. NGX_HTTP_CACHE_SCARCE, as $upstream_cache_status */
static ngx_str_t  ngx_http_linguamate_cache_statuses[] = {
    ngx_string("MISS"), ngx_string("BYPASS"), ngx_string("EXPIRED"),
    ngx_string("STALE"), ngx_string("UPDATING"), ngx_string("REVALIDATED"),
    ngx_string("HIT"), ngx_string("MISS")
};
#endif


static ngx_uint_t ngx_http_linguamate_flag_conf(
    ngx_http_linguamate_main_conf_t *lmcf, ngx_uint_t flag);
static ngx_int_t ngx_http_linguamate_flags_fresh(
    ngx_http_linguamate_zone_t *zone, ngx_log_t *log);
static ngx_int_t ngx_http_linguamate_flags_kept(
    ngx_http_linguamate_zone_t *zone, ngx_log_t *log);
static ngx_int_t ngx_http_linguamate_flags_apply(
    ngx_http_linguamate_state_t *st, ngx_http_linguamate_state_rec_t *rec,
    ngx_log_t *log);
static ngx_int_t ngx_http_linguamate_flags_snapshot(
    ngx_http_linguamate_state_t *st, ngx_http_linguamate_state_emit_pt emit,
    void *sink, ngx_log_t *log);
static void ngx_http_linguamate_flags_dropped(
    ngx_http_linguamate_main_conf_t *lmcf, ngx_uint_t flag, ngx_uint_t live,
    ngx_uint_t conf);
static void ngx_http_linguamate_settings_digest(
    ngx_http_linguamate_main_conf_t *lmcf, ngx_http_linguamate_flags_t *fl,
    ngx_uint_t log);


/* create the flags zone; called once per configuration */

ngx_int_t
ngx_http_linguamate_flags_init(ngx_conf_t *cf,
    ngx_http_linguamate_main_conf_t *lmcf)
{
    ngx_str_t                          name, sig;
    ngx_http_linguamate_zone_t        *zone;
    ngx_http_linguamate_flags_zone_t  *fz;

    fz = ngx_pcalloc(cf->pool, sizeof(ngx_http_linguamate_flags_zone_t));
    if (fz == NULL) {
        return NGX_ERROR;
    }

    fz->lmcf = lmcf;

    ngx_str_set(&name, "linguamate_flags");
    ngx_str_set(&sig, "the flags zone");

    zone = ngx_http_linguamate_zone_add(cf, lmcf, &name,
                                        NGX_HTTP_LINGUAMATE_FLAGS_SIZE,
                                        NGX_HTTP_LINGUAMATE_ZONE_FLAGS, &sig);
    if (zone == NULL) {
        return NGX_ERROR;
    }

    zone->data = fz;
    zone->init_fresh = ngx_http_linguamate_flags_fresh;
    zone->init_kept = ngx_http_linguamate_flags_kept;

    /* a snapshot, rewritten whole at each change: six lines at most */

    fz->state = ngx_http_linguamate_state_create(cf, zone, &lmcf->state_dir,
                                        "flags.state",
                                        ngx_http_linguamate_flags_apply,
                                        ngx_http_linguamate_flags_snapshot,
                                        fz);
    if (fz->state == NULL) {
        return NGX_ERROR;
    }

    fz->state->snapshot_only = 1;

    lmcf->flags_zone = zone;

    return NGX_OK;
}


/* the value in force: live when the zone is mapped, else as configured */

ngx_uint_t
ngx_http_linguamate_flag(ngx_http_linguamate_main_conf_t *lmcf,
    ngx_uint_t flag)
{
    if (lmcf->flags) {
        return (ngx_uint_t) lmcf->flags->f[flag].value;
    }

    return ngx_http_linguamate_flag_conf(lmcf, flag);
}


ngx_int_t
ngx_http_linguamate_maintenance_on(ngx_http_linguamate_main_conf_t *lmcf)
{
    return ngx_http_linguamate_flag(lmcf, NGX_HTTP_LINGUAMATE_F_MAINTENANCE)
           != 0;
}


/* the configured value: the flag's setting */

static ngx_uint_t
ngx_http_linguamate_flag_conf(ngx_http_linguamate_main_conf_t *lmcf,
    ngx_uint_t flag)
{
    u_char                         *field;
    ngx_http_linguamate_setting_t  *s;

    s = &ngx_http_linguamate_settings[ngx_http_linguamate_flag_settings[flag]];
    field = (u_char *) lmcf + s->offset;

    if (s->kind == NGX_HTTP_LINGUAMATE_KIND_BOOL) {
        return *(ngx_flag_t *) field ? 1 : 0;
    }

    return *(ngx_uint_t *) field;
}


/* at start: the configuration, then the live changes that still apply */

static ngx_int_t
ngx_http_linguamate_flags_fresh(ngx_http_linguamate_zone_t *zone,
    ngx_log_t *log)
{
    ngx_uint_t                         i;
    ngx_http_linguamate_flags_t       *fl;
    ngx_http_linguamate_flags_zone_t  *fz;

    fz = zone->data;

    fl = ngx_slab_calloc(zone->shpool, sizeof(ngx_http_linguamate_flags_t));
    if (fl == NULL) {
        return NGX_ERROR;
    }

    for (i = 0; i < NGX_HTTP_LINGUAMATE_NFLAGS; i++) {
        fl->f[i].value = ngx_http_linguamate_flag_conf(fz->lmcf, i);
    }

    /*
     * the cache on disk outlives the zone: a generation that starts from
     * the clock (ms) is above any an earlier run reached, so what was
     * purged then stays unreachable
     */

    fl->cache_all = (ngx_atomic_uint_t) ngx_time() * 1000;

    zone->sh->data = fl;
    fz->lmcf->flags = fl;
    fz->lmcf->live_log_level =
        &fl->f[NGX_HTTP_LINGUAMATE_F_LOG_LEVEL].value;

    ngx_http_linguamate_settings_digest(fz->lmcf, fl, 0);

    if (ngx_http_linguamate_state_path(fz->state) != NGX_OK) {
        return NGX_ERROR;
    }

    if (ngx_http_linguamate_state_load(fz->state, log) == NGX_OK) {
        ngx_log_error(NGX_LOG_NOTICE, log, 0,
                      "linguamate: live flag changes restored from \"%V\"",
                      &fz->state->path);
    }

    /* what was dropped is gone from the file too: the load compacts it */

    return NGX_OK;
}


/*
 * At a reload: a flag not changed live takes the new configured value; a
 * live change stays unless the configured value it overrode has changed.
 */

static ngx_int_t
ngx_http_linguamate_flags_kept(ngx_http_linguamate_zone_t *zone,
    ngx_log_t *log)
{
    ngx_uint_t                         i, conf, dropped;
    ngx_http_linguamate_flags_t       *fl;
    ngx_http_linguamate_flags_zone_t  *fz;

    fz = zone->data;
    fl = zone->sh->data;
    fz->lmcf->flags = fl;
    fz->lmcf->live_log_level =
        &fl->f[NGX_HTTP_LINGUAMATE_F_LOG_LEVEL].value;

    if (ngx_http_linguamate_state_path(fz->state) != NGX_OK) {
        return NGX_ERROR;
    }

    dropped = 0;

    ngx_shmtx_lock(&zone->shpool->mutex);

    for (i = 0; i < NGX_HTTP_LINGUAMATE_NFLAGS; i++) {
        conf = ngx_http_linguamate_flag_conf(fz->lmcf, i);

        if (fl->f[i].live && fl->f[i].base == conf) {
            continue;
        }

        if (fl->f[i].live) {
            ngx_http_linguamate_flags_dropped(fz->lmcf, i, fl->f[i].value,
                                              conf);
            fl->f[i].live = 0;
            dropped = 1;
        }

        fl->f[i].value = conf;
    }

    fl->generation++;

    ngx_shmtx_unlock(&zone->shpool->mutex);

    ngx_http_linguamate_settings_digest(fz->lmcf, fl, 1);

    if (dropped) {
        (void) ngx_http_linguamate_state_compact(fz->state, log);
    }

    return NGX_OK;
}


/*
 * At a reload, a config_reloaded line names the settings whose value
 * changed (never the values: secrets are among them), so that a secret
 * rotation is in the audit trail too.  Runs in the master.
 */

static void
ngx_http_linguamate_settings_digest(ngx_http_linguamate_main_conf_t *lmcf,
    ngx_http_linguamate_flags_t *fl, ngx_uint_t log)
{
    u_char      buf[2048], *p, *last;
    uint32_t    h;
    ngx_str_t   msg, extra;
    ngx_uint_t  i, n;

    p = ngx_cpymem(buf, ",\"cat\":\"config\",\"changed\":[",
                   sizeof(",\"cat\":\"config\",\"changed\":[") - 1);
    last = buf + sizeof(buf) - 4;
    n = 0;

    for (i = 0; i < NGX_HTTP_LINGUAMATE_NSETTINGS; i++) {
        h = lmcf->raw[i].set
            ? ngx_crc32_long(lmcf->raw[i].value.data, lmcf->raw[i].value.len)
              ^ 0x5a5a5a5a
            : 0;

        if (log && h != fl->settings[i]
            && last - p > (ssize_t) ngx_http_linguamate_settings[i].env.len + 4)
        {
            p = ngx_sprintf(p, "%s\"%V\"", n++ ? "," : "",
                            &ngx_http_linguamate_settings[i].env);
        }

        fl->settings[i] = h;
    }

    if (!log) {
        return;
    }

    *p++ = ']';

    extra.data = buf;
    extra.len = p - buf;

    if (n) {
        ngx_str_set(&msg, "configuration reloaded; settings changed");

    } else {
        ngx_str_set(&msg, "configuration reloaded; no setting changed");
    }

    ngx_http_linguamate_log_event(lmcf,
        NGX_HTTP_LINGUAMATE_LOG_INFO | NGX_HTTP_LINGUAMATE_LOG_AUDIT,
        "config_reloaded", &msg, &extra);
}


static void
ngx_http_linguamate_flags_dropped(ngx_http_linguamate_main_conf_t *lmcf,
    ngx_uint_t flag, ngx_uint_t live, ngx_uint_t conf)
{
    u_char     buf[256], *p;
    ngx_str_t  msg, extra;

    msg.data = buf;
    p = ngx_snprintf(buf, 128, "%s changed in the configuration: the live "
                     "value of %V is dropped",
                     ngx_http_linguamate_flag_envs[flag],
                     &ngx_http_linguamate_flag_names[flag]);
    msg.len = p - buf;

    extra.data = p;
    p = ngx_sprintf(p, ",\"cat\":\"flags\",\"flag\":\"%V\",\"live\":",
                    &ngx_http_linguamate_flag_names[flag]);
    p = ngx_http_linguamate_flag_value(p, flag, live);
    p = ngx_sprintf(p, ",\"configured\":");
    p = ngx_http_linguamate_flag_value(p, flag, conf);
    extra.len = p - extra.data;

    ngx_http_linguamate_log_event(lmcf, NGX_HTTP_LINGUAMATE_LOG_WARN,
                                  "flag_override_cleared", &msg, &extra);
}


/*
 * A record of STATE_DIR/flags.state (or of another replica) into the
 * zone: a live change whose configured value is still the one it
 * overrode, or the clearing of one.  A value a PATCH could not set is
 * a bad record.
 */

static ngx_int_t
ngx_http_linguamate_flags_apply(ngx_http_linguamate_state_t *st,
    ngx_http_linguamate_state_rec_t *rec, ngx_log_t *log)
{
    ngx_uint_t                         i, conf;
    ngx_http_linguamate_zone_t        *zone;
    ngx_http_linguamate_flags_t       *fl;
    ngx_http_linguamate_flags_zone_t  *fz;

    fz = st->data;
    zone = st->zone;
    fl = zone->sh->data;

    for (i = 0; i < NGX_HTTP_LINGUAMATE_NFLAGS; i++) {
        if (ngx_http_linguamate_flag_names[i].len == rec->key.len
            && ngx_strncmp(rec->key.data,
                           ngx_http_linguamate_flag_names[i].data,
                           rec->key.len) == 0)
        {
            break;
        }
    }

    if (i == NGX_HTTP_LINGUAMATE_NFLAGS) {
        return NGX_ERROR;
    }

    conf = ngx_http_linguamate_flag_conf(fz->lmcf, i);

    if (rec->type == NGX_HTTP_LINGUAMATE_STATE_UNFLAG) {
        ngx_shmtx_lock(&zone->shpool->mutex);
        fl->f[i].live = 0;
        fl->f[i].value = conf;
        fl->generation++;
        ngx_shmtx_unlock(&zone->shpool->mutex);
        return NGX_OK;
    }

    if (rec->n[0] > NGX_MAX_INT_T_VALUE || rec->n[1] > NGX_MAX_INT_T_VALUE
        || !ngx_http_linguamate_flag_valid(i, (ngx_int_t) rec->n[0])
        || !ngx_http_linguamate_flag_valid(i, (ngx_int_t) rec->n[1])
        || rec->n[2] > 4102444800)   /* 2100-01-01 */
    {
        return NGX_ERROR;
    }

    if ((ngx_uint_t) rec->n[1] != conf) {
        /* the configuration changed while stopped: it wins */
        ngx_http_linguamate_flags_dropped(fz->lmcf, i,
                                          (ngx_uint_t) rec->n[0], conf);
        return NGX_DECLINED;
    }

    ngx_shmtx_lock(&zone->shpool->mutex);

    fl->f[i].value = (ngx_uint_t) rec->n[0];
    fl->f[i].live = 1;
    fl->f[i].base = (ngx_uint_t) rec->n[1];
    fl->f[i].since = (ngx_uint_t) rec->n[2];
    fl->generation++;

    ngx_shmtx_unlock(&zone->shpool->mutex);

    return NGX_OK;
}


/* the live changes, as records */

static ngx_int_t
ngx_http_linguamate_flags_snapshot(ngx_http_linguamate_state_t *st,
    ngx_http_linguamate_state_emit_pt emit, void *sink, ngx_log_t *log)
{
    ngx_int_t                         rc;
    ngx_uint_t                        i;
    ngx_http_linguamate_zone_t       *zone;
    ngx_http_linguamate_flags_t      *fl;
    ngx_http_linguamate_state_rec_t   rec;

    zone = st->zone;
    fl = zone->sh->data;
    rc = NGX_OK;

    ngx_memzero(&rec, sizeof(ngx_http_linguamate_state_rec_t));
    rec.type = NGX_HTTP_LINGUAMATE_STATE_FLAG;

    ngx_shmtx_lock(&zone->shpool->mutex);

    for (i = 0; i < NGX_HTTP_LINGUAMATE_NFLAGS && rc == NGX_OK; i++) {
        if (!fl->f[i].live) {
            continue;
        }

        rec.key = ngx_http_linguamate_flag_names[i];
        rec.n[0] = fl->f[i].value;
        rec.n[1] = fl->f[i].base;
        rec.n[2] = fl->f[i].since;

        rc = emit(sink, &rec);
    }

    ngx_shmtx_unlock(&zone->shpool->mutex);

    return rc;
}


/*
 * REWRITE phase, ahead of the rewrite module's "return": maintenance
 * mode.  Health, metrics, the operations API and the error pages are
 * never in maintenance.
 */

ngx_int_t
ngx_http_linguamate_maintenance_step(ngx_http_request_t *r)
{
    ngx_str_t                         extra;
    ngx_http_linguamate_loc_conf_t   *llcf;
    ngx_http_linguamate_main_conf_t  *lmcf;

    if (r != r->main || r->internal) {
        return NGX_DECLINED;
    }

    llcf = ngx_http_get_module_loc_conf(r, ngx_http_linguamate_module);

    if (!llcf->enable) {
        return NGX_DECLINED;
    }

    lmcf = ngx_http_get_module_main_conf(r, ngx_http_linguamate_module);

    /* the endpoints' maintenance column: health, metrics, ... answer */

    if (!llcf->maintenance
        || llcf->endpoint >= NGX_HTTP_LINGUAMATE_NENDPOINTS
        || !ngx_http_linguamate_endpoint_maintenance[llcf->endpoint]
        || !ngx_http_linguamate_maintenance_on(lmcf))
    {
        return NGX_DECLINED;
    }

    /* the header keeps pointing at it: the request's memory */

    extra.data = ngx_pnalloc(r->pool, 64);
    if (extra.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    extra.len = ngx_sprintf(extra.data, ",\"retryAfter\":%T",
                            lmcf->maintenance_retry_after.seconds)
                - extra.data;

    if (ngx_http_linguamate_add_header(r, "Retry-After",
            sizeof("Retry-After") - 1,
            extra.data + sizeof(",\"retryAfter\":") - 1,
            extra.len - (sizeof(",\"retryAfter\":") - 1))
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_linguamate_phase_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
               "MAINTENANCE", "The service is down for maintenance; please "
               "try again later", &extra);
}


/* REWRITE phase, after the tRPC gate: the location's feature */

ngx_int_t
ngx_http_linguamate_feature_step(ngx_http_request_t *r)
{
    u_char                            buf[64];
    ngx_str_t                         extra;
    ngx_uint_t                        flag;
    const char                       *name;
    ngx_http_linguamate_loc_conf_t   *llcf;
    ngx_http_linguamate_main_conf_t  *lmcf;

    if (r != r->main || r->internal) {
        return NGX_DECLINED;
    }

    llcf = ngx_http_get_module_loc_conf(r, ngx_http_linguamate_module);

    if (!llcf->enable || llcf->feature == 0) {
        return NGX_DECLINED;
    }

    lmcf = ngx_http_get_module_main_conf(r, ngx_http_linguamate_module);

    if (llcf->feature == NGX_HTTP_LINGUAMATE_FEATURE_CHAT) {
        flag = NGX_HTTP_LINGUAMATE_F_CHAT;
        name = "chat";

    } else {
        flag = NGX_HTTP_LINGUAMATE_F_ANALYTICS;
        name = "analytics";
    }

    if (ngx_http_linguamate_flag(lmcf, flag)) {
        return NGX_DECLINED;
    }

    extra.data = buf;
    extra.len = ngx_sprintf(buf, ",\"feature\":\"%s\"", name) - buf;

    return ngx_http_linguamate_phase_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                           "FEATURE_DISABLED",
                                           "This feature is switched off",
                                           &extra);
}


/* linguamate_feature chat | analytics */

char *
ngx_http_linguamate_feature(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_linguamate_loc_conf_t *llcf = conf;

    ngx_str_t  *value;

    if (llcf->feature != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "chat") == 0) {
        llcf->feature = NGX_HTTP_LINGUAMATE_FEATURE_CHAT;

    } else if (ngx_strcmp(value[1].data, "analytics") == 0) {
        llcf->feature = NGX_HTTP_LINGUAMATE_FEATURE_ANALYTICS;

    } else if (ngx_strcmp(value[1].data, "off") == 0) {
        llcf->feature = 0;

    } else {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "unknown feature \"%V\": use chat, analytics "
                           "or off", &value[1]);
        return NGX_CONF_ERROR;
    }

    if (llcf->enable == NGX_CONF_UNSET) {
        llcf->enable = 1;
    }

    return NGX_CONF_OK;
}


/*
 * Header filter, for locations with "linguamate_cache on": a successful
 * GET answer without a Cache-Control of its own gets one from the live
 * CACHE_TTL_SECONDS, and a proxied one that the upstream left without a
 * lifetime is kept that long by proxy_cache (over proxy_cache_valid).  An
 * answer to a request with credentials is private and never stored by
 * proxy_cache.  0: no-store, and nothing is stored.
 */

ngx_int_t
ngx_http_linguamate_cache_headers(ngx_http_request_t *r)
{
    u_char                           *p;
    size_t                            len;
    ngx_str_t                         set_cookie, *name;
    ngx_uint_t                        ttl, private;
    ngx_http_linguamate_loc_conf_t   *llcf;
    ngx_http_linguamate_main_conf_t  *lmcf;

    llcf = ngx_http_get_module_loc_conf(r, ngx_http_linguamate_module);

    if (!llcf->cache) {
        return NGX_OK;
    }

#if (NGX_HTTP_CACHE)

    /* what proxy_cache did with this answer: HIT, MISS, EXPIRED, BYPASS */

    if (r->upstream && r->upstream->cache_status
        && r->upstream->cache_status <= NGX_HTTP_CACHE_SCARCE)
    {
        name = &ngx_http_linguamate_cache_statuses[
                   r->upstream->cache_status - 1];

        if (ngx_http_linguamate_add_header(r, "X-Cache-Status",
                                           sizeof("X-Cache-Status") - 1,
                                           name->data, name->len)
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

#endif

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))
        || r->headers_out.status != NGX_HTTP_OK
        || r->err_status)
    {
        return NGX_OK;
    }

    lmcf = ngx_http_get_module_main_conf(r, ngx_http_linguamate_module);
    ttl = ngx_http_linguamate_flag(lmcf, NGX_HTTP_LINGUAMATE_F_CACHE_TTL);

#if (NGX_HTTP_CACHE)

    /* whatever lifetime the upstream gives, proxy_cache keeps it no longer */

    if (r->cache && r->upstream && r->upstream->cacheable) {
        if (ttl == 0) {
            r->upstream->cacheable = 0;

        } else if (r->cache->valid_sec > ngx_time() + (time_t) ttl) {
            r->cache->valid_sec = ngx_time() + (time_t) ttl;
        }
    }

#endif

    if ((r->headers_out.cache_control.elts
         && r->headers_out.cache_control.nelts)
        || r->headers_out.expires)
    {
        return NGX_OK;
    }

#if (NGX_HTTP_CACHE)
    /* the upstream said how long: it wins, for clients too */

    if (r->upstream && r->upstream->headers_in.x_accel_expires) {
        return NGX_OK;
    }
#endif

    /* credentials in, or a cookie out: for this client only */

    set_cookie.len = sizeof("Set-Cookie") - 1;
    set_cookie.data = (u_char *) "Set-Cookie";

    private = (r->headers_in.authorization != NULL
               || r->headers_in.cookies.nelts
               || ngx_http_linguamate_list_header(&r->headers_out.headers,
                                                  &set_cookie));

    if (ttl == 0) {
#if (NGX_HTTP_CACHE)
        if (r->cache && r->upstream) {
            r->upstream->cacheable = 0;
        }
#endif

        return ngx_http_linguamate_add_header(r, "Cache-Control",
                   sizeof("Cache-Control") - 1, (u_char *) "no-store",
                   sizeof("no-store") - 1);
    }

    len = sizeof("private, max-age=") + NGX_INT_T_LEN;

    p = ngx_pnalloc(r->pool, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    len = ngx_sprintf(p, "%s, max-age=%ui", private ? "private" : "public",
                      ttl) - p;

#if (NGX_HTTP_CACHE)

    /* read by the upstream after the header filters, before it stores */

    if (r->cache && r->upstream && r->cache->valid_sec == 0) {
        if (private) {
            r->upstream->cacheable = 0;

        } else {
            r->cache->valid_sec = ngx_time() + (time_t) ttl;
        }
    }

#endif

    return ngx_http_linguamate_add_header(r, "Cache-Control",
                                          sizeof("Cache-Control") - 1, p, len);
}


/* "flags":{...} of GET /api/admin/state and of the PATCH answer */

size_t
ngx_http_linguamate_flags_json_len(void)
{
    return 512 + NGX_HTTP_LINGUAMATE_NFLAGS * (64 + 2 * NGX_INT_T_LEN
                                              + NGX_HTTP_LINGUAMATE_ISO_LEN);
}


u_char *
ngx_http_linguamate_flags_json(ngx_http_linguamate_main_conf_t *lmcf,
    u_char *p)
{
    size_t                        g, glen;
    ngx_str_t                    *name;
    ngx_uint_t                    i, n, m, conf;
    ngx_http_linguamate_flags_t  *fl;

    /* in the list's order; a group's flags nest: "features":{"chat":...} */

    p = ngx_sprintf(p, "\"flags\":{");
    glen = 0;
    n = 0;
    m = 0;

    for (i = 0; i < NGX_HTTP_LINGUAMATE_NFLAGS; i++) {
        name = &ngx_http_linguamate_flag_names[i];
        g = ngx_http_linguamate_flag_group(i);

        if (glen
            && (g != glen || ngx_strncmp(name->data,
                                 ngx_http_linguamate_flag_names[i - 1].data,
                                 g) != 0))
        {
            *p++ = '}';
            glen = 0;
        }

        if (g && !glen) {
            p = ngx_sprintf(p, "%s\"%*s\":{", n++ ? "," : "", g, name->data);
            glen = g;
            m = 0;
        }

        if (glen) {
            p = ngx_sprintf(p, "%s\"%*s\":", m++ ? "," : "",
                            name->len - g - 1, name->data + g + 1);

        } else {
            p = ngx_sprintf(p, "%s\"%V\":", n++ ? "," : "", name);
        }

        p = ngx_http_linguamate_flag_value(p, i,
                                           ngx_http_linguamate_flag(lmcf, i));
    }

    if (glen) {
        *p++ = '}';
    }

    /* which ones are live changes, over what configured value, since when */

    p = ngx_sprintf(p, "},\"liveFlags\":{");

    fl = lmcf->flags;
    n = 0;

    for (i = 0; fl && i < NGX_HTTP_LINGUAMATE_NFLAGS; i++) {
        if (!fl->f[i].live) {
            continue;
        }

        p = ngx_sprintf(p, "%s\"%V\":{\"value\":", n++ ? "," : "",
                        &ngx_http_linguamate_flag_names[i]);
        p = ngx_http_linguamate_flag_value(p, i, fl->f[i].value);
        p = ngx_sprintf(p, ",\"configured\":");
        conf = ngx_http_linguamate_flag_conf(lmcf, i);
        p = ngx_http_linguamate_flag_value(p, i, conf);
        p = ngx_sprintf(p, ",\"env\":\"%s\",\"since\":\"",
                        ngx_http_linguamate_flag_envs[i]);
        p = ngx_http_linguamate_iso_time(p, (time_t) fl->f[i].since, 0);
        p = ngx_sprintf(p, "\"}");
    }

    *p++ = '}';

    return p;
}


/*
 * PATCH /api/admin/flags with a JSON subset of {"maintenance":bool,
 * "features":{"chat":bool,"analytics":bool},"strictMode":bool,
 * "logLevel":"trace".."fatal","cacheTtlSeconds":int}; null clears a live
 * change.  All or nothing: one bad field and nothing changes.  Returns
 * NGX_DECLINED with the field and the message in "err" on a bad body,
 * NGX_OK with the answer in "out".
 */

ngx_int_t
ngx_http_linguamate_flags_patch(ngx_http_request_t *r, u_char *body,
    size_t len, ngx_str_t *changes, ngx_buf_t **out,
    ngx_http_linguamate_flags_error_t *err)
{
    u_char                            *p;
    size_t                             flen;
    yajl_val                           root;
    ngx_int_t                          rc;
    ngx_buf_t                         *b;
    ngx_uint_t                         i, n, conf;
    ngx_http_linguamate_zone_t        *zone;
    ngx_http_linguamate_flags_t       *fl;
    ngx_http_linguamate_flags_zone_t  *fz;
    ngx_http_linguamate_main_conf_t   *lmcf;
    ngx_http_linguamate_state_rec_t    rec[NGX_HTTP_LINGUAMATE_NFLAGS];
    ngx_http_linguamate_flags_patch_t  patch;

    lmcf = ngx_http_get_module_main_conf(r, ngx_http_linguamate_module);

    err->field = "body";
    err->message = "must be a JSON object";
    root = NULL;

    if (len && ngx_strlen(body) == len
        && ngx_http_linguamate_json_depth_ok(body, len, 8))
    {
        root = yajl_tree_parse((const char *) body, NULL, 0);
    }

    rc = ngx_http_linguamate_patch_parse(root, &patch, err);

    if (rc != NGX_OK) {
        /* the field may be a key of the tree: copied before it is freed */

        flen = ngx_min(ngx_strlen(err->field), 64);

        p = ngx_pnalloc(r->pool, flen + 1);
        if (p == NULL) {
            yajl_tree_free(root);
            return NGX_ERROR;
        }

        *ngx_cpymem(p, err->field, flen) = '\0';
        err->field = (const char *) p;

        yajl_tree_free(root);

        return NGX_DECLINED;
    }

    yajl_tree_free(root);

    zone = lmcf->flags_zone;
    fl = lmcf->flags;

    if (fl == NULL) {
        return NGX_ERROR;
    }

    b = ngx_create_temp_buf(r->pool, ngx_http_linguamate_flags_json_len()
                                     + NGX_HTTP_LINGUAMATE_NFLAGS * 128 + 64);
    if (b == NULL) {
        return NGX_ERROR;
    }

    /* "changes" for the admin_action line: what each flag is now */

    changes->data = ngx_pnalloc(r->pool, NGX_HTTP_LINGUAMATE_NFLAGS * 96);
    if (changes->data == NULL) {
        return NGX_ERROR;
    }

    p = ngx_sprintf(changes->data, ",\"changes\":{");
    n = 0;

    ngx_shmtx_lock(&zone->shpool->mutex);

    for (i = 0; i < NGX_HTTP_LINGUAMATE_NFLAGS; i++) {
        if (patch.set[i] == 0) {
            continue;
        }

        conf = ngx_http_linguamate_flag_conf(lmcf, i);

        /* the change as a record of the state layer */

        ngx_memzero(&rec[n], sizeof(ngx_http_linguamate_state_rec_t));
        rec[n].key = ngx_http_linguamate_flag_names[i];

        if (patch.set[i] == 2) {
            fl->f[i].live = 0;
            fl->f[i].value = conf;
            rec[n].type = NGX_HTTP_LINGUAMATE_STATE_UNFLAG;

        } else {
            fl->f[i].base = conf;
            fl->f[i].since = ngx_time();
            fl->f[i].value = patch.value[i];
            fl->f[i].live = 1;
            rec[n].type = NGX_HTTP_LINGUAMATE_STATE_FLAG;
            rec[n].n[0] = patch.value[i];
            rec[n].n[1] = conf;
            rec[n].n[2] = fl->f[i].since;
        }

        p = ngx_sprintf(p, "%s\"%V\":", n++ ? "," : "",
                        &ngx_http_linguamate_flag_names[i]);

        if (patch.set[i] == 2) {
            p = ngx_sprintf(p, "{\"cleared\":true,\"value\":");
            p = ngx_http_linguamate_flag_value(p, i, conf);
            *p++ = '}';

        } else {
            p = ngx_http_linguamate_flag_value(p, i, patch.value[i]);
        }
    }

    fl->generation++;

    ngx_shmtx_unlock(&zone->shpool->mutex);

    *p++ = '}';
    changes->len = p - changes->data;

    fz = zone->data;

    (void) ngx_http_linguamate_state_write(fz->state, rec, n,
                                           r->connection->log);

    b->last = ngx_sprintf(b->last, "{\"success\":true,");
    b->last = ngx_http_linguamate_flags_json(lmcf, b->last);
    b->last = ngx_cpymem(b->last, "}\n", 2);

    *out = b;

    return NGX_OK;
}


/*
 * $linguamate_cache_key, the part of proxy_cache_key that purges and the
 * TTL change: "A.P.T:", A the generation of all entries, P the sum of the
 * generations of the slots of the call's procedures, T the TTL in force.
 * Generations only grow, so a purge (all, or a procedure) or a TTL change
 * gives new keys: entries stored before are never found again, and age
 * out of the cache's disk by "inactive" and max_size.
 */

ngx_int_t
ngx_http_linguamate_cache_key_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    u_char                           *p;
    ngx_uint_t                        i, ttl;
    ngx_atomic_uint_t                 all, procs;
    ngx_http_linguamate_ctx_t        *ctx;
    ngx_http_linguamate_flags_t      *fl;
    ngx_http_linguamate_main_conf_t  *lmcf;

    lmcf = ngx_http_get_module_main_conf(r, ngx_http_linguamate_module);
    ctx = ngx_http_get_module_ctx(r->main, ngx_http_linguamate_module);
    fl = lmcf->flags;

    all = fl ? fl->cache_all : 0;
    procs = 0;

    if (fl && ctx && ctx->trpc) {
        for (i = 0; i < ctx->trpc_n; i++) {
            procs += fl->cache_slot[ngx_crc32_short(ctx->trpc_procs[i].data,
                                                    ctx->trpc_procs[i].len)
                                    % NGX_HTTP_LINGUAMATE_CACHE_SLOTS];
        }
    }

    ttl = ngx_http_linguamate_flag(lmcf, NGX_HTTP_LINGUAMATE_F_CACHE_TTL);

    p = ngx_pnalloc(r->pool, 3 * NGX_ATOMIC_T_LEN + 3);
    if (p == NULL) {
        return NGX_ERROR;
    }

    v->data = p;
    v->len = ngx_sprintf(p, "%uA.%uA.%ui:", all, procs, ttl) - p;
    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;

    return NGX_OK;
}


/*
 * POST /api/admin/cache/purge[/PROCEDURE]: the new generation.  Slots are
 * shared by procedures whose names hash alike: purging one may make a
 * few other entries miss once, never keeps one.
 */

ngx_atomic_uint_t
ngx_http_linguamate_cache_purge(ngx_http_linguamate_main_conf_t *lmcf,
    ngx_str_t *procedure)
{
    ngx_atomic_t                 *gen;
    ngx_http_linguamate_flags_t  *fl;

    fl = lmcf->flags;

    if (fl == NULL) {
        return 0;
    }

    gen = procedure ? &fl->cache_slot[ngx_crc32_short(procedure->data,
                                                      procedure->len)
                                      % NGX_HTTP_LINGUAMATE_CACHE_SLOTS]
                    : &fl->cache_all;

    return ngx_atomic_fetch_add(gen, 1) + 1;
}
