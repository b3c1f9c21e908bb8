/*
 * Copyright (C) ngx_linguamate developers
 *
 * Shared memory zones for state that every worker must see at once.
 *
 * As nginx's limit_req: nodes live in an rbtree keyed by a CRC32 of the
 * key (ties broken by the key bytes), and in a queue ordered by last use.
 * Lookups move a node to the queue's head, so the least recently used
 * entry is always at the tail and eviction is O(1).  Every function here
 * expects the zone's slab mutex to be held by the caller ("_locked" slab
 * calls); hashing and formatting stay outside the lock.
 *
 * On "nginx -s reload" a zone of the same name and size is kept with its
 * data; a change that would make old entries wrong (another key, another
 * kind) is refused with an EMERG naming both values.
 */


#include "ngx_http_linguamate_module.h"
#include "ngx_http_linguamate_shm.h"


static ngx_int_t ngx_http_linguamate_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
static void ngx_http_linguamate_rbtree_insert_value(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel);
static ngx_uint_t ngx_http_linguamate_evict(ngx_http_linguamate_zone_t *zone,
    ngx_uint_t n);


ngx_http_linguamate_zone_t *
ngx_http_linguamate_zone_add(ngx_conf_t *cf,
    ngx_http_linguamate_main_conf_t *lmcf, ngx_str_t *name, size_t size,
    ngx_uint_t kind, ngx_str_t *signature)
{
    ngx_shm_zone_t               *shm_zone;
    ngx_http_linguamate_zone_t   *zone, **zp;

    zone = ngx_pcalloc(cf->pool, sizeof(ngx_http_linguamate_zone_t));
    if (zone == NULL) {
        return NULL;
    }

    shm_zone = ngx_shared_memory_add(cf, name, size,
                                     &ngx_http_linguamate_module);
    if (shm_zone == NULL) {
        return NULL;
    }

    if (shm_zone->data) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "linguamate: zone \"%V\" is already declared",
                           name);
        return NULL;
    }

    zone->name = *name;
    zone->kind = kind;
    zone->shm_zone = shm_zone;
    zone->signature = *signature;

    shm_zone->init = ngx_http_linguamate_init_zone;
    shm_zone->data = zone;

    /* every zone is listed: metrics, health and the operations API */

    zp = ngx_array_push(&lmcf->zones);
    if (zp == NULL) {
        return NULL;
    }

    *zp = zone;

    return zone;
}


/* "size=SIZE" of a zone directive, at least 8 pages; NGX_ERROR logged */

ssize_t
ngx_http_linguamate_zone_size(ngx_conf_t *cf, ngx_str_t *zone,
    ngx_str_t *value)
{
    ssize_t    size;
    ngx_str_t  s;

    s.data = value->data + 5;
    s.len = value->len - 5;

    size = ngx_parse_size(&s);

    if (size == NGX_ERROR || size < (ssize_t) (8 * ngx_pagesize)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "linguamate: zone \"%V\" is too small or its "
                           "size \"%V\" is invalid (at least %uz)",
                           zone, value, 8 * ngx_pagesize);
        return NGX_ERROR;
    }

    return size;
}


static ngx_int_t
ngx_http_linguamate_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_http_linguamate_zone_t  *ozone = data;

    size_t                       len;
    ngx_http_linguamate_zone_t  *zone;

    zone = shm_zone->data;

    if (ozone) {
        if (zone->kind != ozone->kind
            || zone->signature.len != ozone->signature.len
            || ngx_strncmp(zone->signature.data, ozone->signature.data,
                           zone->signature.len) != 0)
        {
            ngx_log_error(NGX_LOG_EMERG, shm_zone->shm.log, 0,
                          "linguamate: zone \"%V\" is now %V while it "
                          "previously was %V; use another zone name",
                          &shm_zone->shm.name, &zone->signature,
                          &ozone->signature);
            return NGX_ERROR;
        }

        zone->sh = ozone->sh;
        zone->shpool = ozone->shpool;

        if (zone->init_kept) {
            return zone->init_kept(zone, shm_zone->shm.log);
        }

        return NGX_OK;
    }

    zone->shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (shm_zone->shm.exists) {
        zone->sh = zone->shpool->data;
        return NGX_OK;
    }

    zone->sh = ngx_slab_alloc(zone->shpool,
                              sizeof(ngx_http_linguamate_shctx_t));
    if (zone->sh == NULL) {
        return NGX_ERROR;
    }

    ngx_memzero(zone->sh, sizeof(ngx_http_linguamate_shctx_t));

    zone->shpool->data = zone->sh;
    zone->sh->kind = zone->kind;

    ngx_rbtree_init(&zone->sh->rbtree, &zone->sh->sentinel,
                    ngx_http_linguamate_rbtree_insert_value);

    ngx_queue_init(&zone->sh->queue);

    len = sizeof(" in linguamate zone \"\"") + shm_zone->shm.name.len;

    zone->shpool->log_ctx = ngx_slab_alloc(zone->shpool, len);
    if (zone->shpool->log_ctx == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf(zone->shpool->log_ctx, " in linguamate zone \"%V\"%Z",
                &shm_zone->shm.name);

    /* running out of room is handled (evict, then degrade), not logged */

    zone->shpool->log_nomem = 0;

    if (zone->init_fresh) {
        return zone->init_fresh(zone, shm_zone->shm.log);
    }

    return NGX_OK;
}


