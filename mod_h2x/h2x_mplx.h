/* h2x_mplx.h: the hand-off between one c1 connection and the workers.
 *
 * Workers (c2) report "stream N has news" (output arrived, input consumed,
 * processing done) with signal(); c1 sleeps in wait() on its socket and the
 * pollset's wake-up pipe (the running thread's own pollset, borrowed
 * between c1_attach() and c1_detach(): an idle or closing connection holds
 * no descriptor but its socket), then takes the whole set of ids with
 * c1_take_pending() and re-reads every named stream's state under its beam
 * locks. The set is the level: an id stays in it until c1 takes it. c1
 * looks at the set under the lock right before it sleeps and marks itself
 * sleeping; from then on a signal into an empty set writes the wake-up
 * pipe, whose byte stays until the poll returns - so no news can be lost
 * between c1's check and its sleep (DESIGN.md invariant 3), and news for a
 * busy c1 costs no pipe write.
 *
 * Lifetime (DESIGN.md invariant 9): every c2 task holds a ticket, taken on
 * c1 by c1_task_started() before the task is handed to the workers and
 * given back by c2_done(), under lock_. While a task holds its ticket,
 * nothing it may touch is freed: the Mplx, the Stream's beams, the C2Task
 * and its Request. c2_done() is the worker's last touch of all of them, and
 * it does everything - queue the id, drop the ticket, write the wake-up
 * pipe, notify c1_join_all() - before it releases lock_; it reads nothing
 * of the Mplx afterwards. The freeing side takes the same lock: c1 frees a
 * Stream only after it took the stream's id from done_ (c1_take_pending(),
 * under lock_) and frees the Mplx only after c1_join_all() saw
 * running_ == 0 under lock_
 * (Session::teardown(); the destructor joins too, as a last resort, and
 * logs that as a BUG). A mutex may be destroyed as soon as its last holder
 * unlocked it, so the release itself is safe. signal() is called only by
 * c1 or by a thread that holds a ticket (a c2 through its beam's notifier,
 * or a task being dropped), so the Mplx outlives it; it too touches the
 * pollset only under lock_, and only while c1 has it attached: the pollset
 * belongs to the c1 thread (it lives as long as that thread), and
 * c1_detach() takes it out of reach under lock_.
 *
 * Parked (the event loop, h2x_conn_loop.h): instead of sleeping on a
 * thread, c1 may park with a waker (c1_park(), checked under lock_ like
 * the sleep): the first news into an empty set then calls the waker, once,
 * under lock_ (so the waker must not block nor call into this Mplx), and
 * the next c1_attach() unparks. The waker's argument must live as long as
 * the Mplx.
 *
 * owner: the c1 Session (std::unique_ptr), created in the c1 pool.
 * thread: signal()/c2_done() from any thread holding a task's ticket (or
 *         c1); everything c1_* on c1 only.
 */
#ifndef H2X_MPLX_H
#define H2X_MPLX_H

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <vector>

#include <apr_poll.h>
#include <httpd.h>

namespace h2x {

class Mplx {
  public:
    /* `pool`: the c1 pool (the socket's poll record). */
    Mplx(conn_rec *c1, apr_pool_t *pool) noexcept;
    ~Mplx();

    /* c1, when Session::run() starts: borrow this thread's pollset (the
     * socket joins it at the first c1_wait()). False (logged) when that
     * fails. */
    bool c1_attach() noexcept;
    /* c1, before Session::run() returns: give the pollset back. */
    void c1_detach() noexcept;

    /* c1, or a thread holding a task's ticket: stream `id` has news for c1. */
    void signal(std::int32_t id) noexcept;
    /* The thread holding the ticket of stream `id`'s task (its worker, or
     * whoever drops the task unrun): the task is over. Gives the ticket
     * back; when this returns, c1 may already have freed the task, its
     * stream and this Mplx, so the caller touches none of them again. */
    void c2_done(std::int32_t id) noexcept;

    /* c1: a c2 task is about to be handed to the workers (takes its ticket). */
    void c1_task_started() noexcept;
    /* c1: ids with news since the last call (may hold duplicates). */
    void c1_take_pending(std::vector<std::int32_t> *ids,
                         std::vector<std::int32_t> *done) noexcept;
    /* c1: sleep until the socket is readable, news arrives, or `timeout`
     * passes. Returns true when the socket is readable. */
    bool c1_wait(apr_interval_time_t timeout) noexcept;
    /* c1, instead of c1_wait(): the next news calls waker(arg) (once, on a
     * thread holding a ticket, under lock_). False when news is already
     * waiting: not parked, look at it now. */
    using Waker = void (*)(void *arg);
    bool c1_park(Waker waker, void *arg) noexcept;
    /* c1: block until every started c2 task has reported done; after it,
     * no other thread touches this Mplx or a stream's task and beams. */
    void c1_join_all() noexcept;
    int c1_running() noexcept;

  private:
    void wake_locked() noexcept; /* under lock_ */

    conn_rec *c1_;
    apr_pollset_t *pollset_ = nullptr;  /* the c1 thread's, while attached; under lock_ */
    apr_pollfd_t sock_pfd_;
    bool sock_polled_ = false;          /* c1 only: sock_pfd_ is in pollset_ */
    std::mutex lock_;
    std::condition_variable done_cond_;  /* running_ dropped; notified under lock_ */
    std::vector<std::int32_t> pending_; /* under lock_ */
    std::vector<std::int32_t> done_;    /* under lock_ */
    int running_ = 0;                   /* under lock_: tickets out (tasks not yet done) */
    bool c1_sleeping_ = false;          /* under lock_: c1 is in (or entering) poll */
    Waker parked_ = nullptr;            /* under lock_: c1_park()'s waker, until used */
    void *parked_arg_ = nullptr;        /* under lock_ */
};

} // namespace h2x

#endif
