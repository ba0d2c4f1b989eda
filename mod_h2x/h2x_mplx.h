/* h2x_mplx.h: the hand-off between one c1 connection and the workers.
 *
 * Workers (c2) report "stream N has news" (output arrived, input consumed,
 * processing done) with signal(); c1 sleeps in wait() on its socket and the
 * pollset's wake-up pipe, then takes the whole set of ids with
 * c1_take_pending() and re-reads every named stream's state under its beam
 * locks. The set is the level: an id stays in it until c1 takes it. c1
 * looks at the set under the lock right before it sleeps and marks itself
 * sleeping; from then on a signal into an empty set writes the wake-up
 * pipe, whose byte stays until the poll returns - so no news can be lost
 * between c1's check and its sleep (DESIGN.md invariant 3), and news for a
 * busy c1 costs no pipe write.
 *
 * owner: the c1 Session (std::unique_ptr), created in the c1 pool.
 * thread: signal()/c2_done() from any thread; everything c1_* on c1 only.
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
    /* Creates the pollset (socket + wake-up) in `pool`. */
    Mplx(conn_rec *c1, apr_pool_t *pool) noexcept;
    ~Mplx();
    bool ok() const noexcept { return pollset_ != nullptr; }

    /* any thread: stream `id` has news for c1. */
    void signal(std::int32_t id) noexcept;
    /* c2 thread: the c2 of stream `id` has finished; after this call the
     * worker touches nothing of the stream any more. */
    void c2_done(std::int32_t id) noexcept;

    /* c1: a c2 task was handed to the workers. */
    void c1_task_started() noexcept;
    /* c1: ids with news since the last call (may hold duplicates). */
    void c1_take_pending(std::vector<std::int32_t> *ids,
                         std::vector<std::int32_t> *done) noexcept;
    /* c1: sleep until the socket is readable, news arrives, or `timeout`
     * passes. Returns true when the socket is readable. */
    bool c1_wait(apr_interval_time_t timeout) noexcept;
    /* c1: block until every started c2 task has reported done. */
    void c1_join_all() noexcept;
    int c1_running() noexcept;

  private:
    conn_rec *c1_;
    apr_pollset_t *pollset_ = nullptr;
    apr_pollfd_t sock_pfd_;
    std::mutex lock_;
    std::condition_variable done_cond_;
    std::vector<std::int32_t> pending_; /* under lock_ */
    std::vector<std::int32_t> done_;    /* under lock_ */
    int running_ = 0;                   /* under lock_: c2 tasks not yet done */
    bool c1_sleeping_ = false;          /* under lock_: c1 is in (or entering) poll */
};

} // namespace h2x

#endif