static void
ngx_http_linguamate_rbtree_insert_value(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel)
{
    ngx_rbtree_node_t           **p;
    ngx_http_linguamate_node_t   *ln, *lnt;

    for ( ;; ) {

        if (node->key < temp->key) {
            p = &temp->left;

        } else if (node->key > temp->key) {
            p = &temp->right;

        } else { /* node->key == temp->key */

            ln = (ngx_http_linguamate_node_t *) &node->color;
            lnt = (ngx_http_linguamate_node_t *) &temp->color;

            p = (ngx_memn2cmp(ngx_http_linguamate_node_key(ln),
                              ngx_http_linguamate_node_key(lnt),
                              ln->len, lnt->len) < 0)
                ? &temp->left : &temp->right;
        }

        if (*p == sentinel) {
            break;
        }

        temp = *p;
    }

    *p = node;
    node->parent = temp;
    node->left = sentinel;
    node->right = sentinel;
    ngx_rbt_red(node);
}


size_t
ngx_http_linguamate_node_size(size_t vlen, size_t len)
{
    return offsetof(ngx_rbtree_node_t, color)
           + offsetof(ngx_http_linguamate_node_t, data)
           + ngx_align(vlen, 8) + len;
}


ngx_http_linguamate_node_t *
ngx_http_linguamate_node_lookup(ngx_http_linguamate_zone_t *zone,
    uint32_t hash, u_char *key, size_t len)
{
    ngx_http_linguamate_node_t  *ln;

    ln = ngx_http_linguamate_node_find(zone, hash, key, len);

    if (ln) {
        ngx_queue_remove(&ln->queue);
        ngx_queue_insert_head(&zone->sh->queue, &ln->queue);
    }

    return ln;
}


/* the same, without making it the most recently used */

ngx_http_linguamate_node_t *
ngx_http_linguamate_node_find(ngx_http_linguamate_zone_t *zone,
    uint32_t hash, u_char *key, size_t len)
{
    ngx_int_t                    rc;
    ngx_rbtree_node_t           *node, *sentinel;
    ngx_http_linguamate_node_t  *ln;

    node = zone->sh->rbtree.root;
    sentinel = zone->sh->rbtree.sentinel;

    while (node != sentinel) {

        if (hash < node->key) {
            node = node->left;
            continue;
        }

        if (hash > node->key) {
            node = node->right;
            continue;
        }

        /* hash == node->key */

        ln = (ngx_http_linguamate_node_t *) &node->color;

        rc = ngx_memn2cmp(key, ngx_http_linguamate_node_key(ln), len,
                          (size_t) ln->len);

        if (rc == 0) {
            return ln;
        }

        node = (rc < 0) ? node->left : node->right;
    }

    return NULL;
}


/*
 * A new node for key, at the head of the LRU queue, its value zeroed.
 * Expired entries are dropped first; when the zone is still full the least
 * recently used live entries are evicted (and that is logged, at most
 * once a second per zone).  NULL only if even that left no room: callers
 * then let the request through rather than fail it.
 */

