/* h2x_c2_inline.h: running a lone stream's request on the c1 thread.
 *
 * Most API clients keep one request in flight per connection. Handing
 * each of those to a worker and its response back costs two thread
 * wake-ups that HTTP/1.1 does not pay (issue 11). When a request arrives
 * alone - no other stream of the connection has a task running, no body
 * follows (END_STREAM on its HEADERS), GET or HEAD, not an extended
 * CONNECT - Session starts its task on c1 (C2Task::run_inline()), and the
 * request runs there up to its handler:
 *
 *   - httpd's request phases (translate, map to storage, access and
 *     authentication checks, type checker, fixups) and the insert_filter
 *     hook, as ap_process_async_request() would run them;
 *   - then inline_gate(), a handler hook that runs before every other,
 *     decides. Only a plain static file stays on c1: GET/HEAD of a
 *     regular file of at most INLINE_MAX_FILE bytes, no handler named
 *     for it (SetHandler, AddHandler, a module's fixup or internal
 *     redirect: at the handler hook r->handler is then not the content
 *     type) and no "magic" content type that a module serves (application/x-httpd-...,
 *     httpd/..., text/x-server-parsed-html...), and only output filters from
 *     a list known not to block (deflate, byte ranges, headers, ...).
 *     core's default handler then serves it on c1; its output goes into
 *     the stream's beam without ever blocking (the file bound keeps it
 *     small), and the session sends it as soon as the task returns.
 *   - Anything else - a CGI, a proxy, PHP, SSI, an unknown handler or
 *     filter - is handed off before its handler runs: the gate returns
 *     SUSPENDED, the c2 unwinds to Session, which submits the task to the
 *     workers; there inline_resume() runs the handler phase and the rest
 *     of the request exactly as ap_invoke_handler() and
 *     ap_process_async_request() would have. An error status whose
 *     ErrorDocument is configured (an internal redirect that may run any
 *     handler) is handed off the same way before ap_die().
 *
 * What c1 gives up meanwhile: it reads no frame while the request phases
 * run (tens of microseconds for a static file; an authentication module
 * that waits on a network service holds it that long). A quick handler
 * answers before any of this, so only mod_cache's may be registered
 * (it serves a cached entity of at most CacheMaxFileSize, or declines);
 * with any other module's, no request starts on c1.
 * `H2xInlineRequests off` turns all of it off (h2x_config.h).
 *
 * thread: inline_process_request() and inline_gate() on c1 (the task's
 *         on_c1); inline_resume() on the worker that took the task over.
 */
#ifndef H2X_C2_INLINE_H
#define H2X_C2_INLINE_H

#include <httpd.h>

namespace h2x {

class C2Task;

/* Where a worker takes over a request started on c1. */
enum class InlineResume {
    NONE,     /* not handed off */
    HANDLER,  /* before the handler (inline_gate() said SUSPENDED) */
    DIE,      /* before ap_die() for a status with an ErrorDocument */
};

/* Largest static file served on c1. */
constexpr apr_off_t INLINE_MAX_FILE = 64 * 1024;

/* False when no request may start on c1 in this child (a quick_handler
 * of another module than mod_cache is registered). */
bool inline_possible() noexcept;
/* c1: runs `r` (just created on the task's c2) as far as it may go on c1. */
void inline_process_request(C2Task *task, request_rec *r) noexcept;
/* Worker: goes on with the task's request from where c1 handed it off. */
void inline_resume(C2Task *task) noexcept;

void inline_register_hooks() noexcept;
void inline_child_init() noexcept;

} // namespace h2x

#endif
