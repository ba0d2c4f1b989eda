/* h2x_response.h: response heads and trailers for HTTP/2.
 *
 * The header-only rule (RFC 9110 §6.4.1, §15.3.5, §15.4.5): 1xx, 204 and
 * 304 responses - and any response to HEAD - carry no content, so their
 * HEADERS frame carries END_STREAM. Field names are lowercased and the
 * connection-specific fields RFC 9113 §8.2.2 forbids are removed.
 *
 * thread: any (pure functions).
 */
#ifndef H2X_RESPONSE_H
#define H2X_RESPONSE_H

#include <vector>

#include <apr.h>
#include <nghttp2/nghttp2.h>

#include "h2x_beam.h"

namespace h2x {

/* 1xx, 204 and 304 never have content. */
bool response_is_header_only(int status) noexcept;

/* The Content-Length field's value, or -1. */
apr_off_t response_content_length(const Head &head) noexcept;

/* Lowercases names, strips leading and trailing SP/HTAB from values
 * (RFC 9113 §8.2.1 forbids them, RFC 9110 §5.5 makes them insignificant),
 * drops connection-specific fields, and for 1xx, 204 and 304 the
 * Content-Length. `status` 0: trailers. */
void response_fields_normalize(Head *head, int status) noexcept;

/* The first field whose name is not a token or whose value holds a
 * control character other than HTAB (RFC 9110 §5.1, §5.5), or null: such
 * a response is never sent. */
const std::pair<std::string, std::string> *response_invalid_field(const Head &head) noexcept;

/* nghttp2 name/value pairs pointing into `head` (which must outlive them);
 * with ":status" first unless `trailers`. `status_buf` holds the digits. */
void response_to_nv(const Head &head, bool trailers, char status_buf[4],
                    std::vector<nghttp2_nv> *nva) noexcept;

} // namespace h2x

#endif
