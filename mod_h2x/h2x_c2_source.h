/* h2x_c2_source.h: reading a handler's live sources (a CGI's pipe, a
 * mod_cgid socket, mod_cgi's "CGI" bucket) without staying blocked after
 * the client reset the stream.
 *
 * A blocking read of such a bucket waits up to the source's own timeout
 * (Timeout, or CGIDScriptTimeout) and nothing can wake it early: a CGI that
 * writes once and then stays silent held its worker and stayed alive until
 * then, whatever the client did (issue 10). Here every wait for a source
 * polls it in slices of at most 100 ms and looks at the stream's output
 * beam between them: once it is ABORTED (client RST_STREAM, connection
 * gone, IO timeout) the read fails with APR_ECONNABORTED, the handler
 * ends, and its request pool's cleanup ends the CGI.
 *
 *  H2X_SOURCE (request, AP_FTYPE_PROTOCOL - 1: right above httpd's
 *      CONTENT_LENGTH filter, which would otherwise do the blocking read
 *      itself): reads such buckets without blocking; whatever is already
 *      there goes on in the same brigade (so a short body still gets its
 *      Content-Length), and before waiting it passes on what it has with a
 *      FLUSH, as CONTENT_LENGTH does.
 *
 * thread: the c2 worker.
 */
#ifndef H2X_C2_SOURCE_H
#define H2X_C2_SOURCE_H

#include <apr_buckets.h>
#include <httpd.h>

namespace h2x {

class C2Task;

/* Waits until `b`'s source has something to read (data, its end, an
 * error), the task's output was aborted (APR_ECONNABORTED), or the
 * source's own timeout passed (APR_TIMEUP). APR_SUCCESS for buckets of
 * other types: the caller's blocking read does the waiting. */
apr_status_t source_wait_readable(C2Task *task, apr_bucket *b) noexcept;

void c2_source_register() noexcept;
void c2_source_setup_request(request_rec *r) noexcept;

} // namespace h2x

#endif
