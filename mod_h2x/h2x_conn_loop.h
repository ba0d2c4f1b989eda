/* h2x_conn_loop.h: an event loop per child for idle HTTP/2 connections
 * (H2xEventLoop, event MPM only).
 *
 * Why: handing an idle connection back to the event MPM costs, for each
 * request that comes after, two epoll_ctl calls, a wake-up of the MPM's
 * listener and one of a worker (futex), and on this kind of machine that
 * hand-off is about half of the CPU of a small request when every
 * connection has one request in flight (docs/performance.md, "200
 * connections x 1 stream"). httpd's HTTP/1.1 mostly avoids it by finding
 * the client's next request on the same thread; an HTTP/2 session cannot
 * (its tail is too short), and httpd 2.4's MPM has no cheaper way back.
 *
 * How:
 *  - adopt(): after a session yielded idle on an MPM thread (c1_run()), the
 *    connection is suspended in the MPM (CONN_STATE_SUSPENDED) and its
 *    socket joins this loop's epoll set, level-triggered, for as long as
 *    the loop keeps it.
 *  - The loop thread runs the session's next turn itself when the client
 *    sends more (Session::run() with on_loop): read, start the requests,
 *    serve the quick ones on this thread (h2x_c2_inline.h), write. A turn
 *    that ends idle leaves the connection where it is: no epoll_ctl, no
 *    thread hand-off per request.
 *  - A turn that has to do what may block (start requests that are not
 *    quick, write more than the socket takes now) returns NEEDS_THREAD:
 *    the loop takes the socket out of its set and hands the connection to
 *    an MPM worker with ap_mpm_register_timed_callback(0), which runs the
 *    session as c1_run() does, and gives it back to the loop when it is
 *    idle once more - or when it only waits for its streams.
 *  - A session whose streams are in progress (a CGI, a proxy, a gRPC or
 *    WebSocket stream on the h2x workers) and that has nothing to do but
 *    wait for them parks instead of sleeping on a thread (WAITING,
 *    Mplx::c1_park()): its socket stays in the set, the first news of its
 *    streams calls the loop's waker, which puts it on the ready stack and
 *    pokes the loop, and the loop thread runs the next turn itself (moves
 *    the streams' output to the socket, input to the streams) - no MPM
 *    worker held while a stream runs, no thread hand-off per chunk. The
 *    session's own timers (H2OutputBuffering's hold, stream timeouts)
 *    come as a deadline, at most a second away.
 *  - The MPM never gets the connection back (httpd 2.4 has no API for
 *    that): when the session ends, the worker closes the connection
 *    (ap_lingering_close(): pre_close hooks, TLS close_notify, lingering
 *    read) and destroys its pool, which runs the MPM's own cleanups
 *    (connection count).
 *  - KeepAliveTimeout: the loop keeps its connections in the order they
 *    went idle and expires those past their deadline (a worker sends
 *    GOAWAY(NO_ERROR) and closes). A virtual host with a shorter
 *    KeepAliveTimeout than the connections before it is found by a sweep
 *    of the whole list once a second. A graceful stop of the child
 *    (child_stopping) expires every connection of the loop at once; an
 *    ungraceful one also shuts down the sockets of the connections that
 *    MPM workers run for the loop (the MPM does that for its own).
 *
 * Entry state (LoopEntry::state, under the loop's mutex):
 *   OUT    not here (the MPM or a thread of its own runs the session)
 *   PENDING in the idle list, not yet in the epoll set: the MPM has not
 *          suspended it yet (adopt() from c1_run(), until the MPM's
 *          suspend_connection hook)
 *   IDLE   in the epoll set and the idle list
 *   WAIT   parked, streams in progress: in the epoll set and the waiting
 *          list, on the ready stack once its streams had news or its
 *          deadline passed
 *   TURN   the loop thread runs its turn (in the set and the idle list)
 *   WORKER handed to an MPM worker (timed callback pending or running),
 *          in the busy list
 *   LINGER closing: in the epoll set and the linger list, what the client
 *          still sends is read and dropped
 *   GRAVE  closed, its pool kept a little longer (SUSPEND_GRACE)
 * Transitions: adopt() OUT -> PENDING (the MPM's thread), the hook
 * PENDING -> IDLE; the loop IDLE/WAIT -> TURN -> IDLE or WAIT, or ->
 * WORKER (taken out of the set first); the worker WORKER -> IDLE
 * (adopt()), -> WAIT (parked) or -> LINGER (its session ended); the loop
 * LINGER -> GRAVE or gone, GRAVE -> gone (the pool destroyed). `woken`
 * (news since the turn began) closes the gap between a session parking
 * and its entry becoming WAIT.
 *
 * owner: the loop (epoll set, eventfd, thread) is per child, made at
 *   child_init, stopped and joined in a cleanup of the child's pool; a
 *   LoopEntry lives in its connection's pool (trivially destructible).
 * thread: the loop thread runs turns and expiries; adopt() runs on the
 *   thread that ran the session; child_stopping() on the MPM's.
 */
#ifndef H2X_CONN_LOOP_H
#define H2X_CONN_LOOP_H

#include <apr_pools.h>
#include <apr_time.h>
#include <httpd.h>

namespace h2x {

class ConnLoop {
  public:
    /* Starts the child's loop thread when the MPM is async and some
     * server has H2xEventLoop on. */
    static void child_init(apr_pool_t *pchild, server_rec *s) noexcept;
    /* The child stops. Graceful: close every idle connection of the loop
     * now (GOAWAY first). Not graceful: also shut down the sockets of the
     * connections workers are running, so that they end. */
    static void child_stopping(bool graceful) noexcept;
    /* After the session of `c` yielded idle on this thread: take the
     * connection over. True: it is ours now. `from_mpm` (c1_run): the
     * caller sets CONN_STATE_SUSPENDED and returns to the MPM; the loop
     * sees the connection only once the MPM has suspended it (its
     * suspend_connection hook), before that the MPM still writes to it.
     * False: no loop, or not for this connection; leave it to the MPM. */
    static bool adopt(conn_rec *c, bool from_mpm) noexcept;
    static void register_hooks() noexcept;
    /* May a turn on the loop start requests at all? Not when a module is
     * loaded whose request hooks may wait on a network service or run
     * arbitrary code (LDAP or SQL authentication, Lua, Perl, ...: see
     * docs/directives/H2xEventLoop.md): a request's phases before its
     * handler run where it starts, and on the loop they would hold up every
     * connection of the child. Then each request goes to a thread first. */
    static bool may_start_requests() noexcept;
};

} // namespace h2x

#endif
