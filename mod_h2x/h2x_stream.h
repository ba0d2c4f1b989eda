/* h2x_stream.h: one HTTP/2 stream as c1 sees it.
 *
 * Holds the stream's state (RFC 9113 §5.1 mirror), its end record, the
 * request, both beams and the c2 task. A Stream is destroyed only when
 * nghttp2 has closed it AND its c2 has reported done (or never started):
 * the worker borrows the beams until then.
 *
 * owner: the Session (std::unique_ptr in its stream map).
 * thread: c1 only (the beams and the task have their own rules).
 */
#ifndef H2X_STREAM_H
#define H2X_STREAM_H

#include <cstdint>
#include <memory>

#include "h2x_beam.h"
#include "h2x_c2.h"
#include "h2x_request.h"
#include "h2x_stream_state.h"

namespace h2x {

struct Stream {
    explicit Stream(std::int32_t stream_id) noexcept : id(stream_id) {}

    const std::int32_t id;
    StreamState state = StreamState::IDLE;  /* c1 */
    StreamEnd end = StreamEnd::NONE;         /* c1: written once */
    std::uint32_t end_code = 0;              /* c1: RST code, if any */
    Request request;                         /* c1 until scheduled, then read-only */
    Head request_trailers;                   /* c1: collected, then handed to `in` */
    std::size_t request_trailer_bytes = 0;   /* c1: their size, bounded like a head */
    std::unique_ptr<Beam> in;                /* request body; null without one */
    std::unique_ptr<Beam> out;               /* response */
    std::unique_ptr<C2Task> task;            /* c2 processing */
    bool scheduled = false;                  /* c1: task handed to the workers */
    bool c2_done = false;                    /* c1: the worker let go */
    bool closed = false;                     /* c1: nghttp2 closed the stream */
    bool response_submitted = false;         /* c1: final HEADERS submitted */
    bool head_held = false;                  /* c1: final head waits in held_head */
    Head held_head;                          /* c1: see Session::process_output() */
    bool deferred = false;                   /* c1: the data provider is paused */
    bool ws_out_shut = false;                /* c1: the WebSocket tunnel ended our output */
    bool rst_submitted = false;              /* c1: we asked for RST_STREAM */
    bool remote_ended = false;               /* c1: the client ended its side (END_STREAM or RST_STREAM) */
    std::uint64_t in_received = 0;           /* c1: request bytes put into `in` */
    std::uint64_t in_consumed = 0;           /* c1: request bytes given back to flow control */
    std::int32_t in_window = 0;              /* c1: the request body's stream window */
    apr_time_t blocked_since = 0;            /* c1: output waits on the client's window */
    apr_time_t stop_body_at = 0;             /* c1: response complete, body unread since */
    std::uint64_t blocked_sent = 0;          /* c1: bytes taken from `out` at blocked_since */
    apr_time_t hold_until = 0;               /* c1: a short DATA frame waits until then */

    /* Nothing borrows this stream any more. */
    bool can_destroy() const noexcept { return closed && (!scheduled || c2_done); }
};

} // namespace h2x

#endif
