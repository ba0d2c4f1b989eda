/* h2x_frame_gate.h: the client's frame headers, checked before nghttp2
 * parses the frames, for what libnghttp2 (1.52, Debian bookworm) lets
 * through or answers with another error code than RFC 9113 asks for.
 *
 * RFC 9113 §4.2: a frame larger than our SETTINGS_MAX_FRAME_SIZE, or too
 * small for the fields its type and flags require, is a FRAME_SIZE_ERROR;
 * one that carries a field block (HEADERS, CONTINUATION, PUSH_PROMISE) is
 * a connection error. nghttp2 checks the length of HEADERS but not of a
 * CONTINUATION frame (it took a 16.5 KB CONTINUATION and answered the
 * request), and answers a PADDED DATA or HEADERS frame too short for its
 * Pad Length field with PROTOCOL_ERROR. The gate sees every frame header
 * as the bytes go to nghttp2 and stops the stream of bytes in front of a
 * frame that breaks one of these rules; the session then ends the
 * connection with GOAWAY(FRAME_SIZE_ERROR). Every other check stays
 * nghttp2's.
 *
 * owner: Session (a member). thread: c1.
 */
#ifndef H2X_FRAME_GATE_H
#define H2X_FRAME_GATE_H

#include <cstddef>
#include <cstdint>
#include <string>

namespace h2x {

class FrameGate {
  public:
    /* Returns how many of the `len` next bytes of the client may go to
     * nghttp2: all of them, or those in front of the first frame that
     * breaks a rule; then *error is the RFC 9113 error code and the gate
     * passes nothing more. `max_frame` is our SETTINGS_MAX_FRAME_SIZE. */
    std::size_t pass(const std::uint8_t *data, std::size_t len, std::uint32_t max_frame,
                     std::uint32_t *error) noexcept;

    /* For the log: the frame the gate stopped in front of. */
    std::string describe_stop() const;

  private:
    /* Where the client's bytes are: in the 24-byte connection preface
     * (RFC 9113 §3.4), in a frame header, or in a frame's payload. */
    enum class Where { PREFACE, HEADER, PAYLOAD, STOPPED };

    static constexpr std::size_t PREFACE_LEN = 24;
    static constexpr std::size_t HEADER_LEN = 9;

    /* The error code for a frame with this header, 0 if it may pass. */
    static std::uint32_t check(const std::uint8_t *hd, std::uint32_t max_frame) noexcept;

    Where where_ = Where::PREFACE;
    std::size_t left_ = PREFACE_LEN;  /* bytes left of the preface, header or payload */
    std::uint8_t hd_[HEADER_LEN] = {};
    std::uint32_t max_frame_ = 0;     /* the limit when the gate stopped */
};

} // namespace h2x

#endif