ngx_http_linguamate_node_t *
ngx_http_linguamate_node_alloc(ngx_http_linguamate_zone_t *zone,
    uint32_t hash, u_char *key, size_t len, size_t vlen, ngx_log_t *log)
{
    size_t                       size;
    ngx_uint_t                   evicted;
    ngx_rbtree_node_t           *node;
    ngx_http_linguamate_node_t  *ln;

    if (len > 65535) {
        return NULL;
    }

    vlen = ngx_align(vlen, 8);
    size = ngx_http_linguamate_node_size(vlen, len);

    ngx_http_linguamate_zone_expire(zone, ngx_current_msec, 2);

    node = ngx_slab_alloc_locked(zone->shpool, size);
    evicted = 0;

    while (node == NULL && evicted < NGX_HTTP_LINGUAMATE_EVICT_MAX) {
        if (ngx_http_linguamate_evict(zone, 1) == 0) {
            break;
        }

        evicted++;
        node = ngx_slab_alloc_locked(zone->shpool, size);
    }

    if (evicted) {
        (void) ngx_atomic_fetch_add(&zone->sh->evicted, evicted);

        if (ngx_current_msec - zone->sh->evict_logged >= 1000) {
            zone->sh->evict_logged = ngx_current_msec;
            ngx_log_error(NGX_LOG_WARN, log, 0,
                          "linguamate: zone \"%V\" is full, evicted the "
                          "least recently used entries (%uA in all)",
                          &zone->name, zone->sh->evicted);
        }
    }

    if (node == NULL) {
        /* under a flood this is every request: one line a second */

        zone->nomem++;

        if (ngx_current_msec - zone->nomem_logged >= 1000) {
            ngx_log_error(NGX_LOG_ERR, log, 0,
                          "linguamate: could not allocate node in zone "
                          "\"%V\" (full, and evicting %ui entries left no "
                          "room for %uz bytes; %ui such in this worker "
                          "since the last line)", &zone->name, evicted, size,
                          zone->nomem);
            zone->nomem_logged = ngx_current_msec;
            zone->nomem = 0;
        }

        return NULL;
    }

    node->key = hash;

    ln = (ngx_http_linguamate_node_t *) &node->color;
    ln->len = (u_short) len;
    ln->vlen = (uint32_t) vlen;
    ln->expire = 0;

    ngx_memzero(ln->data, vlen);
    ngx_memcpy(ln->data + vlen, key, len);

    ngx_rbtree_insert(&zone->sh->rbtree, node);
    ngx_queue_insert_head(&zone->sh->queue, &ln->queue);
    (void) ngx_atomic_fetch_add(&zone->sh->nodes, 1);

    return ln;
}


void
ngx_http_linguamate_node_free(ngx_http_linguamate_zone_t *zone,
    ngx_http_linguamate_node_t *ln)
{
    ngx_rbtree_node_t  *node;

    node = (ngx_rbtree_node_t *)
               ((u_char *) ln - offsetof(ngx_rbtree_node_t, color));

    ngx_queue_remove(&ln->queue);
    ngx_rbtree_delete(&zone->sh->rbtree, node);
    ngx_slab_free_locked(zone->shpool, node);
    (void) ngx_atomic_fetch_add(&zone->sh->nodes, -1);
}


/* drop up to n expired entries from the LRU tail */

void
ngx_http_linguamate_zone_expire(ngx_http_linguamate_zone_t *zone,
    ngx_msec_t now, ngx_uint_t n)
{
    ngx_queue_t                 *q;
    ngx_http_linguamate_node_t  *ln;

    while (n--) {

        if (ngx_queue_empty(&zone->sh->queue)) {
            return;
        }

        q = ngx_queue_last(&zone->sh->queue);
        ln = ngx_queue_data(q, ngx_http_linguamate_node_t, queue);

        if ((ngx_msec_int_t) (ln->expire - now) > 0) {
            return;
        }

        ngx_http_linguamate_node_free(zone, ln);
    }
}


/*
 * Drop the least recently used entries even though they are live, as far
 * as the zone allows: a revocation or a lock in force is never dropped
 * (its zone says so through "evictable"); expired entries always may go.
 * At most 16 entries from the tail are looked at for each one dropped.
 */

static ngx_uint_t
ngx_http_linguamate_evict(ngx_http_linguamate_zone_t *zone, ngx_uint_t n)
{
    ngx_uint_t                   done, looked, freed;
    ngx_queue_t                 *q, *prev;
    ngx_http_linguamate_node_t  *ln;

    for (done = 0; done < n; done++) {

        freed = 0;
        looked = 0;
        q = ngx_queue_last(&zone->sh->queue);

        while (q != ngx_queue_sentinel(&zone->sh->queue) && looked < 16) {
            prev = ngx_queue_prev(q);
            looked++;

            ln = ngx_queue_data(q, ngx_http_linguamate_node_t, queue);

            if ((ngx_msec_int_t) (ln->expire - ngx_current_msec) <= 0
                || zone->evictable == NULL
                || zone->evictable(ln))
            {
                ngx_http_linguamate_node_free(zone, ln);
                freed = 1;
                break;
            }

            q = prev;
        }

        if (!freed) {
            break;
        }
    }

    return done;
}


ngx_http_linguamate_zone_t *
ngx_http_linguamate_zone_find(ngx_http_linguamate_main_conf_t *lmcf,
    ngx_str_t *name, ngx_uint_t kind)
{
    ngx_uint_t                    i;
    ngx_http_linguamate_zone_t  **zp;

    zp = lmcf->zones.elts;

    for (i = 0; i < lmcf->zones.nelts; i++) {
        if (zp[i]->kind == kind
            && zp[i]->name.len == name->len
            && ngx_strncmp(zp[i]->name.data, name->data, name->len) == 0)
        {
            return zp[i];
        }
    }

    return NULL;
}
