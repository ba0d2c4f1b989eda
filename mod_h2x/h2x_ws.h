/* h2x_ws.h: WebSockets over HTTP/2 (RFC 8441, extended CONNECT).
 *
 * With H2WebSockets on, the SETTINGS frame carries
 * SETTINGS_ENABLE_CONNECT_PROTOCOL=1 and a client may open a WebSocket as
 * a stream: CONNECT with `:protocol websocket`, `:scheme`, `:path` and
 * `:authority`. httpd's WebSocket code (mod_proxy_http with
 * upgrade=websocket, mod_proxy_wstunnel) knows the HTTP/1.1 handshake
 * only (RFC 6455 §4), so the stream's request runs as that handshake:
 *   - ws_prepare_request(): GET with Upgrade: websocket, Connection:
 *     Upgrade and a fresh Sec-WebSocket-Key; other :protocol values, or
 *     H2WebSockets off in the request's virtual host, get 501 (as
 *     mod_http2 answers them);
 *   - ws_response_head(): the handler's 101 with the Sec-WebSocket-Accept
 *     that matches our key becomes the stream's 200 (RFC 8441 §5); a 101
 *     without it, or a 2xx (a resource that is no WebSocket), becomes 502
 *     without a body; 3xx, 4xx and 5xx pass unchanged;
 *   - after the 200 the stream is a byte pipe both ways: the handler's
 *     tunnel (ap_proxy_tunnel_run) polls one end of the WsWake socket
 *     pair, given
 *     out by the get_pollfd_from_conn hook (and mod_http2's optional
 *     function http2_get_pollfd_from_conn); c1 writes a byte to it each
 *     time the input beam changes (data, end, abort), the c2 input filter
 *     drains it before it looks at the beam, so a wake-up is never lost.
 *     The end of the client's data (END_STREAM) reads as APR_EOF, as a
 *     closed socket does.
 *
 * owner: WsWake is a member of its C2Task (the c1 Stream owns both);
 *        its descriptors live exactly as long as the task, so c1's writes
 *        never hit a closed or reused descriptor.
 * thread: WsWake::wake() on c1 (or whichever side aborts the input beam);
 *         drain() and everything else on the task's worker.
 */
#ifndef H2X_WS_H
#define H2X_WS_H

#include <string>

#include <httpd.h>

#include "h2x_beam.h"
#include "h2x_request.h"

namespace h2x {

class C2Task;

/* The socket pair that makes a stream's input pollable. */
class WsWake {
  public:
    WsWake() noexcept = default;
    WsWake(const WsWake &) = delete;
    WsWake &operator=(const WsWake &) = delete;
    ~WsWake() noexcept;

    bool open() noexcept;           /* a socket pair, non-blocking, close-on-exec */
    bool is_open() const noexcept { return fds_[0] >= 0; }
    int read_fd() const noexcept { return fds_[0]; }
    void wake() noexcept;           /* one byte; a full buffer is awake already */
    void drain() noexcept;          /* read every byte there is */
    /* c1: did the reader's side shut down for writing? mod_proxy's tunnel
     * does that to its client socket when the backend is done. */
    bool peer_shut() const noexcept;

  private:
    int fds_[2] = {-1, -1};
};

/* Is this request an extended CONNECT (RFC 8441 §4)? */
bool ws_is_extended_connect(const Request &req) noexcept;

/* Turns r, built from an extended CONNECT, into the HTTP/1.1 WebSocket
 * handshake. Returns OK, or the status to answer with (501). */
int ws_prepare_request(request_rec *r, C2Task *task) noexcept;

/* A response head (final or interim) of a WebSocket stream, before it
 * goes into the beam. Returns true if `head` is to be sent as the final
 * response; sets *upgraded when it opened the tunnel (200 from a valid
 * 101) and *no_body when it replaced the response by a body-less 502. */
bool ws_response_head(C2Task *task, Head *head, bool *upgraded, bool *no_body) noexcept;

void ws_register_hooks() noexcept;
/* mod_http2's http2_get_pollfd_from_conn; only when mod_h2x is active. */
void ws_register_optional_fns() noexcept;

} // namespace h2x

#endif
