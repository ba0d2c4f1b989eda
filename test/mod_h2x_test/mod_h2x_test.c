/*
 * mod_h2x_test: request handlers used only by mod_h2x's test suite.
 *
 * Each handler gives a test one precise response shape to provoke from
 * the server side: header-only statuses, a handler that stalls mid-body or
 * returns without EOS, an error bucket after the headers, a Content-Length
 * the body does not fill, trailers, interim responses, slow streams,
 * request-body echo and the CGI-style environment.  The tests then check
 * what mod_h2x (or mod_http2, or HTTP/1.1) puts on the wire for each.
 *
 * Select a handler with SetHandler in a <Location>; parameters come from the
 * query string, "key=value&key=value" (values URL-decoded, a key may repeat).
 * README.md next to this file lists every handler and its parameters.
 *
 * Response bodies are deterministic: byte i of a body is
 * "0123456789abcdef"[i % 16], so a test can check length and content.
 */

#include <stdlib.h>
#include <string.h>

#include "httpd.h"
#include "http_config.h"
#include "http_core.h"
#include "http_log.h"
#include "http_protocol.h"
#include "http_request.h"
#include "util_script.h"

#include "apr_strings.h"
#include "apr_md5.h"
#include "apr_buckets.h"
#include "apr_tables.h"
#include "apr_time.h"

/* Declares h2x_test_module and gives it its own log index, before the
 * first APLOG_MARK (so "LogLevel h2x_test:info" works). */
APLOG_USE_MODULE(h2x_test);

/* ------------------------------------------------------------------------
 * Helpers
 */

#define PATTERN       "0123456789abcdef"
#define PATTERN_LEN   16
#define BLOCK_LEN     8192                /* bytes per body bucket */
#define PASS_EVERY    (256 * 1024)        /* pass large bodies in pieces */

/* BLOCK_LEN bytes of pattern plus PATTERN_LEN of slack, so a bucket can
 * start at any phase of the pattern. Filled once in register_hooks. */
static char pattern_block[BLOCK_LEN + PATTERN_LEN];

static void fill_pattern_block(void)
{
    apr_size_t i;
    for (i = 0; i < sizeof(pattern_block); ++i) {
        pattern_block[i] = PATTERN[i % PATTERN_LEN];
    }
}

/* Parses "k=v&k2=v2" into a table; values and keys are URL-decoded.
 * A key without '=' gets the value "1". */
static apr_table_t *parse_args(request_rec *r)
{
    apr_table_t *t = apr_table_make(r->pool, 8);
    char *args, *pair, *state = NULL;

    if (!r->args || !*r->args) {
        return t;
    }
    args = apr_pstrdup(r->pool, r->args);
    for (pair = apr_strtok(args, "&", &state); pair;
         pair = apr_strtok(NULL, "&", &state)) {
        char *eq = strchr(pair, '=');
        if (eq) {
            *eq = '\0';
        }
        ap_unescape_urlencoded(pair);
        if (eq) {
            ap_unescape_urlencoded(eq + 1);
            apr_table_add(t, pair, eq + 1);
        }
        else {
            apr_table_add(t, pair, "1");
        }
    }
    return t;
}

static apr_off_t arg_off(apr_table_t *args, const char *key, apr_off_t dflt)
{
    const char *v = apr_table_get(args, key);
    apr_off_t n;
    char *end;

    if (!v || !*v || apr_strtoff(&n, v, &end, 10) != APR_SUCCESS || *end) {
        return dflt;
    }
    return n;
}

static int arg_int(apr_table_t *args, const char *key, int dflt)
{
    return (int)arg_off(args, key, dflt);
}

/* Seconds as a float ("0.5", "2"), returned as an apr interval. */
static apr_interval_time_t arg_secs(apr_table_t *args, const char *key,
                                    double dflt)
{
    const char *v = apr_table_get(args, key);
    double s = dflt;

    if (v && *v) {
        char *end;
        double d = strtod(v, &end);
        if (!*end && d >= 0) {
            s = d;
        }
    }
    return (apr_interval_time_t)(s * APR_USEC_PER_SEC);
}

