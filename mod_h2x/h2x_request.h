/* h2x_request.h: an HTTP/2 request header block, collected and checked.
 *
 * nghttp2 already enforces RFC 9113 §8.2-8.3 on the wire (lowercase names,
 * no connection-specific fields, pseudo-header placement and duplicates)
 * and resets offending streams with PROTOCOL_ERROR. This adds httpd's own
 * limits (LimitRequestFields, LimitRequestFieldSize, LimitRequestLine),
 * which answer with the status httpd gives over HTTP/1.1, and the cookie
 * join of RFC 9113 §8.2.3.
 *
 * owner: the c1 Stream (by value). Immutable once the header block ended;
 *        c2 then reads it without a lock.
 */
#ifndef H2X_REQUEST_H
#define H2X_REQUEST_H

#include <cstddef>
#include <string>

#include <httpd.h>

#include "h2x_beam.h"

namespace h2x {

struct Request {
    std::string method;
    std::string scheme;
    std::string authority;
    std::string path;
    std::string protocol;   /* :protocol (extended CONNECT) */
    Fields fields;          /* regular fields, names lowercase */
    std::string cookie;     /* all cookie crumbs, joined */
    bool has_cookie = false;
    bool end_stream = false;     /* END_STREAM on the HEADERS: no body */
    std::size_t raw_bytes = 0;   /* header bytes, for %I */
    int fail_status = 0;         /* 4xx to answer instead of processing */
    apr_time_t request_time = 0;

    /* Adds one field as nghttp2 delivered it; enforces httpd's limits
     * against `s`. */
    void add(const server_rec *s, const char *name, std::size_t nlen,
             const char *value, std::size_t vlen) noexcept;
    /* The header block ended: joins cookies, checks LimitRequestLine. */
    void finish(const server_rec *s) noexcept;

  private:
    int field_count_ = 0;
};

} // namespace h2x

#endif
