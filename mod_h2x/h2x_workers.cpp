/* h2x_workers.cpp: see h2x_workers.h. */
#include "h2x_private.h"
#include "h2x_workers.h"

#include <algorithm>
#include <chrono>

#include <pthread.h>
#include <signal.h>
#include <time.h>

#include <mpm_common.h>

namespace h2x {

namespace {
Workers *g_workers = nullptr; /* set once in child_init */
thread_local bool t_worker = false; /* this thread is one of ours */

/* pthread_atfork() child handler: a process forked by one of our worker
 * threads (mod_cgi's CGI, mod_ext_filter's filter program, ...) starts
 * with no signal blocked, as a program started from a shell does. It would
 * otherwise inherit the worker's mask, in which threaded MPMs block
 * SIGTERM (their signal thread takes it), and ignore the SIGTERM that
 * APR's pool cleanup sends when a request ends early - a CGI then lives
 * on until the SIGKILL 3 s later (issue 10: a client reset frees a
 * silent CGI at once). Only the forked child's one thread changes. */
void unblock_signals_in_child() noexcept
{
    if (t_worker) {
        sigset_t all;
        sigfillset(&all);
        pthread_sigmask(SIG_UNBLOCK, &all, nullptr);
    }
}
} // namespace

Workers::Workers(apr_pool_t *pool, server_rec *s, int min_workers, int max_workers,
                 int idle_secs) noexcept
    : pool_(pool), server_(s), min_(std::max(1, min_workers)),
      max_(std::max(std::max(1, min_workers), max_workers)),
      idle_(apr_time_from_sec(idle_secs > 0 ? idle_secs : 1))
{
}

Workers *Workers::create(apr_pool_t *pchild, server_rec *s, int min_workers,
                         int max_workers, int idle_secs) noexcept
{
    apr_pool_t *pool;
    if (apr_pool_create(&pool, pchild) != APR_SUCCESS) {
        return nullptr;
    }
    apr_pool_tag(pool, "h2x_workers");
    static bool atfork_set = false; /* once per process (child_init) */
    if (!atfork_set) {
        atfork_set = pthread_atfork(nullptr, nullptr, unblock_signals_in_child) == 0;
    }
    auto *w = new Workers(pool, s, min_workers, max_workers, idle_secs);
    /* Before the pool's subpools go away, stop the threads. */
    apr_pool_pre_cleanup_register(pchild, w, shutdown);
    {
        std::lock_guard<std::mutex> lock(w->lock_);
        for (int i = 0; i < w->min_; ++i) {
            w->spawn_locked();
        }
    }
    g_workers = w;
    ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, s, H2XLOGNO(10003)
                 "workers: started %d threads (min %d, max %d, idle %ds)",
                 w->threads_, w->min_, w->max_, idle_secs);
    return w;
}

Workers *Workers::get() noexcept
{
    return g_workers;
}

void Workers::spawn_locked() noexcept
{
    apr_threadattr_t *attr;
    apr_thread_t *thread;
    apr_threadattr_create(&attr, pool_);
    apr_threadattr_detach_set(attr, 1);
    if (ap_thread_stacksize) {
        apr_threadattr_stacksize_set(attr, ap_thread_stacksize);
    }
    apr_status_t rv = apr_thread_create(&thread, attr, thread_main, this, pool_);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_ERR, rv, server_, H2XLOGNO(10004)
                     "workers: cannot create a thread (%d running)", threads_);
        return;
    }
    ++threads_;
}

void *Workers::thread_main(apr_thread_t *thread, void *data) noexcept
{
    t_worker = true;
    static_cast<Workers *>(data)->work(thread);
    return nullptr;
}

void Workers::work(apr_thread_t *thread) noexcept
{
    Idle me;
    std::unique_lock<std::mutex> lock(lock_);
    while (!shutdown_) {
        Task *task = nullptr;
        if (!queue_.empty()) {
            task = queue_.front();
            queue_.pop_front();
        }
        else {
            me.task = nullptr;
            waiting_.push_back(&me);
            bool got = me.cond.wait_for(lock, std::chrono::microseconds(idle_),
                                        [this, &me] { return me.task || shutdown_; });
            if (!me.task) {
                waiting_.erase(std::find(waiting_.begin(), waiting_.end(), &me));
                if (shutdown_) {
                    break;
                }
                if (!got && threads_ > min_) {
                    ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, server_, H2XLOGNO(10005)
                                 "workers: idle thread exits (%d left)", threads_ - 1);
                    break;
                }
                continue;
            }
            task = me.task; /* submit() took us off waiting_ */
        }
        lock.unlock();
        task->run(thread); /* `task` may be freed from here on */
        lock.lock();
    }
    --threads_;
    exit_cond_.notify_all();
    lock.unlock();
    /* apr_thread_exit() would free the thread's pool; the pool of a detached
     * thread is a subpool of pool_, freed with it. */
}

void Workers::submit(Task *task) noexcept
{
    std::lock_guard<std::mutex> lock(lock_);
    if (shutdown_) {
        task->dropped();
        return;
    }
    if (!waiting_.empty()) {
        Idle *w = waiting_.back();
        waiting_.pop_back();
        w->task = task;
        w->cond.notify_one();
        return;
    }
    queue_.push_back(task);
    if (threads_ < max_) {
        spawn_locked();
    }
}

bool Workers::cancel(Task *task) noexcept
{
    std::lock_guard<std::mutex> lock(lock_);
    auto it = std::find(queue_.begin(), queue_.end(), task);
    if (it == queue_.end()) {
        return false;
    }
    queue_.erase(it);
    return true;
}

bool Workers::has_reserve() noexcept
{
    Stats st = stats();
    int used = st.busy + st.queued;
    return st.max_workers - used > st.max_workers / 4;
}

Workers::Stats Workers::stats() noexcept
{
    std::lock_guard<std::mutex> lock(lock_);
    return Stats{threads_, threads_ - static_cast<int>(waiting_.size()),
                 static_cast<int>(queue_.size()), min_, max_};
}

apr_status_t Workers::shutdown(void *data) noexcept
{
    auto *w = static_cast<Workers *>(data);
    /* Under prefork this runs inside the child's SIGTERM handler (httpd's
     * just_die destroys pchild there), on the thread the signal
     * interrupted - which may be a c1 inside submit() or cancel(), holding
     * lock_. Blocking on lock_ would then never return and the child would
     * hang until the parent's SIGKILL. So only try for a bounded time; if
     * the lock stays taken, the process is on its way out: leave the
     * threads to the exit. */
    std::unique_lock<std::mutex> lock(w->lock_, std::defer_lock);
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::milliseconds(500);
    while (!lock.try_lock()) {
        if (std::chrono::steady_clock::now() > give_up) {
            g_workers = nullptr;
            return APR_SUCCESS;
        }
        struct timespec pause = {0, 1000000}; /* nanosleep: async-signal-safe */
        nanosleep(&pause, nullptr);
    }
    w->shutdown_ = true;
    while (!w->queue_.empty()) {
        Task *task = w->queue_.front();
        w->queue_.pop_front();
        task->dropped();
    }
    for (Idle *idle : w->waiting_) {
        idle->cond.notify_one();
    }
    /* Running tasks belong to connections the MPM is still closing; give
     * them a bounded time. */
    w->exit_cond_.wait_for(lock, std::chrono::seconds(5), [w] { return w->threads_ == 0; });
    g_workers = nullptr;
    return APR_SUCCESS;
}

} // namespace h2x
