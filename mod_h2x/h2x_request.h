/* h2x_request.h: an HTTP/2 request header block, collected and checked.
 *
 * nghttp2 already enforces RFC 9113 §8.2-8.3 on the wire (lowercase names,
 * no connection-specific fields, pseudo-header placement and duplicates)
 * and resets offending streams with PROTOCOL_ERROR. This adds httpd's own
 * limits, answered as mod_http2 answers them:
 *   - a pseudo-header value longer than LimitRequestLine: 414, except
 *     :method, which resets the stream (PROTOCOL_ERROR);
 *   - more than LimitRequestFields fields (each repetition counts, cookie
 *     crumbs count once): 431;
 *   - a field longer than LimitRequestFieldSize as httpd would see it,
 *     "name: value" with repeated fields merged by ", " (cookies by "; "):
 *     431;
 *   - more than MAX_FAILED_FIELDS fields refused: the client is not
 *     sending a request worth an answer, the stream is reset
 *     (ENHANCE_YOUR_CALM).
 * Leading and trailing SP/HTAB of values are stripped as httpd does over
 * HTTP/1.1; cookie crumbs are joined (RFC 9113 §8.2.3).
 *
 * owner: the c1 Stream (by value). Immutable once the header block ended;
 *        c2 then reads it without a lock.
 */
#ifndef H2X_REQUEST_H
#define H2X_REQUEST_H

#include <cstddef>
#include <cstdint>
#include <string>
#include <unordered_map>

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
    std::uint32_t reset_code = 0; /* non-zero: reset the stream, no answer */
    apr_time_t request_time = 0;

    /* Adds one field as nghttp2 delivered it; enforces httpd's limits
     * against `s`. */
    void add(const server_rec *s, const char *name, std::size_t nlen,
             const char *value, std::size_t vlen) noexcept;
    /* The header block ended: joins cookies. */
    void finish() noexcept;

    static constexpr int MAX_FAILED_FIELDS = 100;

  private:
    void fail(int status) noexcept;
    /* Length of "name: value[, value...]" of the fields named `name` so
     * far (0: none), as httpd would merge repeated fields. */
    std::size_t merged_len(const char *name, std::size_t nlen) const noexcept;

    /* Up to this many fields merged_len() scans `fields`; from then on
     * merged_len_ keeps the lengths. */
    static constexpr std::size_t FEW_FIELDS = 16;

    int field_count_ = 0;
    int failed_fields_ = 0;
    /* merged_len() per field name, once there are FEW_FIELDS fields. */
    std::unordered_map<std::string, std::size_t> merged_len_;
};

} // namespace h2x

#endif
