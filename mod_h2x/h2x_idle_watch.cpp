/* h2x_idle_watch.cpp: see h2x_idle_watch.h. */
#include "h2x_private.h"
#include "h2x_idle_watch.h"
#include "h2x_child_thread.h"

#include <cstring>
#include <chrono>
#include <condition_variable>
#include <mutex>

#include <apr_portable.h>
#include <apr_thread_proc.h>
#include <ap_mpm.h>
#include <http_main.h>
#include <mpm_common.h>

namespace h2x {

namespace {

/* Parked connections whose deadlines lie this close together share a
 * sweep: an idle connection closes up to this much after its
 * KeepAliveTimeout, and a busy child sweeps about once per
 * KeepAliveTimeout, not once per request. */
constexpr apr_interval_time_t SWEEP_SLACK = 50 * 1000;

std::atomic<bool> available{false};
std::atomic<bool> stopping{false};
/* When the watch thread wakes up next (0: not before it is notified). Set
 * by the thread under the mutex; read by park() without it. */
std::atomic<apr_time_t> next_sweep{0};

/* The child's watch: made in child_init and never freed, so that no
 * destructor of the mutex or condition runs when the child exits without
 * the pool cleanup (a condition destroyed under its waiter blocks). */
struct Watch {
    std::mutex mutex;
    std::condition_variable cv;      /* with mutex */
    IdleEntry *head = nullptr;       /* under mutex */
    bool quit = false;               /* under mutex */
    apr_thread_t *thread = nullptr;
};
Watch *watch = nullptr;

} // namespace

bool IdleEntry::park(apr_socket_t *sock, apr_time_t deadline) noexcept
{
    if (!available.load(std::memory_order_relaxed) || stopping.load()) {
        return false;
    }
    if (!linked_ && !IdleWatch::link(this, sock)) {
        return false;
    }
    state_.store(deadline);
    if (stopping.load()) {
        /* The child began to stop while we parked: leave the connection to
         * the keep-alive queue (closed at once when a child stops), unless
         * the stop expired it already (then the MPM calls us back). */
        apr_time_t expected = deadline;
        if (state_.compare_exchange_strong(expected, ACTIVE)) {
            return false;
        }
        return true;
    }
    IdleWatch::wake_for(deadline);
    return true;
}

bool IdleEntry::wake() noexcept
{
    return state_.exchange(ACTIVE) == EXPIRED;
}

void IdleEntry::unlink() noexcept
{
    if (linked_) {
        IdleWatch::unlink(this);
    }
}

void IdleWatch::child_init(apr_pool_t *pchild, server_rec *s) noexcept
{
    int can_waitio = 0;
#ifdef AP_MPMQ_CAN_WAITIO
    if (ap_mpm_query(AP_MPMQ_CAN_WAITIO, &can_waitio) != APR_SUCCESS) {
        can_waitio = 0;
    }
#endif
    if (!can_waitio) {
        return;
    }
    watch = new Watch;
    watch->thread = start_child_thread(pchild, s, run, nullptr, H2XLOGNO(10044)
                                       "mod_h2x: cannot start the idle-connection thread; "
                                       "idle connections are left to the MPM's keep-alive "
                                       "queue");
    if (!watch->thread) {
        return;
    }
    apr_pool_cleanup_register(pchild, nullptr, stop, apr_pool_cleanup_null);
    available.store(true);
}

apr_status_t IdleWatch::stop(void *) noexcept
{
    available.store(false);
    {
        std::lock_guard<std::mutex> lock(watch->mutex);
        watch->quit = true;
        watch->cv.notify_one();
    }
    apr_status_t rv;
    apr_thread_join(&rv, watch->thread);
    watch->thread = nullptr;
    return APR_SUCCESS;
}

bool IdleWatch::link(IdleEntry *e, apr_socket_t *sock) noexcept
{
    apr_os_sock_t fd = -1;
    if (!sock || apr_os_sock_get(&fd, sock) != APR_SUCCESS || fd < 0) {
        return false;
    }
    e->peer_len_ = sizeof(e->peer_);
    if (getpeername(fd, reinterpret_cast<sockaddr *>(&e->peer_), &e->peer_len_) != 0) {
        return false;
    }
    e->fd_ = fd;
    std::lock_guard<std::mutex> lock(watch->mutex);
    e->prev_ = nullptr;
    e->next_ = watch->head;
    if (watch->head) {
        watch->head->prev_ = e;
    }
    watch->head = e;
    e->linked_ = true;
    return true;
}

void IdleWatch::unlink(IdleEntry *e) noexcept
{
    std::lock_guard<std::mutex> lock(watch->mutex);
    if (!e->linked_) {
        return;
    }
    if (e->prev_) {
        e->prev_->next_ = e->next_;
    }
    else {
        watch->head = e->next_;
    }
    if (e->next_) {
        e->next_->prev_ = e->prev_;
    }
    e->prev_ = e->next_ = nullptr;
    e->linked_ = false;
    e->fd_ = -1;
}

/* park(): make sure the watch thread wakes up by `deadline` (+ slack). */
void IdleWatch::wake_for(apr_time_t deadline) noexcept
{
    apr_time_t planned = next_sweep.load();
    if (planned != 0 && planned <= deadline + SWEEP_SLACK) {
        return; /* the common case: a sweep comes in time */
    }
    /* Under the mutex: the thread is then either about to scan (and sees
     * this entry's deadline) or waiting (and gets the notification). */
    std::lock_guard<std::mutex> lock(watch->mutex);
    watch->cv.notify_one();
}

/* The watch thread: expire what is due, sleep until the next deadline. */
void *APR_THREAD_FUNC IdleWatch::run(apr_thread_t *, void *) noexcept
{
    std::unique_lock<std::mutex> lock(watch->mutex);
    while (!watch->quit) {
        /* Before looking: a park() from now on sees 0 and notifies. */
        next_sweep.store(0);
        apr_time_t now = apr_time_now();
        apr_time_t next = 0;
        for (IdleEntry *e = watch->head; e; e = e->next_) {
            apr_time_t st = e->state_.load();
            if (st <= 0) {
                continue;
            }
            if (st <= now) {
                expire(e, st);
            }
            else if (!next || st < next) {
                next = st;
            }
        }
        if (next) {
            next_sweep.store(next + SWEEP_SLACK);
            watch->cv.wait_for(lock, std::chrono::microseconds(next + SWEEP_SLACK - now));
        }
        else {
            watch->cv.wait(lock);
        }
    }
    return nullptr;
}

void IdleWatch::child_stopping() noexcept
{
    if (!watch) {
        return; /* mod_h2x inactive, or no CONN_STATE_ASYNC_WAITIO */
    }
    stopping.store(true);
    std::lock_guard<std::mutex> lock(watch->mutex);
    for (IdleEntry *e = watch->head; e; e = e->next_) {
        apr_time_t s = e->state_.load();
        if (s > 0) {
            expire(e, s);
        }
    }
}

/* Under the watch's mutex. */
bool IdleWatch::expire(IdleEntry *e, apr_time_t expected) noexcept
{
    if (!e->state_.compare_exchange_strong(expected, IdleEntry::EXPIRED)) {
        return false; /* woke in the meantime */
    }
    /* Linked entries are unlinked before their socket closes, so fd_ is
     * this connection's; compare the peer anyway before shutting down. */
    sockaddr_storage peer{};
    socklen_t len = sizeof(peer);
    if (getpeername(e->fd_, reinterpret_cast<sockaddr *>(&peer), &len) != 0
        || len != e->peer_len_ || std::memcmp(&peer, &e->peer_, len) != 0) {
        ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, ap_server_conf, H2XLOGNO(10045)
                     "mod_h2x: idle connection's socket %d is no longer its own; "
                     "not shut down", e->fd_);
        return false;
    }
    /* Readable now (EOF): the MPM hands the connection to a thread. */
    ap_log_error(APLOG_MARK, APLOG_TRACE2, 0, ap_server_conf,
                 "mod_h2x: idle connection on socket %d expires", e->fd_);
    shutdown(e->fd_, SHUT_RD);
    return true;
}

} // namespace h2x
