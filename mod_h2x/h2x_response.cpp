/* h2x_response.cpp: see h2x_response.h. */
#include "h2x_private.h"
#include "h2x_response.h"

#include <algorithm>
#include <cctype>
#include <cstring>

namespace h2x {

bool response_is_header_only(int status) noexcept
{
    return (status >= 100 && status < 200) || status == 204 || status == 304;
}

apr_off_t response_content_length(const Head &head) noexcept
{
    for (const auto &f : head.fields) {
        if (f.first == "content-length") {
            char *end = nullptr;
            apr_off_t len = 0;
            if (apr_strtoff(&len, f.second.c_str(), &end, 10) == APR_SUCCESS && end
                && *end == '\0' && len >= 0) {
                return len;
            }
            return -1;
        }
    }
    return -1;
}

namespace {

/* RFC 9113 §8.2.2: these must not appear in HTTP/2. */
bool is_connection_specific(const std::string &name) noexcept
{
    return name == "connection" || name == "keep-alive" || name == "proxy-connection"
           || name == "transfer-encoding" || name == "upgrade";
}

bool is_ows(char ch) noexcept
{
    return ch == ' ' || ch == '\t';
}

/* RFC 9110 §5.6.2 tchar. */
bool is_tchar(unsigned char ch) noexcept
{
    return std::isalnum(ch) || (ch && std::strchr("!#$%&'*+-.^_`|~", ch));
}

} // namespace

void response_fields_normalize(Head *head, int status) noexcept
{
    Fields &fields = head->fields;
    for (auto &f : fields) {
        std::transform(f.first.begin(), f.first.end(), f.first.begin(),
                       [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
        std::string &v = f.second;
        std::size_t end = v.size();
        while (end > 0 && is_ows(v[end - 1])) {
            --end;
        }
        std::size_t start = 0;
        while (start < end && is_ows(v[start])) {
            ++start;
        }
        if (start > 0 || end < v.size()) {
            v = v.substr(start, end - start);
        }
    }
    fields.erase(std::remove_if(fields.begin(), fields.end(),
                                [status](const std::pair<std::string, std::string> &f) {
                                    if (f.first.empty() || f.first[0] == ':'
                                        || is_connection_specific(f.first)) {
                                        return true;
                                    }
                                    if (status == 204 || status == 304
                                        || (status >= 100 && status < 200)) {
                                        return f.first == "content-length";
                                    }
                                    return false;
                                }),
                 fields.end());
}

const std::pair<std::string, std::string> *response_invalid_field(const Head &head) noexcept
{
    for (const auto &f : head.fields) {
        bool ok = !f.first.empty()
                  && std::all_of(f.first.begin(), f.first.end(),
                                 [](char ch) { return is_tchar(static_cast<unsigned char>(ch)); })
                  && std::none_of(f.second.begin(), f.second.end(), [](char ch) {
                         auto c = static_cast<unsigned char>(ch);
                         return (c < 0x20 && c != '\t') || c == 0x7f;
                     });
        if (!ok) {
            return &f;
        }
    }
    return nullptr;
}

void response_to_nv(const Head &head, bool trailers, char status_buf[4],
                    std::vector<nghttp2_nv> *nva) noexcept
{
    nva->clear();
    nva->reserve(head.fields.size() + 1);
    if (!trailers) {
        int st = head.status;
        if (st < 100 || st > 999) {
            st = 500;
        }
        status_buf[0] = static_cast<char>('0' + st / 100);
        status_buf[1] = static_cast<char>('0' + (st / 10) % 10);
        status_buf[2] = static_cast<char>('0' + st % 10);
        status_buf[3] = '\0';
        nva->push_back(nghttp2_nv{reinterpret_cast<uint8_t *>(const_cast<char *>(":status")),
                                  reinterpret_cast<uint8_t *>(status_buf), 7, 3,
                                  NGHTTP2_NV_FLAG_NONE});
    }
    for (const auto &f : head.fields) {
        nva->push_back(nghttp2_nv{
            reinterpret_cast<uint8_t *>(const_cast<char *>(f.first.data())),
            reinterpret_cast<uint8_t *>(const_cast<char *>(f.second.data())), f.first.size(),
            f.second.size(), NGHTTP2_NV_FLAG_NONE});
    }
}

} // namespace h2x
