/* h2x_status.h: mod_h2x's part of mod_status's server-status page.
 *
 * Each process keeps a registry of its running HTTP/2 sessions. A session
 * publishes a small summary (protocol, client, streams and what each is
 * doing) that the status handler reads under the registry's lock; the
 * worker pool's threads are listed with it (busy, idle, queued).
 *
 * owner: the registry is process-wide; each SessionStatus belongs to its
 *        Session.
 * thread: sessions update from their c1 thread, server-status reads from
 *         the request's thread. The registry lock guards the set of
 *         sessions (a session leaves it before it is freed); each
 *         session's own lock guards its content, so that sessions on
 *         different threads do not contend for one lock per request.
 */
#ifndef H2X_STATUS_H
#define H2X_STATUS_H

#include <cstdint>
#include <map>
#include <mutex>
#include <string>

#include <httpd.h>

namespace h2x {

struct SessionStatus {
    long conn_id = 0;
    std::string client;
    std::string protocol;
    std::mutex lock;                    /* guards what follows */
    std::uint64_t streams_total = 0;
    struct StreamStatus {
        std::string what;               /* "GET /path" */
        const char *state;              /* a static string: "processing", ... */
    };
    std::map<std::int32_t, StreamStatus> streams;
};

class StatusEntry {
  public:
    StatusEntry(conn_rec *c1, const char *protocol) noexcept;
    ~StatusEntry();
    void stream_started(std::int32_t id, const std::string &method,
                        const std::string &path) noexcept;
    /* `state`: a string literal (kept by pointer). */
    void stream_update(std::int32_t id, const char *state) noexcept;
    void stream_ended(std::int32_t id) noexcept;

  private:
    SessionStatus status_;
};

void status_register_hooks() noexcept;

} // namespace h2x

#endif
