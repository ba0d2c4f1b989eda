/* h2x_conn_ctx.h: mod_h2x's per-connection record, in conn_config.
 *
 * On c1 it says which protocol was chosen (h2 / h2c) and holds the running
 * Session; on c2 it points to the stream's C2Task.
 *
 * owner: the connection's pool (apr_pcalloc; trivially destructible).
 * thread: c1 fields on the c1 thread; c2 fields on the c2's worker.
 */
#ifndef H2X_CONN_CTX_H
#define H2X_CONN_CTX_H

#include <httpd.h>
#include <http_config.h>

namespace h2x {

class Session;
class C2Task;

struct ConnCtx {
    const char *protocol; /* c1: "h2" or "h2c" once switched, else null */
    server_rec *server;   /* c1: the server the protocol was chosen for */
    Session *session;     /* c1: while the HTTP/2 session lives */
    bool in_run;          /* c1: a thread is inside session->run() */
    C2Task *task;         /* c2: the stream this secondary connection runs */
    void *loop_entry;     /* c1: its place in the event loop (h2x_conn_loop.h) */
};

ConnCtx *conn_ctx(const conn_rec *c) noexcept;
ConnCtx *conn_ctx_ensure(conn_rec *c) noexcept;

/* True when `c` (a c1 or c2) carries HTTP/2. */
bool conn_is_h2(const conn_rec *c) noexcept;

} // namespace h2x

#endif
