/* h2x_workers.h: the process-wide worker thread pool that runs c2 tasks.
 *
 * Between H2MinWorkers and H2MaxWorkers threads; a thread above the minimum
 * that stays idle for H2MaxWorkerIdleSeconds exits. Tasks queue in FIFO
 * order when every thread is busy. A new task goes to the thread that
 * became idle last (its stack and memory are still warm); the others stay
 * cold and are the ones that time out. A process forked by a worker
 * thread (mod_cgi's CGIs) starts with no signal blocked (a pthread_atfork
 * child handler), so that it obeys the SIGTERM of a request's cleanup.
 *
 * owner: the child process (created in child_init, stopped by a pre-cleanup
 *        of the child pool).
 * thread: submit()/cancel() from any c1 thread; tasks run on pool threads.
 */
#ifndef H2X_WORKERS_H
#define H2X_WORKERS_H

#include <condition_variable>
#include <deque>
#include <mutex>
#include <vector>

#include <apr_pools.h>
#include <apr_thread_proc.h>
#include <httpd.h>

namespace h2x {

/* One unit of work: a stream's c2 processing. */
class Task {
  public:
    virtual ~Task() = default;
    /* Runs on a worker thread. The task may be freed by its owner as
     * soon as run() or dropped() reports it finished, so neither the pool
     * nor the task itself touch it once that happened. */
    virtual void run(apr_thread_t *thread) noexcept = 0;
    /* Called instead of run() when the task is cancelled while queued,
     * or when the pool shuts down before it ran. */
    virtual void dropped() noexcept = 0;
};

class Workers {
  public:
    /* Creates the process' pool in `pchild`; returns nullptr on failure. */
    static Workers *create(apr_pool_t *pchild, server_rec *s, int min_workers,
                           int max_workers, int idle_secs) noexcept;
    static Workers *get() noexcept;

    void submit(Task *task) noexcept;
    /* Removes a task that has not started yet. True if it was removed. */
    bool cancel(Task *task) noexcept;
    /* More than a quarter of H2MaxWorkers is free: neither running a task
     * nor spoken for by a queued one. Tasks that may wait long on their
     * client start beyond a per-connection allowance only while this
     * holds (Session::start_ready()), so that such waits never take the
     * workers other connections need. */
    bool has_reserve() noexcept;

    struct Stats {
        int threads;
        int busy;
        int queued;
        int min_workers;
        int max_workers;
    };
    Stats stats() noexcept;

  private:
    Workers(apr_pool_t *pool, server_rec *s, int min_workers, int max_workers,
            int idle_secs) noexcept;
    static void *thread_main(apr_thread_t *thread, void *data) noexcept;
    static apr_status_t shutdown(void *data) noexcept;
    void spawn_locked() noexcept;
    void work(apr_thread_t *thread) noexcept;

    apr_pool_t *pool_;   /* under lock_: threads are created from it */
    server_rec *server_;
    const int min_;
    const int max_;
    const apr_interval_time_t idle_;
    /* An idle thread, waiting for a task handed to it directly. */
    struct Idle {
        std::condition_variable cond;
        Task *task = nullptr;
    };

    std::mutex lock_;
    std::condition_variable exit_cond_;  /* a thread exited */
    std::deque<Task *> queue_;           /* under lock_: tasks no thread took yet */
    std::vector<Idle *> waiting_;        /* under lock_: idle threads, most recent last */
    int threads_ = 0;                    /* under lock_ */
    bool shutdown_ = false;              /* under lock_ */
};

} // namespace h2x

#endif
