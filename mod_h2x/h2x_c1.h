/* h2x_c1.h: the client connection (c1) hooks: deciding that a connection
 * speaks HTTP/2 (ALPN h2, h2c prior knowledge) and running its session.
 *
 * thread: the MPM's connection thread.
 */
#ifndef H2X_C1_H
#define H2X_C1_H

#include <httpd.h>

namespace h2x {

/* Runs an HTTP/2 session on c1 until it ends; `upgrade` is the HTTP/1.1
 * request that asked for h2c, or null. */
void c1_run(conn_rec *c, server_rec *s, const char *protocol, request_rec *upgrade) noexcept;

void c1_register_hooks() noexcept;

} // namespace h2x

#endif
