/* h2x_mplx.cpp: see h2x_mplx.h. */
#include "h2x_private.h"
#include "h2x_mplx.h"

#include <http_connection.h>
#include <http_core.h>

namespace h2x {

Mplx::Mplx(conn_rec *c1, apr_pool_t *pool) noexcept : c1_(c1)
{
    apr_socket_t *sock = ap_get_conn_socket(c1);
    apr_status_t rv = apr_pollset_create(&pollset_, 2, pool, APR_POLLSET_WAKEABLE);
    if (rv != APR_SUCCESS) {
        ap_log_cerror(APLOG_MARK, APLOG_ERR, rv, c1, H2XLOGNO(10006)
                      "mplx: cannot create pollset");
        pollset_ = nullptr;
        return;
    }
    sock_pfd_ = {};
    sock_pfd_.p = pool;
    sock_pfd_.desc_type = APR_POLL_SOCKET;
    sock_pfd_.desc.s = sock;
    sock_pfd_.reqevents = APR_POLLIN;
    rv = apr_pollset_add(pollset_, &sock_pfd_);
    if (rv != APR_SUCCESS) {
        ap_log_cerror(APLOG_MARK, APLOG_ERR, rv, c1, H2XLOGNO(10007)
                      "mplx: cannot poll the connection socket");
        apr_pollset_destroy(pollset_);
        pollset_ = nullptr;
    }
}

/* The pollset lives in the c1 pool. The owner joined every task before
 * (Session::teardown()); a ticket still out here would be a worker about
 * to touch freed memory, so wait for it rather than free (invariant 9). */
Mplx::~Mplx()
{
    std::unique_lock<std::mutex> lock(lock_);
    if (running_ > 0) {
        ap_log_cerror(APLOG_MARK, APLOG_ERR, 0, c1_, H2XLOGNO(10060)
                      "mplx(%ld): BUG: destroyed with %d c2 tasks running, waiting for them",
                      c1_->id, running_);
        H2X_BUG_ABORT();
        done_cond_.wait(lock, [this] { return running_ <= 0; });
    }
    /* Its epoll descriptor and wake-up pipe go now, not with the c1 pool:
     * a closed session's connection may linger in the MPM for seconds,
     * and under a connection flood (an attacker cut off at once and
     * reconnecting) those 3 descriptors per connection ran a child out of
     * file descriptors (AH02179 EMFILE), and the MPM then restarted it. */
    if (pollset_) {
        apr_pollset_destroy(pollset_);
        pollset_ = nullptr;
    }
}

/* Only a c1 that sleeps (or is about to) needs the pipe: a busy one looks
 * at pending_ and done_ before it sleeps. Under lock_, so that the pollset
 * (c1 pool) cannot be gone while it is written (see h2x_mplx.h): the pipe
 * is non-blocking and APR writes it once until the poll drains it. */
void Mplx::wake_locked() noexcept
{
    if (c1_sleeping_ && pending_.empty() && done_.empty()) {
        apr_pollset_wakeup(pollset_);
    }
}

void Mplx::signal(std::int32_t id) noexcept
{
    std::lock_guard<std::mutex> lock(lock_);
    wake_locked();
    pending_.push_back(id);
}

void Mplx::c2_done(std::int32_t id) noexcept
{
    std::lock_guard<std::mutex> lock(lock_);
    wake_locked();
    done_.push_back(id);
    --running_;
    /* Notified with lock_ held: c1_join_all() cannot return, and c1 cannot
     * free this Mplx, before the lock_guard's unlock - the last thing this
     * thread does with the connection. */
    done_cond_.notify_all();
}

void Mplx::c1_task_started() noexcept
{
    std::lock_guard<std::mutex> lock(lock_);
    ++running_;
}

void Mplx::c1_take_pending(std::vector<std::int32_t> *ids,
                           std::vector<std::int32_t> *done) noexcept
{
    std::lock_guard<std::mutex> lock(lock_);
    ids->swap(pending_);
    pending_.clear();
    done->swap(done_);
    done_.clear();
}

bool Mplx::c1_wait(apr_interval_time_t timeout) noexcept
{
    {
        std::lock_guard<std::mutex> lock(lock_);
        if (!pending_.empty() || !done_.empty()) {
            return false; /* news already waiting: do not sleep */
        }
        /* From here on, news writes the wake-up pipe; its byte stays until
         * the poll below returns, so nothing between here and there is lost. */
        c1_sleeping_ = true;
    }
    apr_int32_t n = 0;
    const apr_pollfd_t *out = nullptr;
    apr_status_t rv = apr_pollset_poll(pollset_, timeout, &n, &out);
    {
        std::lock_guard<std::mutex> lock(lock_);
        c1_sleeping_ = false;
    }
    if (rv != APR_SUCCESS) {
        return false; /* timeout, EINTR or wake-up */
    }
    for (apr_int32_t i = 0; i < n; ++i) {
        if (out[i].desc.s == sock_pfd_.desc.s) {
            return true;
        }
    }
    return false;
}

void Mplx::c1_join_all() noexcept
{
    std::unique_lock<std::mutex> lock(lock_);
    done_cond_.wait(lock, [this] { return running_ == 0; });
}

int Mplx::c1_running() noexcept
{
    std::lock_guard<std::mutex> lock(lock_);
    return running_;
}

} // namespace h2x
