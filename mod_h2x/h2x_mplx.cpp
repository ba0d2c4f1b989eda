/* h2x_mplx.cpp: see h2x_mplx.h. */
#include "h2x_private.h"
#include "h2x_mplx.h"

#include <http_connection.h>
#include <http_core.h>

#include <algorithm>

namespace h2x {

namespace {
/* The pollset (socket + wake-up pipe) of the c1 thread running a session.
 * A thread runs one session at a time, and a session borrows the pollset
 * only while it runs (c1_attach() .. c1_detach()), so an idle or closing
 * connection holds no descriptor beyond its socket, and a new connection
 * costs no epoll_create/pipe. Made at the thread's first session; threads
 * live as long as their process. All of them come from one process-wide
 * pool, under a mutex, so that a thread's pollset costs its few hundred
 * bytes rather than a pool block of its own; APR_POLLSET_NOCOPY keeps
 * apr_pollset_add() from allocating later (it keeps a pointer to the
 * Mplx's poll record, which stays valid until c1_detach() removes it). */
thread_local apr_pollset_t *t_pollset = nullptr;
std::mutex g_pollsets_lock;
apr_pool_t *g_pollsets_pool = nullptr; /* under g_pollsets_lock */

apr_status_t thread_pollset(apr_pollset_t **out) noexcept
{
    if (!t_pollset) {
        std::lock_guard<std::mutex> lock(g_pollsets_lock);
        apr_status_t rv;
        if (!g_pollsets_pool) {
            rv = apr_pool_create(&g_pollsets_pool, nullptr);
            if (rv != APR_SUCCESS) {
                g_pollsets_pool = nullptr;
                return rv;
            }
            apr_pool_tag(g_pollsets_pool, "h2x_c1_pollsets");
        }
        rv = apr_pollset_create(&t_pollset, 2, g_pollsets_pool,
                                APR_POLLSET_WAKEABLE | APR_POLLSET_NOCOPY);
        if (rv != APR_SUCCESS) {
            t_pollset = nullptr;
            return rv;
        }
    }
    *out = t_pollset;
    return APR_SUCCESS;
}
} // namespace

Mplx::Mplx(conn_rec *c1, apr_pool_t *pool) noexcept : c1_(c1)
{
    sock_pfd_ = {};
    sock_pfd_.p = pool;
    sock_pfd_.desc_type = APR_POLL_SOCKET;
    sock_pfd_.desc.s = ap_get_conn_socket(c1);
    sock_pfd_.reqevents = APR_POLLIN;
}

/* The owner joined every task before (Session::teardown()); a ticket
 * still out here would be a worker about to touch freed memory, so wait
 * for it rather than free (invariant 9). */
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
}

bool Mplx::c1_attach() noexcept
{
    apr_pollset_t *ps = nullptr;
    apr_status_t rv = thread_pollset(&ps);
    if (rv != APR_SUCCESS) {
        ap_log_cerror(APLOG_MARK, APLOG_ERR, rv, c1_, H2XLOGNO(10006)
                      "mplx: cannot create pollset");
        return false;
    }
    /* The socket joins the pollset at the first c1_wait(): a request
     * served at once (and the yield that follows) costs no epoll_ctl. */
    std::lock_guard<std::mutex> lock(lock_);
    pollset_ = ps;
    sock_polled_ = false;
    parked_ = nullptr; /* running again: news is looked at before any wait */
    return true;
}

/* A stale byte this session leaves in the thread's wake-up pipe only makes
 * the next session's first poll on this thread return at once. */
void Mplx::c1_detach() noexcept
{
    apr_pollset_t *ps;
    {
        std::lock_guard<std::mutex> lock(lock_);
        ps = pollset_;
        pollset_ = nullptr; /* no signal writes the pipe from here on */
    }
    if (ps && sock_polled_) {
        apr_pollset_remove(ps, &sock_pfd_);
    }
    sock_polled_ = false;
}

/* Only a c1 that sleeps (or is about to) needs the pipe: a busy one looks
 * at pending_ and done_ before it sleeps. Under lock_, so that the pollset
 * cannot be handed back (c1_detach()) while it is written (see h2x_mplx.h):
 * the pipe is non-blocking and APR writes it once until the poll drains
 * it. c1 sleeps only while attached. */
void Mplx::wake_locked() noexcept
{
    if (!pending_.empty() || !done_.empty()) {
        return; /* told already */
    }
    if (c1_sleeping_ && pollset_) {
        apr_pollset_wakeup(pollset_);
    }
    else if (parked_) {
        Waker waker = parked_;
        parked_ = nullptr;
        waker(parked_arg_);
    }
}

bool Mplx::c1_park(Waker waker, void *arg) noexcept
{
    std::lock_guard<std::mutex> lock(lock_);
    if (!pending_.empty() || !done_.empty()) {
        return false;
    }
    parked_ = waker;
    parked_arg_ = arg;
    return true;
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
        if (!pollset_) {
            return false; /* not attached: nothing to sleep on */
        }
        c1_sleeping_ = true;
    }
    if (!sock_polled_) {
        apr_status_t rv = apr_pollset_add(pollset_, &sock_pfd_);
        if (rv != APR_SUCCESS) {
            ap_log_cerror(APLOG_MARK, APLOG_ERR, rv, c1_, H2XLOGNO(10007)
                          "mplx: cannot poll the connection socket");
            /* Look at the socket again after a short nap rather than spin. */
            apr_sleep(std::min<apr_interval_time_t>(timeout, apr_time_from_msec(10)));
            std::lock_guard<std::mutex> lock(lock_);
            c1_sleeping_ = false;
            return true;
        }
        sock_polled_ = true;
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
