/* h2x_stream_state.cpp: see h2x_stream_state.h. */
#include "h2x_stream_state.h"

namespace h2x {

Transition transition(StreamState state, StreamEvent event) noexcept
{
    using S = StreamState;
    using E = StreamEvent;
    switch (event) {
    case E::SEND_RST:
    case E::RECV_RST:
        /* RFC 9113 §5.1: either endpoint can send RST_STREAM in any state
         * but idle; it closes the stream. */
        if (state == S::IDLE) {
            return {state, Verdict::CONNECTION_ERROR};
        }
        return {S::CLOSED, Verdict::ALLOWED};
    case E::RECV_HEADERS:
        /* RFC 9113 §5.1: receiving HEADERS opens an idle stream; later
         * HEADERS (trailers) keep it where it is. */
        switch (state) {
        case S::IDLE: return {S::OPEN, Verdict::ALLOWED};
        case S::OPEN:
        case S::HALF_CLOSED_LOCAL: return {state, Verdict::ALLOWED};
        case S::HALF_CLOSED_REMOTE:
        case S::CLOSED: return {state, Verdict::STREAM_ERROR}; /* STREAM_CLOSED */
        case S::RESERVED_LOCAL:
        case S::RESERVED_REMOTE: return {state, Verdict::CONNECTION_ERROR};
        }
        break;
    case E::RECV_END_STREAM:
        /* RFC 9113 §5.1: END_STREAM from the peer half-closes (remote). */
        switch (state) {
        case S::IDLE:
        case S::OPEN: return {S::HALF_CLOSED_REMOTE, Verdict::ALLOWED};
        case S::HALF_CLOSED_LOCAL: return {S::CLOSED, Verdict::ALLOWED};
        case S::HALF_CLOSED_REMOTE:
        case S::CLOSED: return {state, Verdict::STREAM_ERROR}; /* STREAM_CLOSED */
        case S::RESERVED_LOCAL:
        case S::RESERVED_REMOTE: return {state, Verdict::CONNECTION_ERROR};
        }
        break;
    case E::SEND_HEADERS:
        switch (state) {
        case S::OPEN:
        case S::HALF_CLOSED_REMOTE: return {state, Verdict::ALLOWED};
        case S::RESERVED_LOCAL: return {S::HALF_CLOSED_REMOTE, Verdict::ALLOWED};
        case S::IDLE:
        case S::RESERVED_REMOTE:
        case S::HALF_CLOSED_LOCAL:
        case S::CLOSED: return {state, Verdict::BUG};
        }
        break;
    case E::SEND_END_STREAM:
        /* RFC 9113 §5.1: our END_STREAM half-closes (local). */
        switch (state) {
        case S::OPEN: return {S::HALF_CLOSED_LOCAL, Verdict::ALLOWED};
        case S::HALF_CLOSED_REMOTE: return {S::CLOSED, Verdict::ALLOWED};
        case S::IDLE:
        case S::RESERVED_LOCAL:
        case S::RESERVED_REMOTE:
        case S::HALF_CLOSED_LOCAL:
        case S::CLOSED: return {state, Verdict::BUG};
        }
        break;
    }
    return {state, Verdict::BUG};
}

const char *state_name(StreamState state) noexcept
{
    switch (state) {
    case StreamState::IDLE: return "IDLE";
    case StreamState::RESERVED_LOCAL: return "RESERVED_LOCAL";
    case StreamState::RESERVED_REMOTE: return "RESERVED_REMOTE";
    case StreamState::OPEN: return "OPEN";
    case StreamState::HALF_CLOSED_LOCAL: return "HALF_CLOSED_LOCAL";
    case StreamState::HALF_CLOSED_REMOTE: return "HALF_CLOSED_REMOTE";
    case StreamState::CLOSED: return "CLOSED";
    }
    return "?";
}

const char *event_name(StreamEvent event) noexcept
{
    switch (event) {
    case StreamEvent::RECV_HEADERS: return "RECV_HEADERS";
    case StreamEvent::RECV_END_STREAM: return "RECV_END_STREAM";
    case StreamEvent::SEND_HEADERS: return "SEND_HEADERS";
    case StreamEvent::SEND_END_STREAM: return "SEND_END_STREAM";
    case StreamEvent::SEND_RST: return "SEND_RST";
    case StreamEvent::RECV_RST: return "RECV_RST";
    }
    return "?";
}

const char *end_name(StreamEnd end) noexcept
{
    switch (end) {
    case StreamEnd::NONE: return "NONE";
    case StreamEnd::END_STREAM_SENT: return "END_STREAM_SENT";
    case StreamEnd::RST_SENT: return "RST_SENT";
    case StreamEnd::RST_RECEIVED: return "RST_RECEIVED";
    case StreamEnd::CONNECTION_GONE: return "CONNECTION_GONE";
    }
    return "?";
}

} // namespace h2x
