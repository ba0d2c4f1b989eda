/* h2x_c2_filter.h: the filters of a c2 connection.
 *
 *  H2X_RESPONSE (request, AP_FTYPE_PROTOCOL): replaces httpd's HTTP/1
 *      header filter. Turns r->status and the response fields into a head
 *      bucket, drops the body of header-only responses, and puts
 *      r->trailers_out in a trailers bucket before the EOS.
 *  H2X_C2_NET_OUT (connection, AP_FTYPE_NETWORK): moves heads, body bytes,
 *      trailers and the EOS into the output beam; 1xx responses written as
 *      HTTP/1 text by ap_send_interim_response() become interim heads. It
 *      aborts the beam for an error bucket after the final head and for a
 *      body that misses its Content-Length.
 *  H2X_SOURCE (request): see h2x_c2_source.h.
 *  H2X_C2_NET_IN (connection, AP_FTYPE_NETWORK): the request body, read from
 *      the input beam, with the stream's IO timeout.
 *
 * thread: the c2 worker.
 */
#ifndef H2X_C2_FILTER_H
#define H2X_C2_FILTER_H

#include <httpd.h>

namespace h2x {

void c2_filter_register() noexcept;
/* Per child, after all modules registered their optional functions. */
void c2_filter_child_init() noexcept;
/* %I: the request's header block, which no input filter sees on c2. */
void c2_filter_count_request_head(conn_rec *c2, apr_off_t bytes) noexcept;
void c2_filter_setup_connection(conn_rec *c2) noexcept;
void c2_filter_setup_request(request_rec *r) noexcept;

} // namespace h2x

#endif
