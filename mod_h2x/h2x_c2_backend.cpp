/* h2x_c2_backend.cpp: see h2x_c2_backend.h. */
#include "h2x_private.h"
#include "h2x_c2_backend.h"

#include <sys/socket.h>
#include <unistd.h>

#include <apr_optional_hooks.h>
#include <apr_portable.h>
#include <http_core.h>
#include <httpd.h>
#include <mod_proxy.h>

#include "h2x_c2.h"
#include "h2x_conn_ctx.h"

namespace h2x {

BackendWatch::~BackendWatch()
{
    clear();
}

void BackendWatch::add(int fd, conn_rec *c2) noexcept
{
    int dup_fd = ::dup(fd);
    if (dup_fd < 0) {
        return;
    }
    std::lock_guard<std::mutex> lock(lock_);
    c2_ = c2;
    if (interrupted_) {
        c2->keepalives = 0;
        ::shutdown(dup_fd, SHUT_RDWR);
    }
    fds_.push_back(dup_fd);
}

void BackendWatch::clear() noexcept
{
    std::lock_guard<std::mutex> lock(lock_);
    for (int fd : fds_) {
        ::close(fd);
    }
    fds_.clear();
    c2_ = nullptr;
}

void BackendWatch::interrupt() noexcept
{
    std::lock_guard<std::mutex> lock(lock_);
    if (interrupted_) {
        return;
    }
    interrupted_ = true;
    if (c2_ && !fds_.empty()) {
        /* Written before the shutdown that ends the worker's read, which
         * is when mod_proxy_http looks at it (see the header). */
        c2_->keepalives = 0;
    }
    for (int fd : fds_) {
        ::shutdown(fd, SHUT_RDWR);
    }
}

namespace {

apr_status_t clear_watch(void *data) noexcept
{
    static_cast<BackendWatch *>(data)->clear();
    return APR_SUCCESS;
}

/* mod_proxy's create_req: `pr` is the request that will read the backend's
 * answer, on the backend connection; `r` is the client's request. Runs on
 * the worker that runs `r`. */
int note_backend(request_rec *r, request_rec *pr) noexcept
{
    conn_rec *c = r->connection;
    ConnCtx *ctx;
    if (!c->master || !(ctx = conn_ctx(c)) || !ctx->task || !pr || !pr->connection) {
        return OK;
    }
    apr_socket_t *sock = ap_get_conn_socket(pr->connection);
    apr_os_sock_t fd = -1;
    if (!sock || apr_os_sock_get(&fd, sock) != APR_SUCCESS || fd < 0) {
        return OK;
    }
    BackendWatch *watch = &ctx->task->backends;
    watch->add(fd, c);
    /* The task outlives its request's pool. */
    apr_pool_cleanup_kill(r->pool, watch, clear_watch);
    apr_pool_cleanup_register(r->pool, watch, clear_watch, apr_pool_cleanup_null);
    return OK;
}

} // namespace

void c2_backend_register_hooks() noexcept
{
    APR_OPTIONAL_HOOK(proxy, create_req, note_backend, nullptr, nullptr, APR_HOOK_MIDDLE);
}

} // namespace h2x