/* Appends n pattern bytes, continuing at body offset *pos, to bb as
 * immortal buckets (they point into pattern_block). Large bodies are passed
 * down the filter chain every PASS_EVERY bytes so memory stays bounded. */
static apr_status_t add_body(request_rec *r, apr_bucket_brigade *bb,
                             apr_off_t *pos, apr_off_t n)
{
    apr_bucket_alloc_t *ba = r->connection->bucket_alloc;
    apr_off_t pending = 0;

    while (n > 0) {
        apr_size_t len = n > BLOCK_LEN ? BLOCK_LEN : (apr_size_t)n;
        const char *data = pattern_block + (*pos % PATTERN_LEN);
        APR_BRIGADE_INSERT_TAIL(bb, apr_bucket_immortal_create(data, len, ba));
        *pos += len;
        n -= len;
        pending += len;
        if (pending >= PASS_EVERY && n > 0) {
            apr_status_t rv = ap_pass_brigade(r->output_filters, bb);
            apr_brigade_cleanup(bb);
            if (rv != APR_SUCCESS) {
                return rv;
            }
            pending = 0;
        }
    }
    return APR_SUCCESS;
}

static void add_flush(request_rec *r, apr_bucket_brigade *bb)
{
    APR_BRIGADE_INSERT_TAIL(bb,
        apr_bucket_flush_create(r->connection->bucket_alloc));
}

static void add_eos(request_rec *r, apr_bucket_brigade *bb)
{
    APR_BRIGADE_INSERT_TAIL(bb,
        apr_bucket_eos_create(r->connection->bucket_alloc));
}

static apr_status_t pass(request_rec *r, apr_bucket_brigade *bb)
{
    apr_status_t rv = ap_pass_brigade(r->output_filters, bb);
    apr_brigade_cleanup(bb);
    return rv;
}

static apr_bucket_brigade *new_bb(request_rec *r)
{
    return apr_brigade_create(r->pool, r->connection->bucket_alloc);
}

/* A complete response: n pattern bytes then EOS. */
static int send_body_eos(request_rec *r, apr_off_t n)
{
    apr_bucket_brigade *bb = new_bb(r);
    apr_off_t pos = 0;

    if (add_body(r, bb, &pos, n) != APR_SUCCESS) {
        return OK;      /* client gone; nothing more to say */
    }
    add_eos(r, bb);
    pass(r, bb);
    return OK;
}

/* ------------------------------------------------------------------------
 * Handlers
 */

/* h2x-status: any status with or without a body, for header-only responses
 * (204, 304, HEAD: must end with END_STREAM on HEADERS, never reset) and
 * ordinary ones. s=status (200), n=body bytes (0), cl=1 sets Content-Length
 * explicitly, cl0=1 answers 200 with "Content-Length: 0" and no body (no
 * zero-length DATA frame), err=1 returns s from the handler so httpd
 * generates its own error response. */
static int h_status(request_rec *r, apr_table_t *args)
{
    int status = arg_int(args, "s", HTTP_OK);
    apr_off_t n = arg_off(args, "n", 0);

    if (arg_int(args, "cl0", 0)) {
        status = HTTP_OK;
        n = 0;
        apr_table_setn(r->headers_out, "Content-Length", "0");
    }
    if (arg_int(args, "err", 0) && status >= 400) {
        return status;
    }
    r->status = status;
    ap_set_content_type(r, apr_table_get(args, "ct") ?
                           apr_table_get(args, "ct") : "text/plain");
    if (arg_off(args, "hd", 0) > 0) {
        /* hd=N: a response field "x-hd" with a value of N bytes. */
        apr_off_t len = arg_off(args, "hd", 0);
        char *v = apr_palloc(r->pool, (apr_size_t)len + 1);
        memset(v, 'h', (size_t)len);
        v[len] = '\0';
        apr_table_setn(r->headers_out, "x-hd", v);
    }
    if (arg_int(args, "cl", 0)) {
        ap_set_content_length(r, n);
    }
    return send_body_eos(r, n);
}

