/* h2x_child_thread.h: a thread of mod_h2x's own in an httpd child process.
 *
 * The event loop (h2x_conn_loop.h) and the idle watch (h2x_idle_watch.h)
 * each run one such thread per child, started from child_init. Both are
 * made with ap_thread_create(), as the MPM makes its own, so that
 * ap_thread_current() knows them. Signals are blocked in the child's main
 * thread by then (the MPM's signal thread takes them); the new thread
 * inherits that.
 *
 * Thread: child_init (the child's main thread). The apr_thread_t lives in
 * pchild; the caller joins it from a pchild cleanup. */
#ifndef H2X_CHILD_THREAD_H
#define H2X_CHILD_THREAD_H

#include <apr_thread_proc.h>

namespace h2x {

/* Starts fn(thread, data). On failure logs `failure` (a message with its
 * H2XLOGNO tag) at warning level with the APR status and returns nullptr. */
apr_thread_t *start_child_thread(apr_pool_t *pchild, server_rec *s, apr_thread_start_t fn,
                                 void *data, const char *failure) noexcept;

} // namespace h2x

#endif
