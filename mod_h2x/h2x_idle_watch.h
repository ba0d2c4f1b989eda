/* h2x_idle_watch.h: KeepAliveTimeout for idle sessions that wait in the
 * event MPM's I/O queue.
 *
 * Why: the event MPM treats its keep-alive queue as expendable. A
 * connection there that turns readable while no MPM thread is free is
 * closed, and a child that ran out of free threads closes the whole queue.
 * For an idle HTTP/2 session that is a GOAWAY the client's next request runs
 * into. A session handed back in CONN_STATE_ASYNC_WAITIO instead waits in
 * the I/O queue, which neither happens to (the listener waits for a thread),
 * but which the MPM times out after `Timeout`, not `KeepAliveTimeout`.
 * IdleWatch keeps the shorter limit itself:
 *
 *  - Session parks its IdleEntry with a deadline when it yields idle (if
 *    KeepAliveTimeout is shorter than Timeout; else the keep-alive queue
 *    keeps the longer limit), and takes it back (wake()) when the MPM
 *    calls it again;
 *  - a thread of IdleWatch's own per child (created at child_init when the
 *    MPM can wait in CONN_STATE_ASYNC_WAITIO) sleeps until the earliest
 *    deadline, expires every parked entry past its deadline, and the
 *    child's graceful stop expires all of them at once. (Not the event
 *    MPM's ap_mpm_register_timed_callback(): in httpd 2.4.6x/2.4.7x its
 *    listener does not wake up for a timer that is not yet due when it
 *    goes to sleep, so a timer runs late by up to `Timeout` on a quiet
 *    server.)
 *  - expiring shuts down the read side of the connection's socket, which
 *    makes the MPM hand the connection to process_connection; wake() then
 *    says "expired" and the session sends GOAWAY(NO_ERROR) and closes
 *    (RFC 9113 §6.8; DESIGN.md invariant 8 for the graceful stop).
 *
 * A request the client sends just as the entry expires is not read: the
 * GOAWAY's last stream id tells the client it may retry it (RFC 9113 §6.8),
 * the same race as any keep-alive close.
 *
 * Entry state, one atomic word: ACTIVE (0, the session runs or is in a
 * queue of the MPM other than the I/O one), a deadline (> 0, parked) or
 * EXPIRED (-1). Transitions:
 *   ACTIVE   -> deadline  park()      connection thread
 *   deadline -> ACTIVE    wake()      connection thread
 *   deadline -> EXPIRED   sweep/stop  the watch thread, or the thread
 *                                     stopping the child; under the mutex
 *   EXPIRED  -> ACTIVE    wake()      connection thread (returns true)
 *
 * owner: IdleEntry is a member of the Session; the list of linked entries,
 *   the watch thread and its wake-up time are per child process (static, in
 *   the .cpp; the thread is joined in a cleanup of the child's pool).
 * thread: park/wake/unlink on the connection's thread; sweeps on the watch
 *   thread, and on the thread running the child_stopping hook. The list is
 *   under one mutex, taken when an entry is first parked and at unlink, not
 *   per request (park() takes it only to wake a watch thread that sleeps
 *   past the new deadline).
 */
#ifndef H2X_IDLE_WATCH_H
#define H2X_IDLE_WATCH_H

#include <atomic>

#include <sys/socket.h>

#include <apr_network_io.h>
#include <apr_pools.h>
#include <apr_thread_proc.h>
#include <apr_time.h>
#include <httpd.h>

namespace h2x {

class IdleEntry {
  public:
    IdleEntry() noexcept = default;
    ~IdleEntry() { unlink(); }
    IdleEntry(const IdleEntry &) = delete;
    IdleEntry &operator=(const IdleEntry &) = delete;

    /* Parks the connection on `sock` until `deadline`. False when the child
     * has no watch (not the event MPM, or no CONN_STATE_ASYNC_WAITIO): the
     * caller then leaves the connection to the MPM's keep-alive queue. */
    bool park(apr_socket_t *sock, apr_time_t deadline) noexcept;
    /* The connection is back on a thread: true when the watch expired it
     * (the read side of its socket is shut down; say GOAWAY and close). */
    bool wake() noexcept;
    /* Out of the list for good; before the socket closes (idempotent). */
    void unlink() noexcept;

  private:
    friend class IdleWatch;
    static constexpr apr_time_t ACTIVE = 0;
    static constexpr apr_time_t EXPIRED = -1;

    std::atomic<apr_time_t> state_{ACTIVE};
    bool linked_ = false;          /* under the list mutex */
    int fd_ = -1;
    /* The peer's address when linked: expire() checks the descriptor still
     * belongs to this connection before shutting it down. */
    sockaddr_storage peer_{};
    socklen_t peer_len_ = 0;
    IdleEntry *prev_ = nullptr;
    IdleEntry *next_ = nullptr;
};

class IdleWatch {
  public:
    /* child_init: when CONN_STATE_ASYNC_WAITIO is available (event MPM,
     * httpd 2.4.63 or later), starts the watch thread. Without it park()
     * always says false. */
    static void child_init(apr_pool_t *pchild, server_rec *s) noexcept;
    /* The child stops gracefully: every parked connection expires now, and
     * none is parked any more. */
    static void child_stopping() noexcept;

  private:
    friend class IdleEntry;
    static bool link(IdleEntry *e, apr_socket_t *sock) noexcept;
    static void unlink(IdleEntry *e) noexcept;
    static void wake_for(apr_time_t deadline) noexcept;
    static void *APR_THREAD_FUNC run(apr_thread_t *, void *) noexcept;
    static apr_status_t stop(void *) noexcept;
    static bool expire(IdleEntry *e, apr_time_t expected) noexcept;
};

} // namespace h2x

#endif
