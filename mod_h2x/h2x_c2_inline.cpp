/* h2x_c2_inline.cpp: see h2x_c2_inline.h. */
#include "h2x_private.h"
#include "h2x_c2_inline.h"

#include <cstring>

#include <http_config.h>
#include <http_core.h>
#include <http_protocol.h>
#include <http_request.h>
#include <mod_core.h>
#include <util_filter.h>

#include "h2x_c2.h"
#include "h2x_conn_ctx.h"

namespace h2x {

namespace {

bool g_possible = false; /* per child: only known quick handlers registered */
bool g_quick = false;    /* per child: ... and there are some */

C2Task *inline_task(const request_rec *r) noexcept
{
    if (!r->connection->master) {
        return nullptr;
    }
    ConnCtx *ctx = conn_ctx(r->connection);
    return ctx ? ctx->task : nullptr;
}

/* Content types that name a module's handler when no handler is set
 * (ap_invoke_handler() falls back to the content type): CGI, PHP, SSI,
 * send-as-is, image maps. */
bool magic_content_type(const char *type) noexcept
{
    if (!type) {
        return false;
    }
    return !strncasecmp(type, "application/x-httpd-", 20) || !strncasecmp(type, "httpd/", 6)
           || !strncasecmp(type, "text/x-server-parsed-html", 25);
}

/* At the handler hook r->handler is what ap_invoke_handler() runs: the
 * handler named for the request (SetHandler, AddHandler, a module's fixup
 * or internal redirect), else its content type without parameters, else
 * "". Only core's default handler serves the content types that no module
 * claims. */
bool default_handler_serves(const request_rec *r) noexcept
{
    const char *h = r->handler;
    if (!h || !*h || !std::strcmp(h, "default-handler")) {
        return true;
    }
    const char *type = r->content_type;
    std::size_t n = std::strlen(h);
    bool from_type = type && !strncasecmp(h, type, n)
                     && (type[n] == '\0' || type[n] == ';' || type[n] == ' ');
    return from_type && !magic_content_type(h);
}

/* Output filters known not to wait on anything but the CPU. Anything else
 * (INCLUDES can run a CGI, RATE_LIMIT sleeps, EXT_FILTER talks to a
 * program, a Lua or smart filter may do anything) sends the request to a
 * worker. httpd keeps registered filter names in lower case; mod_filter's
 * harnesses keep their case. */
bool filter_known_quick(const char *name) noexcept
{
    static const char *const quick[] = {
        "byterange",     "content_length",    "http_outerror", "http_header",
        "deflate",       "brotli",            "fixup_headers_out", "mod_expires",
        "log_input_output", "old_write", "reqtimeout",
    };
    if (!std::strncmp(name, "h2x_", 4)) {
        return true;
    }
    if (!strncasecmp(name, "bytype:", 7)) {
        /* mod_filter's harness for AddOutputFilterByType, named
         * "BYTYPE:DEFLATE" for Debian's deflate.conf: as quick as the
         * filter it may run. */
        return filter_known_quick(name + 7);
    }
    for (const char *q : quick) {
        if (!strcasecmp(name, q)) {
            return true;
        }
    }
    return false;
}

/* A static file core's default handler serves at once (h2x_c2_inline.h). */
bool serves_on_c1(request_rec *r) noexcept
{
    if (r->method_number != M_GET || r->main || r->prev) {
        return false;
    }
    if (r->finfo.filetype != APR_REG || r->finfo.size > INLINE_MAX_FILE) {
        return false;
    }
    if (!default_handler_serves(r)) {
        return false;
    }
    for (ap_filter_t *f = r->output_filters; f; f = f->next) {
        if (!f->frec || !f->frec->name || !filter_known_quick(f->frec->name)) {
            ap_log_rerror(APLOG_MARK, APLOG_TRACE2, 0, r,
                          "h2x_c2(%s): output filter %s: handler runs on a worker",
                          r->connection->log_id,
                          f->frec && f->frec->name ? f->frec->name : "(unnamed)");
            return false;
        }
    }
    return true;
}

/* handler hook, before every other: on c1, only a static file goes on. */
int inline_gate(request_rec *r) noexcept
{
    C2Task *task = inline_task(r);
    if (!task || !task->on_c1 || r != task->r) {
        return DECLINED;
    }
    if (serves_on_c1(r)) {
        ap_log_rerror(APLOG_MARK, APLOG_TRACE1, 0, r, "h2x_c2(%s): served on c1",
                      r->connection->log_id);
        return DECLINED; /* core's default handler, here on c1 */
    }
    ap_log_rerror(APLOG_MARK, APLOG_TRACE1, 0, r, "h2x_c2(%s): handler %s goes to a worker",
                  r->connection->log_id, r->handler ? r->handler : "(none)");
    task->resume = InlineResume::HANDLER;
    task->resume_handler = r->handler;
    return SUSPENDED;
}

/* An ErrorDocument for `status`: ap_die() would redirect to it. */
bool has_error_document(request_rec *r, int status) noexcept
{
    if (status == OK || status == DONE || status == SUSPENDED) {
        return false;
    }
    int idx = ap_index_of_response(status);
    return ap_response_code_string(r, idx) != nullptr;
}

/* The end of ap_process_async_request() and ap_process_request() for a
 * handler (or request phase) that returned `status`. */
void finish_request(request_rec *r, int status) noexcept
{
    conn_rec *c = r->connection;
    if (status == OK || status == DONE) {
        ap_finalize_request_protocol(r);
    }
    else {
        r->status = HTTP_OK;
        ap_die(status, r);
    }
    ap_process_request_after_handler(r);
    /* r is gone: the EOR bucket destroyed it. */
    if (!c->data_in_input_filters) {
        apr_bucket_brigade *bb = apr_brigade_create(c->pool, c->bucket_alloc);
        APR_BRIGADE_INSERT_TAIL(bb, apr_bucket_flush_create(c->bucket_alloc));
        ap_pass_brigade(c->output_filters, bb);
        apr_brigade_destroy(bb);
    }
}

/* ap_invoke_handler()'s checks of the handler's result. */
int handler_result(request_rec *r, int result) noexcept
{
    if (result == DECLINED && r->handler && r->filename) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, H2XLOGNO(10039)
                      "h2x_c2: no handler \"%s\" for %s", r->handler, r->filename);
    }
    if (result != OK && result != DONE && result != DECLINED && result != SUSPENDED
        && result != AP_FILTER_ERROR && !ap_is_HTTP_VALID_RESPONSE(result)
        && !apr_table_get(r->notes, "HTTP_IGNORE_RANGE")) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, H2XLOGNO(10040)
                      "h2x_c2: handler for %s returned invalid result code %d",
                      r->handler ? r->handler : "(none)", result);
        result = HTTP_INTERNAL_SERVER_ERROR;
    }
    return result == DECLINED ? HTTP_INTERNAL_SERVER_ERROR : result;
}

} // namespace

