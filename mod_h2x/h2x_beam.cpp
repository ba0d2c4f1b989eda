/* h2x_beam.cpp: see h2x_beam.h. */
#include "h2x_private.h"
#include "h2x_beam.h"

#include <algorithm>
#include <chrono>
#include <cerrno>
#include <cstring>

#include <unistd.h>

namespace h2x {

const char *abort_reason_name(AbortReason reason) noexcept
{
    switch (reason) {
    case AbortReason::NONE: return "none";
    case AbortReason::INCOMPLETE: return "response incomplete: handler ended without EOS";
    case AbortReason::HANDLER_ERROR: return "handler error after response start";
    case AbortReason::LENGTH: return "body length does not match Content-Length";
    case AbortReason::TIMEOUT: return "IO timeout";
    case AbortReason::PEER_RESET: return "reset by peer";
    case AbortReason::CONN_GONE: return "connection gone";
    case AbortReason::HTTP11_REQUIRED: return "needs HTTP/1.1 (TLS renegotiation)";
    }
    return "?";
}

FileRef::~FileRef()
{
    if (fd_ >= 0) {
        ::close(fd_);
    }
}

namespace {

/* pread until `len` bytes are in; false on an error or an early end of file. */
bool pread_all(int fd, char *buf, std::size_t len, std::uint64_t offset) noexcept
{
    std::size_t done = 0;
    while (done < len) {
        ssize_t n = ::pread(fd, buf + done, len - done, static_cast<off_t>(offset + done));
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return false;
        }
        done += static_cast<std::size_t>(n);
    }
    return true;
}

} // namespace

Beam::Beam(const char *tag, std::size_t max_buffer) noexcept
    : tag_(tag), max_buffer_(max_buffer ? max_buffer : 1)
{
}

void Beam::grow(std::size_t max_buffer) noexcept
{
    std::lock_guard<std::mutex> lock(lock_);
    max_buffer_ = std::max(max_buffer_, max_buffer);
}

/* Wake the other side: threads waiting on cond_ and, after unlocking, the
 * notifier (which must not take lock_). */
void Beam::signal(std::unique_lock<std::mutex> &lock) noexcept
{
    cond_.notify_all();
    lock.unlock();
    if (notify_) {
        notify_();
    }
}

void Beam::set_end(BeamEnd end, AbortReason reason) noexcept
{
    if (end_ != BeamEnd::OPEN) {
        /* The terminal state is written once; the sender ending twice is a
         * logic error (abort() of an ended beam never gets here). */
        ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, nullptr, H2XLOGNO(10002)
                     "beam %s: BUG: ending twice (%d then %d)", tag_,
                     static_cast<int>(end_), static_cast<int>(end));
        H2X_BUG_ABORT();
        return;
    }
    end_ = end;
    reason_ = reason;
}

SendResult Beam::send(std::vector<Head> *heads, const char *data, std::size_t len,
                      Head *trailers, bool eos, apr_interval_time_t timeout) noexcept
{
    std::string chunk;
    if (len) {
        chunk.assign(data, len);
    }
    return send(heads, &chunk, trailers, eos, timeout);
}

SendResult Beam::send(std::vector<Head> *heads, std::string *body, Head *trailers, bool eos,
                      apr_interval_time_t timeout, bool flush, FileRange *file) noexcept
{
    std::size_t len = body ? body->size() : 0;
    std::size_t file_len = file && file->file ? file->len : 0;
    std::unique_lock<std::mutex> lock(lock_);
    auto full = [&] {
        return (len > 0 && in_memory_ >= max_buffer_)
               || (file_len > 0 && buffered_ - in_memory_ >= FILE_BUDGET);
    };
    auto drained = [&] {
        return in_memory_ <= max_buffer_ / 2 && buffered_ - in_memory_ <= FILE_BUDGET / 2;
    };
    if (timeout > 0 && full()) {
        /* Full: wait until the receiver drained half of it (one wake-up
         * per half buffer, not per frame the receiver takes). */
        auto deadline = std::chrono::steady_clock::now() + std::chrono::microseconds(timeout);
        sender_waiting_ = true;
        while (end_ == BeamEnd::OPEN && !drained()) {
            if (cond_.wait_until(lock, deadline) == std::cv_status::timeout
                && end_ == BeamEnd::OPEN && !drained()) {
                sender_waiting_ = false;
                return SendResult::TIMED_OUT;
            }
        }
        sender_waiting_ = false;
    }
    if (end_ != BeamEnd::OPEN) {
        return end_ == BeamEnd::ABORTED ? SendResult::ABORTED : SendResult::ACCEPTED;
    }
    /* The receiver needs waking only when it may be waiting: for the first
     * bytes after it found the beam empty, and for heads, trailers and the
     * end. Data added to data it has not taken yet wakes nobody. */
    bool wake = false;
    if (heads && !heads->empty()) {
        for (auto &h : *heads) {
            heads_.push_back(std::move(h));
        }
        heads->clear();
        wake = true;
    }
    if (len + file_len) {
        /* Also when the buffer fills a frame: a receiver holding a short
         * frame back sends it now. */
        std::size_t total = len + file_len;
        wake = wake || buffered_ == 0
               || (buffered_ < FRAME_WORTH && buffered_ + total >= FRAME_WORTH);
        if (len) {
            std::string *last = chunks_.empty() || chunks_.back().file.file
                                    ? nullptr : &chunks_.back().bytes;
            if (last && ((len < SMALL_APPEND && last->size() + len <= FRAME_WORTH)
                         || last->capacity() - last->size() >= len)) {
                /* Bytes join the last piece when it has room for them (a
                 * proxy passing 8 KiB reads in 64 KiB buffers), or when
                 * they are few (a client sending 1-byte DATA frames): a
                 * piece each would cost an allocation, or ~100 bytes of
                 * bookkeeping per byte. The sender keeps its buffer. */
                last->append(*body);
                body->clear();
            }
            else {
                chunks_.emplace_back();
                chunks_.back().bytes = std::move(*body);
                /* The sender's next buffer: one the receiver emptied
                 * (read_data()), so that a stream does not allocate (and
                 * fault in) a fresh one per piece. */
                body->swap(spare_);
                body->clear();
            }
            in_memory_ += len;
        }
        if (file_len) {
            chunks_.emplace_back();
            chunks_.back().file = std::move(*file);
        }
        buffered_ += total;
        sent_total_ += total;
    }
    if (flush && flushed_upto_ != sent_total_) {
        /* A receiver holding the unflushed bytes back sends them now. */
        wake = wake || buffered_ > 0;
        flushed_upto_ = sent_total_;
    }
    if (trailers) {
        if (has_trailers_) {
            for (auto &f : trailers->fields) {
                trailers_.fields.push_back(std::move(f));
            }
        }
        else {
            trailers_ = std::move(*trailers);
            has_trailers_ = true;
        }
        wake = true;
    }
    if (eos) {
        set_end(BeamEnd::COMPLETE, AbortReason::NONE);
        wake = true;
    }
    if (wake) {
        signal(lock);
    }
    return SendResult::ACCEPTED;
}