/* h2x-stall: final headers and part of a body, then the handler stalls and
 * returns without ever passing EOS itself (the CGI-stalls-past-Timeout
 * case of invariants 1 and 2). n=body bytes (100), s=seconds to sleep
 * (10), ret=status to return after the partial body instead of OK. */
static int h_stall(request_rec *r, apr_table_t *args)
{
    apr_bucket_brigade *bb = new_bb(r);
    apr_off_t pos = 0;
    int ret = arg_int(args, "ret", OK);

    ap_set_content_type(r, "text/plain");
    if (add_body(r, bb, &pos, arg_off(args, "n", 100)) == APR_SUCCESS) {
        add_flush(r, bb);
        pass(r, bb);
    }
    apr_sleep(arg_secs(args, "s", 10));
    return ret;
}

/* h2x-error-bucket: headers and part of a body, then an error bucket
 * (HTTP_BAD_GATEWAY, what mod_proxy sends when a backend breaks mid-body)
 * and a flush; the response must end in a reset, not look complete.
 * n=body bytes (100), e=error status in the bucket (502), eos=1 also
 * passes EOS after the error bucket. */
static int h_error_bucket(request_rec *r, apr_table_t *args)
{
    apr_bucket_brigade *bb = new_bb(r);
    apr_off_t pos = 0;
    int err = arg_int(args, "e", HTTP_BAD_GATEWAY);

    ap_set_content_type(r, "text/plain");
    if (add_body(r, bb, &pos, arg_off(args, "n", 100)) != APR_SUCCESS) {
        return OK;
    }
    add_flush(r, bb);
    if (pass(r, bb) != APR_SUCCESS) {
        return OK;
    }
    APR_BRIGADE_INSERT_TAIL(bb, ap_bucket_error_create(err, NULL, r->pool,
                                r->connection->bucket_alloc));
    add_flush(r, bb);
    if (arg_int(args, "eos", 0)) {
        add_eos(r, bb);
    }
    pass(r, bb);
    return OK;
}

/* h2x-short-cl: announces Content-Length cl (1000) but sends only n bytes
 * (100), then a normal EOS. The body is passed (and flushed) before the EOS
 * so the content-length filter cannot correct the header. */
static int h_short_cl(request_rec *r, apr_table_t *args)
{
    apr_bucket_brigade *bb = new_bb(r);
    apr_off_t pos = 0;

    ap_set_content_type(r, "text/plain");
    ap_set_content_length(r, arg_off(args, "cl", 1000));
    if (add_body(r, bb, &pos, arg_off(args, "n", 100)) != APR_SUCCESS) {
        return OK;
    }
    add_flush(r, bb);
    if (pass(r, bb) != APR_SUCCESS) {
        return OK;
    }
    add_eos(r, bb);
    pass(r, bb);
    return OK;
}

/* h2x-delay: a handler busy before it produces anything (invariant 6:
 * mod_h2x must not cut it off by Timeout). s=seconds, float (1),
 * n=body bytes (100), then a normal 200; after=seconds, float (0), to stay
 * in the handler once the EOS has passed (the request is logged late). */
static int h_delay(request_rec *r, apr_table_t *args)
{
    int rc;

    apr_sleep(arg_secs(args, "s", 1));
    ap_set_content_type(r, "text/plain");
    rc = send_body_eos(r, arg_off(args, "n", 100));
    apr_sleep(arg_secs(args, "after", 0));
    return rc;
}

