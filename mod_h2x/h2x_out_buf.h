/* h2x_out_buf.h: the bytes a session has framed and not yet written.
 *
 * A growable byte buffer like std::string, with two differences that
 * matter on the output path:
 *   - grow() extends it by bytes that are not initialised: a DATA frame's
 *     payload is read (or pread from the response's file) straight into
 *     them, so a body is not first zero-filled and then overwritten, as
 *     std::string::resize() would do with every byte of it;
 *   - trim() gives the storage back when the buffer is empty and larger
 *     than asked: a connection that downloaded a big file and then sits
 *     idle does not keep its largest write buffer (up to Session::OUT_FLUSH
 *     and a frame) for as long as it stays open.
 *
 * Storage comes from malloc; growth doubles, starting at MIN_CAPACITY.
 *
 * owner: the Session (a member).
 * thread: c1 only.
 */
#ifndef H2X_OUT_BUF_H
#define H2X_OUT_BUF_H

#include <cstddef>
#include <cstdlib>
#include <cstring>

namespace h2x {

class OutBuf {
  public:
    OutBuf() noexcept = default;
    OutBuf(const OutBuf &) = delete;
    OutBuf &operator=(const OutBuf &) = delete;
    ~OutBuf() { std::free(buf_); }

    std::size_t size() const noexcept { return size_; }
    bool empty() const noexcept { return size_ == 0; }
    char *data() noexcept { return buf_; }
    const char *data() const noexcept { return buf_; }
    char &operator[](std::size_t i) noexcept { return buf_[i]; }

    /* Extends the buffer by `n` bytes and returns where they start; their
     * content is undefined until the caller writes them. */
    char *grow(std::size_t n) noexcept
    {
        ensure(size_ + n);
        char *at = buf_ + size_;
        size_ += n;
        return at;
    }
    void append(const char *p, std::size_t n) noexcept
    {
        if (n) {
            std::memcpy(grow(n), p, n);
        }
    }
    void push_back(char c) noexcept { *grow(1) = c; }
    void append_zeros(std::size_t n) noexcept
    {
        if (n) {
            std::memset(grow(n), 0, n);
        }
    }
    /* Inserts `n` bytes at offset `at` (at <= size()). */
    void insert(std::size_t at, const char *p, std::size_t n) noexcept
    {
        std::size_t tail = size_ - at;
        grow(n);
        std::memmove(buf_ + at + n, buf_ + at, tail);
        std::memcpy(buf_ + at, p, n);
    }
    /* Drops everything from offset `n` on (n <= size()). */
    void truncate(std::size_t n) noexcept { size_ = n; }
    void clear() noexcept { size_ = 0; }
    /* When empty, frees storage larger than `keep` bytes. */
    void trim(std::size_t keep) noexcept
    {
        if (size_ == 0 && cap_ > keep) {
            std::free(buf_);
            buf_ = nullptr;
            cap_ = 0;
        }
    }

    static constexpr std::size_t MIN_CAPACITY = 256;

  private:
    void ensure(std::size_t need) noexcept
    {
        if (need <= cap_) {
            return;
        }
        std::size_t cap = cap_ ? cap_ : MIN_CAPACITY;
        while (cap < need) {
            cap *= 2;
        }
        auto *p = static_cast<char *>(std::realloc(buf_, cap));
        if (!p) {
            /* As std::string would (no exceptions here): out of memory
             * is not survivable on this path. */
            std::abort();
        }
        buf_ = p;
        cap_ = cap;
    }

    char *buf_ = nullptr;
    std::size_t size_ = 0;
    std::size_t cap_ = 0;
};

} // namespace h2x

#endif
