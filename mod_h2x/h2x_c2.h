/* h2x_c2.h: a stream's secondary connection (c2) and its processing.
 *
 * A C2Task is queued on the workers when a request's header block is
 * complete. On a worker it builds a conn_rec that stands for the stream
 * (with a server-wide unique id, DESIGN.md invariant 7: mod_cgid keys its
 * CGI processes on it), runs httpd's connection and request machinery on
 * it, and when the request ends (its EOR bucket, or the c2 finishing)
 * end_output() gives the output beam its terminal state:
 *   - the EOS passed the c2 network filter: COMPLETE (already set);
 *   - the final response is header-only (204, 304, HEAD): COMPLETE;
 *   - anything else - the handler returned without EOS, e.g. a CGI that
 *     stalled past Timeout mid-body: ABORTED(INCOMPLETE), so c1 resets the
 *     stream (DESIGN.md invariant 2).
 *
 * owner: the c1 Stream (std::unique_ptr); the worker borrows it, with the
 *        stream's beams and request, while the task holds its Mplx ticket:
 *        from Mplx::c1_task_started() (before Workers::submit()) until
 *        release() gives it back in Mplx::c2_done(), the last thing run()
 *        and dropped() do (DESIGN.md invariant 9, see h2x_mplx.h).
 * thread: constructed on c1; run() on a worker; dropped() on whichever
 *         thread cancels it; the output-state fields below are c2-only.
 *         A lone stream's task may start on c1 instead (run_inline(),
 *         h2x_c2_inline.h): its c2 is then "c2-only" on c1 until it ends
 *         or is handed to a worker, never on two threads at once.
 */
#ifndef H2X_C2_H
#define H2X_C2_H

#include <cstdint>
#include <string>

#include <httpd.h>

#include "h2x_beam.h"
#include "h2x_c2_backend.h"
#include "h2x_c2_inline.h"
#include "h2x_request.h"
#include "h2x_workers.h"
#include "h2x_ws.h"

namespace h2x {

class Mplx;

class C2Task : public Task {
  public:
    C2Task(conn_rec *c1, server_rec *s, Mplx *mplx, std::int32_t stream_id,
           const Request *request, Beam *in, Beam *out) noexcept;

    /* Both end with release(): when they return, this task may be gone. */
    void run(apr_thread_t *thread) noexcept override;
    void dropped() noexcept override;
    /* c1, holding the task's ticket: runs the request on the c1 thread
     * (h2x_c2_inline.h). True when it is over and the ticket was given
     * back (release()); false when it stopped before a handler that may
     * block: the caller then submits it to the workers, whose run()
     * goes on from there. */
    bool run_inline(apr_thread_t *thread) noexcept;

    /* c1, read-only for c2 */
    conn_rec *const c1;
    server_rec *const server;
    Mplx *const mplx;
    const std::int32_t stream_id;
    const Request *const request;
    Beam *const in;   /* null when the request has no body */
    Beam *const out;
    /* The scoreboard slot the request counts on in server-status (c1's
     * sbh when the stream started: the MPM thread, or for the event loop
     * the one that last ran c1 - c1's own sbh may be gone by the time the
     * request is logged, e.g. when the loop closes the connection). */
    void *const score_sbh;

    /* Set on c1 before the task is shared: input bytes taken before c1 is
     * told (to re-open the flow-control window); <= half the window. */
    std::size_t consume_signal_at = 1;

    /* c2 only */
    conn_rec *c2 = nullptr;
    std::size_t consumed_unsignaled = 0; /* input taken since c1 was told */
    request_rec *r = nullptr;            /* while the request lives */
    apr_interval_time_t timeout = 0;     /* IO timeout for this stream */
    bool final_head = false;             /* the final response head passed */
    bool header_only = false;            /* ... and it has no body */
    bool eos = false;                    /* the EOS passed the network filter */
    bool body_checked = false;           /* LimitRequestBody looked at */
    apr_off_t body_limit = 0;            /* LimitRequestBody, 0: none */
    apr_off_t body_read = 0;             /* request body bytes handed out */
    apr_off_t content_length = -1;       /* from the final head, -1: none */
    apr_off_t body_bytes = 0;            /* body bytes after the final head */
    apr_off_t bytes_out = 0;             /* heads, body and frame headers (%O) */

    /* The backend sockets a proxy reads for this request (any thread). */
    BackendWatch backends;

    /* WebSockets (h2x_ws.h): set on c1 before the task is shared. */
    const bool websocket;                /* an extended CONNECT */
    WsWake ws_wake;                      /* input made pollable (when websocket) */
    /* c2 only */
    std::string ws_key;                  /* the Sec-WebSocket-Key we made up */
    std::string ws_accept;               /* ... and the answer it needs */
    bool ws_open = false;                /* the 200 passed: a byte pipe now */

    /* Inline start (h2x_c2_inline.h). `on_c1`: the c2 runs on the c1
     * thread (output sends never block; the handler gate may hand off).
     * `resume`: where a worker goes on after a hand-off. */
    bool on_c1 = false;
    InlineResume resume = InlineResume::NONE;
    int resume_status = 0;               /* InlineResume::DIE: the status */
    const char *resume_handler = nullptr; /* InlineResume::HANDLER: r->handler */

    /* The request is over (its EOR, or the c2 ended): give the output its
     * terminal state if it has none. Idempotent. */
    void end_output() noexcept;

  private:
    void process(apr_thread_t *thread) noexcept; /* the c2's whole life */
    void finish_c2() noexcept; /* end_output(), then the c2 pool goes */
    void release() noexcept; /* Mplx::c2_done(): the task's last touch */
};

/* Registers c2 hooks and filters. */
void c2_register_hooks() noexcept;
/* Per child: the dummy socket c2 connections carry. */
apr_status_t c2_child_init(apr_pool_t *pchild, server_rec *s) noexcept;

} // namespace h2x

#endif