/* h2x-stream: a long, slow, flushed response for client resets, flow
 * control and streaming latency. count chunks (10) of size bytes (10),
 * one every ms milliseconds (200). Stops when a write fails or the
 * connection is aborted and logs, at info, how far it got. */
static int h_stream(request_rec *r, apr_table_t *args)
{
    apr_bucket_brigade *bb = new_bb(r);
    int count = arg_int(args, "count", 10);
    apr_off_t size = arg_off(args, "size", 10);
    apr_interval_time_t gap = apr_time_from_msec(arg_off(args, "ms", 200));
    apr_off_t pos = 0;
    apr_status_t rv = APR_SUCCESS;
    int i;

    ap_set_content_type(r, "text/plain");
    for (i = 0; i < count; ++i) {
        if (i > 0) {
            apr_sleep(gap);
        }
        if (r->connection->aborted) {
            break;
        }
        rv = add_body(r, bb, &pos, size);
        if (rv == APR_SUCCESS) {
            add_flush(r, bb);
            rv = pass(r, bb);
        }
        if (rv != APR_SUCCESS || r->connection->aborted) {
            /* this chunk did not get out */
            break;
        }
    }
    if (i < count) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, rv, r,
                      "h2x-stream: stopped after %d chunks (of %d)%s",
                      i, count, r->connection->aborted ? ", aborted" : "");
        return OK;
    }
    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                  "h2x-stream: completed %d chunks", count);
    add_eos(r, bb);
    pass(r, bb);
    return OK;
}

/* h2x-echo: reads the whole request body, then sends it back as
 * application/octet-stream (request DATA, flow control, Expect:
 * 100-continue, request-side Timeout). discard=1 replies with only the byte
 * count as text; with trailers=1 also a "trailer.<name>=<value>" line per
 * request trailer (r->trailers_in); md5=1 replies "<md5 hex> <bytes>" of the
 * body it read (byte-exactness without sending the body back). A read error (client reset, timeout) logs
 * "h2x-echo: read error" at info and answers 400 (413/408 where httpd maps
 * the error so). */
static int h_echo(request_rec *r, apr_table_t *args)
{
    apr_bucket_brigade *in = new_bb(r);
    apr_bucket_brigade *out = new_bb(r);
    int want_md5 = arg_int(args, "md5", 0);
    int discard = want_md5 || arg_int(args, "discard", 0);
    apr_off_t total = 0;
    int seen_eos = 0;
    apr_md5_ctx_t md5;

    apr_md5_init(&md5);

    while (!seen_eos) {
        apr_bucket *b;
        apr_status_t rv = ap_get_brigade(r->input_filters, in,
                                         AP_MODE_READBYTES, APR_BLOCK_READ,
                                         BLOCK_LEN);
        if (rv != APR_SUCCESS) {
            ap_log_rerror(APLOG_MARK, APLOG_INFO, rv, r,
                          "h2x-echo: read error after %" APR_OFF_T_FMT
                          " bytes", total);
            apr_brigade_cleanup(in);
            apr_brigade_cleanup(out);
            return ap_map_http_request_error(rv, HTTP_BAD_REQUEST);
        }
        for (b = APR_BRIGADE_FIRST(in); b != APR_BRIGADE_SENTINEL(in);
             b = APR_BUCKET_NEXT(b)) {
            const char *data;
            apr_size_t len;
            if (APR_BUCKET_IS_EOS(b)) {
                seen_eos = 1;
                break;
            }
            if (APR_BUCKET_IS_METADATA(b)) {
                continue;
            }
            rv = apr_bucket_read(b, &data, &len, APR_BLOCK_READ);
            if (rv != APR_SUCCESS) {
                ap_log_rerror(APLOG_MARK, APLOG_INFO, rv, r,
                              "h2x-echo: read error in bucket");
                return HTTP_BAD_REQUEST;
            }
            total += len;
            if (want_md5 && len) {
                apr_md5_update(&md5, data, len);
            }
            if (!discard && len) {
                apr_brigade_write(out, NULL, NULL, data, len);
            }
        }
        apr_brigade_cleanup(in);
    }

    if (want_md5) {
        unsigned char digest[APR_MD5_DIGESTSIZE];
        int k;
        apr_md5_final(digest, &md5);
        ap_set_content_type(r, "text/plain");
        for (k = 0; k < APR_MD5_DIGESTSIZE; ++k) {
            apr_brigade_printf(out, NULL, NULL, "%02x", digest[k]);
        }
        apr_brigade_printf(out, NULL, NULL, " %" APR_OFF_T_FMT "\n", total);
    }
    else if (discard) {
        ap_set_content_type(r, "text/plain");
        apr_brigade_printf(out, NULL, NULL, "%" APR_OFF_T_FMT "\n", total);
        if (arg_int(args, "trailers", 0)) {
            /* trailers=1: the request trailers the body ended with. */
            const apr_array_header_t *tarr = apr_table_elts(r->trailers_in);
            const apr_table_entry_t *te = (const apr_table_entry_t *)tarr->elts;
            int i;
            for (i = 0; i < tarr->nelts; ++i) {
                apr_brigade_printf(out, NULL, NULL, "trailer.%s=%s\n",
                                   te[i].key, te[i].val);
            }
        }
    }
    else {
        ap_set_content_type(r, "application/octet-stream");
    }
    add_eos(r, out);
    pass(r, out);
    return OK;
}