bool inline_possible() noexcept
{
    return g_possible;
}

void inline_process_request(C2Task *task, request_rec *r) noexcept
{
#if APR_HAS_THREADS
    apr_thread_mutex_create(&r->invoke_mtx, APR_THREAD_MUTEX_DEFAULT, r->pool);
#endif
    /* Only mod_cache's quick handler, if any (inline_possible()): it
     * serves a cached entity (at most CacheMaxFileSize) or declines. */
    int status = g_quick ? ap_run_quick_handler(r, 0) : DECLINED;
    if (status == DECLINED) {
        status = ap_process_request_internal(r);
        if (status == OK) {
            status = ap_invoke_handler(r);
            if (status == SUSPENDED && task->resume == InlineResume::HANDLER) {
                return; /* handed off before the handler: a worker goes on */
            }
        }
    }
    if (has_error_document(r, status)) {
        task->resume = InlineResume::DIE;
        task->resume_status = status;
        return;
    }
    if (status == SUSPENDED) {
        return; /* a module suspended it, as on a worker */
    }
    finish_request(r, status);
}

void inline_resume(C2Task *task) noexcept
{
    request_rec *r = task->r;
    InlineResume stage = task->resume;
    task->resume = InlineResume::NONE;
    if (!r) {
        return;
    }
    int status = task->resume_status;
    if (stage == InlineResume::HANDLER) {
        const char *old_handler = r->handler;
        r->handler = task->resume_handler;
        int result = ap_run_handler(r);
        r->handler = old_handler;
        status = handler_result(r, result);
        if (status == SUSPENDED) {
            return;
        }
    }
    finish_request(r, status);
}

void inline_register_hooks() noexcept
{
    ap_hook_handler(inline_gate, nullptr, nullptr, APR_HOOK_REALLY_FIRST - 10);
}

void inline_child_init() noexcept
{
    /* A quick handler answers before any request phase, so inline_gate()
     * never sees what it does: only mod_cache's is known not to block
     * (its entities are bounded by CacheMaxFileSize). */
    apr_array_header_t *quick = ap_hook_get_quick_handler();
    g_possible = true;
    g_quick = quick && quick->nelts > 0;
    for (int i = 0; g_quick && i < quick->nelts; ++i) {
        const auto *hook = &APR_ARRAY_IDX(quick, i, ap_LINK_quick_handler_t);
        if (!hook->szName || std::strcmp(hook->szName, "mod_cache.c")) {
            g_possible = false;
        }
    }
}

} // namespace h2x
