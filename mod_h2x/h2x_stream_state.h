/* h2x_stream_state.h: the RFC 9113 §5.1 stream state machine, pure.
 *
 * nghttp2 is the authority on the wire; mod_h2x mirrors its view here so
 * that every stream's life is explicit and visible in traces, and records
 * how the stream ended (the "end record", written once).
 *
 * thread: any (no state of its own).
 */
#ifndef H2X_STREAM_STATE_H
#define H2X_STREAM_STATE_H

#include <cstdint>

namespace h2x {

enum class StreamState {
    IDLE,
    RESERVED_LOCAL,
    RESERVED_REMOTE,
    OPEN,
    HALF_CLOSED_LOCAL,
    HALF_CLOSED_REMOTE,
    CLOSED,
};

enum class StreamEvent {
    RECV_HEADERS,    /* request HEADERS without END_STREAM */
    RECV_END_STREAM, /* END_STREAM received (HEADERS or DATA) */
    SEND_HEADERS,    /* response HEADERS without END_STREAM */
    SEND_END_STREAM, /* END_STREAM sent (HEADERS or DATA) */
    SEND_RST,
    RECV_RST,
};

enum class Verdict { ALLOWED, STREAM_ERROR, CONNECTION_ERROR, BUG };

struct Transition {
    StreamState next;
    Verdict verdict;
};

/* The one transition function. */
Transition transition(StreamState state, StreamEvent event) noexcept;

const char *state_name(StreamState state) noexcept;
const char *event_name(StreamEvent event) noexcept;

/* How a stream ended: set once, by the frame callbacks only. */
enum class StreamEnd {
    NONE,
    END_STREAM_SENT,
    RST_SENT,
    RST_RECEIVED,
    CONNECTION_GONE,
};
const char *end_name(StreamEnd end) noexcept;

} // namespace h2x

#endif
