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
 *         the request's thread; all under the registry lock.
 */
#ifndef H2X_STATUS_H
#define H2X_STATUS_H

#include <cstdint>
#include <map>
#include <string>

#include <httpd.h>

namespace h2x {

struct SessionStatus {
    long conn_id = 0;
    std::string client;
    std::string protocol;
    std::uint64_t streams_total = 0;
    std::map<std::int32_t, std::string> streams; /* id -> "GET /path [state]" */
};

class StatusEntry {
  public:
    StatusEntry(conn_rec *c1, const char *protocol) noexcept;
    ~StatusEntry();
    void stream_started(std::int32_t id, const std::string &what) noexcept;
    void stream_update(std::int32_t id, const char *state) noexcept;
    void stream_ended(std::int32_t id) noexcept;

  private:
    SessionStatus status_;
};

void status_register_hooks() noexcept;

} // namespace h2x

#endif
