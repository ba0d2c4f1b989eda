/* h2x_request.cpp: see h2x_request.h. */
#include "h2x_private.h"
#include "h2x_request.h"

#include <cstring>
#include <strings.h>

#include <nghttp2/nghttp2.h>

namespace h2x {

void Request::fail(int status) noexcept
{
    if (!fail_status) {
        fail_status = status;
    }
    if (++failed_fields_ > MAX_FAILED_FIELDS && !reset_code) {
        reset_code = NGHTTP2_ENHANCE_YOUR_CALM;
    }
}

void Request::add(const server_rec *s, const char *name, std::size_t nlen,
                  const char *value, std::size_t vlen) noexcept
{
    raw_bytes += nlen + vlen + 4;
    /* nghttp2 lets leading and trailing SP/HTAB through (see Session::init);
     * httpd's HTTP/1.1 parser drops them. */
    while (vlen > 0 && (value[vlen - 1] == ' ' || value[vlen - 1] == '\t')) {
        --vlen;
    }
    while (vlen > 0 && (value[0] == ' ' || value[0] == '\t')) {
        ++value;
        --vlen;
    }
    if (nlen && name[0] == ':') {
        bool is_method = nlen == 7 && !std::memcmp(name, ":method", 7);
        if (s->limit_req_line > 0 && vlen > static_cast<std::size_t>(s->limit_req_line)) {
            /* LimitRequestLine, applied to each part of the request line. */
            if (is_method) {
                reset_code = NGHTTP2_PROTOCOL_ERROR;
            }
            fail(HTTP_REQUEST_URI_TOO_LARGE);
            return;
        }
        std::string v(value, vlen);
        if (is_method) {
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
    if (!crumb || !has_cookie) {
        ++field_count_;
    }
    if (s->limit_req_fields > 0 && field_count_ > s->limit_req_fields) {
        fail(HTTP_REQUEST_HEADER_FIELDS_TOO_LARGE);
        return;
    }
    std::size_t merged = crumb ? (has_cookie ? nlen + 2 + cookie.size() : 0)
                               : merged_len(name, nlen);
    std::size_t len = merged ? merged + 2 + vlen : nlen + 2 + vlen;
    if (s->limit_req_fieldsize > 0 && len > static_cast<std::size_t>(s->limit_req_fieldsize)) {
        fail(HTTP_REQUEST_HEADER_FIELDS_TOO_LARGE);
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
    if (fields.empty()) {
        fields.reserve(FEW_FIELDS);
    }
    fields.emplace_back(std::string(name, nlen), std::string(value, vlen));
    if (!merged_len_.empty()) {
        merged_len_[fields.back().first] = len;
    }
    else if (fields.size() == FEW_FIELDS) {
        /* From here on a look-up per field instead of a scan. */
        for (const auto &f : fields) {
            std::size_t &m = merged_len_[f.first];
            m = m ? m + 2 + f.second.size() : f.first.size() + 2 + f.second.size();
        }
    }
}

std::size_t Request::merged_len(const char *name, std::size_t nlen) const noexcept
{
    if (!merged_len_.empty()) {
        auto it = merged_len_.find(std::string(name, nlen));
        return it == merged_len_.end() ? 0 : it->second;
    }
    /* Few fields so far (most requests): scanning them is cheaper than
     * a map's allocations. */
    std::size_t merged = 0;
    for (const auto &f : fields) {
        if (f.first.size() == nlen && !std::memcmp(f.first.data(), name, nlen)) {
            merged = merged ? merged + 2 + f.second.size() : nlen + 2 + f.second.size();
        }
    }
    return merged;
}

void Request::finish() noexcept
{
    /* RFC 9113 §8.3.1: :scheme names the target URI's scheme; httpd serves
     * http and https URIs only (mod_http2 answers others with 400). */
    if (!fail_status && method != "CONNECT" && strcasecmp(scheme.c_str(), "http")
        && strcasecmp(scheme.c_str(), "https")) {
        fail_status = HTTP_BAD_REQUEST;
    }
    if (has_cookie) {
        fields.emplace_back("cookie", std::move(cookie));
        cookie.clear();
    }
}

} // namespace h2x
