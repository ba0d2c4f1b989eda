/* h2x_c2_source.cpp: see h2x_c2_source.h. */
#include "h2x_private.h"
#include "h2x_c2_source.h"

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <poll.h>

#include <apr_poll.h>
#include <apr_portable.h>
#include <ap_mmn.h>
#include <util_filter.h>

#include "h2x_beam.h"
#include "h2x_c2.h"
#include "h2x_conn_ctx.h"

namespace h2x {

namespace {

constexpr int SLICE_MS = 100;
/* Bytes read from sources after which the filter passes what it has on. */
constexpr apr_size_t PASS_AFTER = 64 * 1024;

ap_filter_rec_t *g_source_filter = nullptr;

/* mod_cgi's (and mod_cgid's) bucket for a script's stdout and stderr. Its
 * data is private to httpd; this is its layout in httpd 2.4's
 * modules/generators/cgi_common.h (2.4.71, which we build against and
 * test; older releases had no `timeout`, so there we leave the bucket to
 * its own blocking read). */
struct CgiBucketData {
    apr_pollset_t *pollset;
    request_rec *r;
    apr_interval_time_t timeout; /* > 0: CGIDScriptTimeout; else Timeout */
};

bool is_cgi_bucket(const apr_bucket *b) noexcept
{
#if AP_MODULE_MAGIC_AT_LEAST(20120211, 142)
    return std::strcmp(b->type->name, "CGI") == 0;
#else
    (void)b;
    return false;
#endif
}

bool is_live_source(const apr_bucket *b) noexcept
{
    return APR_BUCKET_IS_PIPE(b) || APR_BUCKET_IS_SOCKET(b) || is_cgi_bucket(b);
}

bool output_aborted(C2Task *task) noexcept
{
    return task->out && task->out->state().end == BeamEnd::ABORTED;
}

C2Task *task_of(const conn_rec *c) noexcept
{
    ConnCtx *ctx = conn_ctx(c);
    return ctx ? ctx->task : nullptr;
}

/* H2X_SOURCE: see the header. */
apr_status_t source_filter(ap_filter_t *f, apr_bucket_brigade *bb) noexcept
{
    C2Task *task = task_of(f->c);
    if (!task) {
        ap_remove_output_filter(f);
        return ap_pass_brigade(f->next, bb);
    }
    apr_bucket *b = APR_BRIGADE_FIRST(bb);
    apr_size_t read = 0; /* read from sources since the last pass */
    while (b != APR_BRIGADE_SENTINEL(bb)) {
        if (!is_live_source(b)) {
            b = APR_BUCKET_NEXT(b);
            continue;
        }
        /* Enough read: a fast source must not pile up here. */
        bool full = read >= PASS_AFTER;
        if (!full) {
            const char *data;
            apr_size_t len;
            apr_status_t rv = apr_bucket_read(b, &data, &len, APR_NONBLOCK_READ);
            if (rv == APR_SUCCESS) {
                /* It became data (or vanished at the source's end); a new
                 * source bucket follows it if there is more. */
                read += len;
                b = APR_BUCKET_NEXT(b);
                continue;
            }
            if (!APR_STATUS_IS_EAGAIN(rv)) {
                return rv;
            }
        }
        /* What came before leaves first (with a FLUSH when we are about
         * to wait, as CONTENT_LENGTH would). */
        if (b != APR_BRIGADE_FIRST(bb)) {
            apr_bucket_brigade *rest = apr_brigade_split_ex(bb, b, nullptr);
            if (!full) {
                APR_BRIGADE_INSERT_TAIL(bb, apr_bucket_flush_create(f->c->bucket_alloc));
            }
            read = 0;
            apr_status_t rv = ap_pass_brigade(f->next, bb);
            apr_brigade_cleanup(bb);
            APR_BRIGADE_CONCAT(bb, rest);
            apr_brigade_destroy(rest);
            if (rv != APR_SUCCESS) {
                return rv;
            }
            if (f->c->aborted) {
                return APR_ECONNABORTED;
            }
            b = APR_BRIGADE_FIRST(bb);
        }
        if (full) {
            read = 0;
            continue;
        }
        apr_status_t rv = source_wait_readable(task, b);
        if (rv != APR_SUCCESS) {
            if (rv == APR_ECONNABORTED) {
                ap_log_cerror(APLOG_MARK, APLOG_DEBUG, 0, f->c, H2XLOGNO(10037)
                              "h2x_c2(%s): stream reset while the handler's source was "
                              "silent: stop reading it", f->c->log_id);
                f->c->aborted = 1;
            }
            return rv;
        }
    }
    return ap_pass_brigade(f->next, bb);
}

} // namespace

apr_status_t source_wait_readable(C2Task *task, apr_bucket *b) noexcept
{
    int fd = -1;
    apr_pollset_t *pollset = nullptr;
    apr_interval_time_t limit = -1;
    if (APR_BUCKET_IS_PIPE(b)) {
        auto *file = static_cast<apr_file_t *>(b->data);
        apr_os_file_t ofd;
        if (apr_os_file_get(&ofd, file) == APR_SUCCESS) {
            fd = ofd;
        }
        apr_file_pipe_timeout_get(file, &limit);
    }
    else if (APR_BUCKET_IS_SOCKET(b)) {
        auto *sock = static_cast<apr_socket_t *>(b->data);
        apr_os_sock_t osd;
        if (apr_os_sock_get(&osd, sock) == APR_SUCCESS) {
            fd = osd;
        }
        apr_socket_timeout_get(sock, &limit);
    }
    else if (is_cgi_bucket(b)) {
        /* The same wait as the bucket's own blocking read does. */
        auto *data = static_cast<const CgiBucketData *>(b->data);
        pollset = data->pollset;
        limit = data->timeout > 0 ? data->timeout : data->r->server->timeout;
    }
    if (fd < 0 && !pollset) {
        return APR_SUCCESS;
    }
    const apr_time_t start = apr_time_now();
    for (;;) {
        if (output_aborted(task)) {
            return APR_ECONNABORTED;
        }
        int slice = SLICE_MS;
        if (limit >= 0) {
            apr_interval_time_t left = limit - (apr_time_now() - start);
            if (left <= 0) {
                return APR_TIMEUP;
            }
            slice = static_cast<int>(std::min<apr_interval_time_t>(SLICE_MS, left / 1000 + 1));
        }
        if (pollset) {
            apr_int32_t num = 0;
            const apr_pollfd_t *ready = nullptr;
            apr_status_t rv = apr_pollset_poll(pollset, apr_time_from_msec(slice), &num, &ready);
            if (rv == APR_SUCCESS || !(APR_STATUS_IS_TIMEUP(rv) || APR_STATUS_IS_EINTR(rv))) {
                return APR_SUCCESS;
            }
            continue;
        }
        struct pollfd pfd = {fd, POLLIN, 0};
        int n = ::poll(&pfd, 1, slice);
        if (n > 0 || (n < 0 && errno != EINTR)) {
            return APR_SUCCESS;
        }
    }
}

void c2_source_register() noexcept
{
    g_source_filter = ap_register_output_filter("H2X_SOURCE", source_filter, nullptr,
                                                static_cast<ap_filter_type>(AP_FTYPE_PROTOCOL - 1));
}

void c2_source_setup_request(request_rec *r) noexcept
{
    ap_add_output_filter_handle(g_source_filter, nullptr, r, r->connection);
}

} // namespace h2x
