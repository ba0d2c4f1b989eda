/* h2x_frame_gate.cpp: see h2x_frame_gate.h. */
#include "h2x_frame_gate.h"

#include <algorithm>
#include <cstdio>
#include <cstring>

#include <nghttp2/nghttp2.h>

namespace h2x {

std::uint32_t FrameGate::check(const std::uint8_t *hd, std::uint32_t max_frame) noexcept
{
    std::uint32_t length = (std::uint32_t{hd[0]} << 16) | (std::uint32_t{hd[1]} << 8) | hd[2];
    std::uint8_t type = hd[3];
    std::uint8_t flags = hd[4];
    if (length > max_frame) {
        /* §4.2: nghttp2 misses it for CONTINUATION. */
        return NGHTTP2_FRAME_SIZE_ERROR;
    }
    /* §6.1, §6.2: Pad Length (1 byte), and for HEADERS with PRIORITY the
     * stream dependency and weight (5 bytes), must fit. */
    std::uint32_t need = 0;
    if (type == NGHTTP2_DATA || type == NGHTTP2_HEADERS) {
        if (flags & NGHTTP2_FLAG_PADDED) {
            need += 1;
        }
        if (type == NGHTTP2_HEADERS && (flags & NGHTTP2_FLAG_PRIORITY)) {
            need += 5;
        }
    }
    return length < need ? NGHTTP2_FRAME_SIZE_ERROR : 0;
}

std::size_t FrameGate::pass(const std::uint8_t *data, std::size_t len, std::uint32_t max_frame,
                            std::uint32_t *error) noexcept
{
    std::size_t pos = 0;
    while (pos < len) {
        switch (where_) {
        case Where::STOPPED:
            return pos;
        case Where::PREFACE:
        case Where::PAYLOAD: {
            std::size_t n = std::min(left_, len - pos);
            pos += n;
            left_ -= n;
            if (!left_) {
                where_ = Where::HEADER;
                left_ = HEADER_LEN;
            }
            break;
        }
        case Where::HEADER: {
            std::size_t n = std::min(left_, len - pos);
            std::memcpy(hd_ + (HEADER_LEN - left_), data + pos, n);
            left_ -= n;
            if (left_) {
                pos += n;
                break;
            }
            std::uint32_t code = check(hd_, max_frame);
            if (code) {
                /* Stop in front of this frame: nghttp2 gets the bytes of
                 * its header that came in earlier calls, not the rest. */
                where_ = Where::STOPPED;
                max_frame_ = max_frame;
                *error = code;
                return pos;
            }
            pos += n;
            left_ = (std::size_t{hd_[0]} << 16) | (std::size_t{hd_[1]} << 8) | hd_[2];
            where_ = left_ ? Where::PAYLOAD : Where::HEADER;
            if (!left_) {
                left_ = HEADER_LEN;
            }
            break;
        }
        }
    }
    return pos;
}

std::string FrameGate::describe_stop() const
{
    static const char *const names[] = {"DATA", "HEADERS", "PRIORITY", "RST_STREAM", "SETTINGS",
                                        "PUSH_PROMISE", "PING", "GOAWAY", "WINDOW_UPDATE",
                                        "CONTINUATION"};
    char type[16];
    if (hd_[3] < sizeof(names) / sizeof(names[0])) {
        std::snprintf(type, sizeof(type), "%s", names[hd_[3]]);
    }
    else {
        std::snprintf(type, sizeof(type), "type 0x%02x", hd_[3]);
    }
    unsigned length = (unsigned{hd_[0]} << 16) | (unsigned{hd_[1]} << 8) | hd_[2];
    unsigned stream = ((unsigned{hd_[5]} & 0x7f) << 24) | (unsigned{hd_[6]} << 16)
                      | (unsigned{hd_[7]} << 8) | hd_[8];
    char buf[160];
    std::snprintf(buf, sizeof(buf), "%s frame of %u bytes (flags 0x%02x) on stream %u, "
                  "SETTINGS_MAX_FRAME_SIZE %u", type, length, hd_[4], stream,
                  static_cast<unsigned>(max_frame_));
    return buf;
}

} // namespace h2x
