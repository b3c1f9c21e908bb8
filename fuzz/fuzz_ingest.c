/*
 * Copyright (C) ngx_linguamate developers
 *
 * libFuzzer harness for the ingest bodies: the parse side of
 * ngx_http_linguamate_ingest.c, moved to ngx_http_linguamate_ingest_parse.c
 * and linked.  The first byte picks the endpoint, the rest is the body,
 * taken as ngx_http_linguamate_ingest_read() takes it (no NUL, nesting at
 * most 32, a yajl object, finite numbers), then:
 *
 *   even: POST /api/ingest/logs: check_logs() (records, sig, sig.ts),
 *         the signed spans and the HMAC check against a fixed key, and
 *         each record re-serialised as log_record() does;
 *   odd:  POST /api/analytics/events: check_event() for each event and
 *         the event re-serialised into a budget.
 */

#include "fuzz_ngx.h"

#include "ngx_http_linguamate_ingest_parse.h"


static ngx_http_linguamate_main_conf_t  fuzz_lmcf;


/* each value re-serialised into budgets of every size: a write past the
   budget is a finding (ASan), and so is output that is not JSON */

static void
fuzz_put(yajl_val v, size_t budget)
{
    u_char   *buf, *p;
    yajl_val  back;

    buf = malloc(budget + 1);
    if (buf == NULL) {
        return;
    }

    p = ngx_http_linguamate_put_value(buf, buf + budget, v);

    if (p != NULL) {
        if (p > buf + budget) {
            abort();
        }

        *p = '\0';
        back = yajl_tree_parse((const char *) buf, NULL, 0);

        if (back == NULL && p > buf) {
            abort();    /* the line must stay valid JSON */
        }

        yajl_tree_free(back);
    }

    free(buf);
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t                           i;
    u_char                          *body;
    yajl_val                         root, a, hmac;
    ngx_str_t                        b, key;
    ngx_time_t                      *tp;
    ngx_http_request_t              *r;
    ngx_http_linguamate_problems_t   pb;
    static const char               *hmac_path[] = { "sig", "hmac", NULL };

    if (size < 1) {
        return 0;
    }

    body = fuzz_ngx_strdup(data + 1, size - 1);
    b.data = body;
    b.len = size - 1;

    if (b.len == 0 || ngx_strlen(body) != b.len
        || !ngx_http_linguamate_json_depth_ok(body, b.len,
                                          NGX_HTTP_LINGUAMATE_INGEST_DEPTH))
    {
        free(body);
        return 0;
    }

    root = yajl_tree_parse((const char *) body, NULL, 0);

    if (root == NULL || !YAJL_IS_OBJECT(root)
        || ngx_http_linguamate_numbers_ok(root) != NGX_OK)
    {
        yajl_tree_free(root);
        free(body);
        return 0;
    }

    r = fuzz_ngx_request(&fuzz_lmcf);

    if (data[0] % 2 == 0) {
        if (ngx_http_linguamate_problems_init(r->pool, &pb, "logs") != NGX_OK) {
            abort();
        }

        tp = ngx_timeofday();
        ngx_http_linguamate_check_logs(root, &pb,
                                       (int64_t) tp->sec * 1000 + tp->msec);

        if (pb.pos > pb.end) {
            abort();
        }

        key.data = (u_char *) "fuzz-signing-key";
        key.len = sizeof("fuzz-signing-key") - 1;
        hmac = yajl_tree_get(root, hmac_path, yajl_t_string);
        (void) ngx_http_linguamate_signature_ok(r->pool, &key, &b, hmac);

        if (pb.count == 0) {
            a = ngx_http_linguamate_member(root, "logs", NULL);

            for (i = 0; i < a->u.array.len; i++) {
                fuzz_put(a->u.array.values[i],
                         NGX_HTTP_LINGUAMATE_INGEST_EXTRA);
                fuzz_put(a->u.array.values[i], data[0] / 2);
            }
        }

    } else {
        if (ngx_http_linguamate_problems_init(r->pool, &pb, "events")
            != NGX_OK)
        {
            abort();
        }

        a = ngx_http_linguamate_check_batch(root, &pb,
                                            ngx_http_linguamate_check_event);
        if (pb.pos > pb.end) {
            abort();
        }

        if (a && pb.count == 0) {
            for (i = 0; i < a->u.array.len; i++) {
                fuzz_put(a->u.array.values[i], NGX_HTTP_LINGUAMATE_EVENT_LINE);
                fuzz_put(a->u.array.values[i], data[0] / 2);
            }
        }
    }

    fuzz_ngx_request_free(r);
    yajl_tree_free(root);
    free(body);

    return 0;
}
