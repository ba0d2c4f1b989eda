/* h2x_request.cpp: see h2x_request.h. */
#include "h2x_private.h"
#include "h2x_request.h"

#include <cstring>

namespace h2x {

void Request::add(const server_rec *s, const char *name, std::size_t nlen,
                  const char *value, std::size_t vlen) noexcept
{
    raw_bytes += nlen + vlen + 4;
    if (nlen && name[0] == ':') {
        std::string v(value, vlen);
        if (nlen == 7 && !std::memcmp(name, ":method", 7)) {
            method = std::move(v);
        }
        else if (nlen == 7 && !std::memcmp(name, ":scheme", 7)) {
            scheme = std::move(v);
        }
        else if (nlen == 10 && !std::memcmp(name, ":authority", 10)) {
            authority = std::move(v);
        }
        else if (nlen == 5 && !std::memcmp(name, ":path", 5)) {
            path = std::move(v);
        }
        else if (nlen == 9 && !std::memcmp(name, ":protocol", 9)) {
            protocol = std::move(v);
        }
        return;
    }
    bool crumb = nlen == 6 && !std::memcmp(name, "cookie", 6);
    /* LimitRequestFields / LimitRequestFieldSize: over HTTP/1.1 httpd
     * answers both with 400 (protocol.c, ap_get_mime_headers_core). Cookie
     * crumbs become one field (below), so they count once. */
    if (!crumb || !has_cookie) {
        ++field_count_;
    }
    if (s->limit_req_fields && field_count_ > s->limit_req_fields) {
        fail_status = HTTP_BAD_REQUEST;
        return;
    }
    std::size_t field_size = crumb && has_cookie ? 8 + cookie.size() + 2 + vlen : nlen + 2 + vlen;
    if (s->limit_req_fieldsize && field_size > static_cast<std::size_t>(s->limit_req_fieldsize)) {
        fail_status = HTTP_BAD_REQUEST;
        return;
    }
    /* RFC 9113 §8.2.3: a client may split the cookie field into crumbs; they
     * are joined with "; " before passing to an HTTP/1.1 context. */
    if (crumb) {
        if (has_cookie) {
            cookie.append("; ");
        }
        cookie.append(value, vlen);
        has_cookie = true;
        return;
    }
    fields.emplace_back(std::string(name, nlen), std::string(value, vlen));
}

void Request::finish(const server_rec *s) noexcept
{
    if (has_cookie) {
        fields.emplace_back("cookie", std::move(cookie));
        cookie.clear();
    }
    /* LimitRequestLine: httpd answers an over-long request line with 414. */
    std::size_t line = method.size() + 1 + path.size() + sizeof(" HTTP/2.0") - 1;
    if (!fail_status && s->limit_req_line && line > static_cast<std::size_t>(s->limit_req_line)) {
        fail_status = HTTP_REQUEST_URI_TOO_LARGE;
    }
}

} // namespace h2x