/* h2x-trailers: a body followed by trailers (END_STREAM must ride the
 * trailing HEADERS, invariant 4). n=body bytes (100); t=name:value adds a
 * trailer and may repeat (default "x-trailer-1: v1"); only=1 sends no
 * body at all, status s (200), gRPC style; ct=content type (text/plain). */
static int h_trailers(request_rec *r, apr_table_t *args)
{
    const apr_array_header_t *arr = apr_table_elts(args);
    const apr_table_entry_t *e = (const apr_table_entry_t *)arr->elts;
    int i, have_t = 0;
    apr_off_t n = arg_off(args, "n", 100);

    for (i = 0; i < arr->nelts; ++i) {
        char *name, *colon;
        if (strcmp(e[i].key, "t")) {
            continue;
        }
        name = apr_pstrdup(r->pool, e[i].val);
        colon = strchr(name, ':');
        if (!colon) {
            continue;
        }
        *colon++ = '\0';
        while (*colon == ' ') {
            ++colon;
        }
        apr_table_add(r->trailers_out, name, colon);
        have_t = 1;
    }
    if (!have_t) {
        apr_table_setn(r->trailers_out, "x-trailer-1", "v1");
    }
    if (arg_int(args, "only", 0)) {
        r->status = arg_int(args, "s", HTTP_OK);
        n = 0;
    }
    ap_set_content_type(r, apr_table_get(args, "ct") ?
                           apr_table_get(args, "ct") : "text/plain");
    return send_body_eos(r, n);
}

/* Sort helper for h2x-env. */
static int cmp_entry(const void *a, const void *b)
{
    return strcmp(((const apr_table_entry_t *)a)->key,
                  ((const apr_table_entry_t *)b)->key);
}

static void print_table(request_rec *r, apr_bucket_brigade *bb,
                        const char *prefix, const apr_table_t *t, int sort)
{
    const apr_array_header_t *arr = apr_table_elts(t);
    apr_table_entry_t *e;
    int i;

    if (arr->nelts == 0) {
        return;
    }
    e = apr_pmemdup(r->pool, arr->elts, arr->nelts * sizeof(*e));
    if (sort) {
        qsort(e, arr->nelts, sizeof(*e), cmp_entry);
    }
    for (i = 0; i < arr->nelts; ++i) {
        if (e[i].key) {
            apr_brigade_printf(bb, NULL, NULL, "%s%s=%s\n", prefix,
                               e[i].key, e[i].val ? e[i].val : "");
        }
    }
}