void Beam::abort(AbortReason reason) noexcept
{
    std::unique_lock<std::mutex> lock(lock_);
    if (end_ != BeamEnd::OPEN) {
        /* Already ended: the first end stands (a reset after a complete
         * response leaves it complete). */
        return;
    }
    set_end(BeamEnd::ABORTED, reason);
    drop_body();
    signal(lock);
}

void Beam::drop_body() noexcept
{
    /* An aborted beam delivers nothing more (and closes its files). */
    chunks_.clear();
    spare_ = std::string();
    chunk_off_ = 0;
    buffered_ = 0;
    in_memory_ = 0;
}

std::size_t Beam::read_data(char *buf, std::size_t max, State *after) noexcept
{
    std::unique_lock<std::mutex> lock(lock_);
    std::size_t n = 0;
    std::size_t from_memory = 0;
    while (n < max && !chunks_.empty()) {
        Piece &front = chunks_.front();
        std::size_t take = std::min(max - n, front.size() - chunk_off_);
        if (front.file.file) {
            if (!pread_all(front.file.file->fd(), buf + n, take, front.file.offset + chunk_off_)) {
                int err = errno;
                ap_log_error(APLOG_MARK, APLOG_ERR, err ? err : APR_EOF, nullptr,
                             H2XLOGNO(10036) "beam %s: cannot read %lu bytes of the "
                             "response's file at offset %llu (changed or truncated while "
                             "being sent?): resetting the stream", tag_,
                             static_cast<unsigned long>(take),
                             static_cast<unsigned long long>(front.file.offset + chunk_off_));
                /* Whatever the sender said, this body is not whole. */
                end_ = BeamEnd::ABORTED;
                reason_ = AbortReason::HANDLER_ERROR;
                received_ += n;
                drop_body();
                cond_.notify_all();
                if (after) {
                    *after = state_locked();
                }
                return n;
            }
        }
        else {
            std::memcpy(buf + n, front.bytes.data() + chunk_off_, take);
            from_memory += take;
        }
        n += take;
        chunk_off_ += take;
        if (chunk_off_ == front.size()) {
            if (!front.file.file && front.bytes.capacity() > spare_.capacity()) {
                spare_.swap(front.bytes);
            }
            chunks_.pop_front();
            chunk_off_ = 0;
        }
    }
    if (n) {
        buffered_ -= n;
        in_memory_ -= from_memory;
        received_ += n;
        if (sender_waiting_ && in_memory_ <= max_buffer_ / 2
            && buffered_ - in_memory_ <= FILE_BUDGET / 2) {
            cond_.notify_all(); /* a sender blocked on a full beam may go on */
        }
    }
    if (after) {
        *after = state_locked();
    }
    return n;
}

bool Beam::wait_readable(apr_interval_time_t timeout) noexcept
{
    std::unique_lock<std::mutex> lock(lock_);
    auto ready = [this] { return buffered_ > 0 || has_trailers_ || end_ != BeamEnd::OPEN; };
    if (timeout <= 0) {
        cond_.wait(lock, ready);
        return true;
    }
    return cond_.wait_for(lock, std::chrono::microseconds(timeout), ready);
}

Beam::State Beam::take_heads(std::vector<Head> *heads) noexcept
{
    std::lock_guard<std::mutex> lock(lock_);
    if (heads->empty()) {
        heads->swap(heads_); /* no copy, and the caller's buffer is reused */
    }
    else {
        for (auto &h : heads_) {
            heads->push_back(std::move(h));
        }
    }
    heads_.clear();
    return state_locked();
}

bool Beam::take_trailers(Head *out) noexcept
{
    std::lock_guard<std::mutex> lock(lock_);
    if (!has_trailers_ || buffered_ > 0) {
        return false; /* trailers go after the last byte */
    }
    *out = std::move(trailers_);
    has_trailers_ = false;
    return true;
}

Beam::State Beam::state_locked() const noexcept
{
    State st;
    st.end = end_;
    st.reason = reason_;
    st.buffered = buffered_;
    st.has_trailers = has_trailers_;
    st.received = received_;
    st.flushed = flushed_upto_ == sent_total_;
    return st;
}

Beam::State Beam::state() const noexcept
{
    std::lock_guard<std::mutex> lock(lock_);
    return state_locked();
}

} // namespace h2x
