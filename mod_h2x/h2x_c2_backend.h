/* h2x_c2_backend.h: the backend sockets a stream's request reads from, so
 * that c1 can end those reads when the stream ends early.
 *
 * A reverse proxy (mod_proxy_http, mod_proxy_wstunnel) reads its backend's
 * answer with blocking socket reads bounded only by ProxyTimeout/Timeout.
 * When the client resets the stream (or the connection goes), nothing the
 * worker will read next tells it so, and the backend request would run on
 * for up to that timeout (issue 10: "a client's reset frees the server's
 * work at once"). So every backend connection mod_proxy sets up a
 * response for (its create_req hook, once per response) is noted here with
 * a duplicate of its descriptor, and interrupt() shuts the socket down:
 * the proxy's read returns at once, the proxy gives up the request and
 * closes that backend connection (a socket that was shut down is never
 * reused: mod_proxy checks a pooled connection before it reuses it).
 * Before the shutdown c2's keepalives count drops to 0: mod_proxy_http
 * takes a failed read of the status line on a fresh backend connection of
 * a client connection with keep-alive requests for a broken backend
 * (HTTP_INTERNAL_SERVER_ERROR, and mod_proxy_balancer puts the member in
 * error for `retry` seconds); with 0 it answers 502, which a stream nobody
 * reads any more never sends, and the member stays in service, as when an
 * HTTP/1.1 client goes away (test_563_06b).
 *
 * The descriptors are our own dup()s, so a shutdown never hits a
 * descriptor number the proxy closed and something else reopened; they
 * are closed when the request ends (a cleanup of its pool) or with the
 * watch.
 *
 * owner: the C2Task (a member).
 * thread: add()/clear() on the task's worker, interrupt() on c1; all under
 *         lock_.
 */
#ifndef H2X_C2_BACKEND_H
#define H2X_C2_BACKEND_H

#include <mutex>
#include <vector>

#include <httpd.h>

namespace h2x {

class BackendWatch {
  public:
    BackendWatch() = default;
    ~BackendWatch();
    BackendWatch(const BackendWatch &) = delete;
    BackendWatch &operator=(const BackendWatch &) = delete;

    /* Worker: watch the socket behind descriptor `fd` (duplicated here),
     * which `c2`'s request reads its answer from. After interrupt() it is
     * shut down at once. */
    void add(int fd, conn_rec *c2) noexcept;
    /* Worker: the request is over; forget (and close) every duplicate. */
    void clear() noexcept;
    /* c1: the stream ended early; shut every watched socket down. */
    void interrupt() noexcept;

  private:
    std::mutex lock_;
    std::vector<int> fds_;    /* under lock_: our duplicates */
    conn_rec *c2_ = nullptr;  /* under lock_: the stream's connection */
    bool interrupted_ = false; /* under lock_ */
};

/* Registers the mod_proxy hook that feeds the watches. */
void c2_backend_register_hooks() noexcept;

} // namespace h2x

#endif