/* h2x-env: the environment a CGI would get (HTTP2, H2_STREAM_ID,
 * H2_PUSH, SSL_*, REQUEST_URI, ...) plus what the request looked like.
 * Lines: "NAME=value" for subprocess_env (sorted), then
 * "request.protocol=", "request.method=", "request.uri=", "request.args=",
 * "request.hostname=", then "header.<name>=value" for each request
 * header in arrival order. */
static int h_env(request_rec *r, apr_table_t *args)
{
    apr_bucket_brigade *bb = new_bb(r);

    (void)args;
    ap_add_common_vars(r);
    ap_add_cgi_vars(r);
    ap_set_content_type(r, "text/plain");

    print_table(r, bb, "", r->subprocess_env, 1);
    apr_brigade_printf(bb, NULL, NULL,
                       "request.protocol=%s\nrequest.method=%s\n"
                       "request.uri=%s\nrequest.args=%s\n"
                       "request.hostname=%s\n",
                       r->protocol, r->method, r->uri,
                       r->args ? r->args : "",
                       r->hostname ? r->hostname : "");
    print_table(r, bb, "header.", r->headers_in, 0);
    add_eos(r, bb);
    pass(r, bb);
    return OK;
}

/* h2x-early-hints: an interim 103 with a Link header, then a 200 with a
 * body (1xx responses are not final and must not end the stream).
 * link=Link value ("</h2x.css>; rel=preload; as=style"), n=body bytes (100). */
static int h_early_hints(request_rec *r, apr_table_t *args)
{
    const char *link = apr_table_get(args, "link");

    if (!link) {
        link = "</h2x.css>; rel=preload; as=style";
    }
    apr_table_set(r->headers_out, "Link", link);
    r->status = HTTP_EARLY_HINTS;
    ap_send_interim_response(r, 1);
    r->status = HTTP_OK;
    ap_set_content_type(r, "text/plain");
    return send_body_eos(r, arg_off(args, "n", 100));
}

/* ------------------------------------------------------------------------
 * Dispatch
 */

typedef struct {
    const char *name;                           /* SetHandler value */
    int (*fn)(request_rec *r, apr_table_t *args);
} h2x_test_handler;

static const h2x_test_handler handlers[] = {
    { "h2x-status",       h_status },
    { "h2x-stall",        h_stall },
    { "h2x-error-bucket", h_error_bucket },
    { "h2x-short-cl",     h_short_cl },
    { "h2x-delay",        h_delay },
    { "h2x-stream",       h_stream },
    { "h2x-echo",         h_echo },
    { "h2x-trailers",     h_trailers },
    { "h2x-env",          h_env },
    { "h2x-early-hints",  h_early_hints },
};

static int h2x_test_handler_hook(request_rec *r)
{
    apr_size_t i;

    if (!r->handler || strncmp(r->handler, "h2x-", 4)) {
        return DECLINED;
    }
    for (i = 0; i < sizeof(handlers) / sizeof(handlers[0]); ++i) {
        if (!strcmp(r->handler, handlers[i].name)) {
            return handlers[i].fn(r, parse_args(r));
        }
    }
    return DECLINED;
}

static void h2x_test_register_hooks(apr_pool_t *p)
{
    (void)p;
    fill_pattern_block();
    ap_hook_handler(h2x_test_handler_hook, NULL, NULL, APR_HOOK_MIDDLE);
}

module AP_MODULE_DECLARE_DATA h2x_test_module = {
    STANDARD20_MODULE_STUFF,
    NULL,                       /* per-directory config creator */
    NULL,                       /* dir config merger */
    NULL,                       /* server config creator */
    NULL,                       /* server config merger */
    NULL,                       /* command table */
    h2x_test_register_hooks,    /* register hooks */
    0                           /* flags */
};
