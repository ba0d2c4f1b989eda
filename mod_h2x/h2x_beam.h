/* h2x_beam.h: the thread-safe transfer of one direction of a stream between
 * c1 (the client connection thread) and c2 (the worker running the request).
 *
 * A beam carries, in order: interim and final response heads (output only),
 * body bytes, trailers, and then exactly one terminal state (DESIGN.md
 * invariant 2, STYLE.md §3.4):
 *   COMPLETE - the EOS passed through; the message is whole.
 *   ABORTED  - the sender gave up, or the receiver went away; never "whole".
 * There is no "closed": a sender ends with send(..., eos=true) or abort(), and a
 * second ending is a BUG that is logged and ignored.
 *
 * Body bytes are copied into the beam (no bucket crosses threads), which
 * keeps ownership trivial; the buffered amount is bounded by `max_buffer`,
 * the sender blocks (with an IO timeout) while the beam is full, until
 * half of it is drained. A file's bytes may instead travel as a FileRange:
 * the beam holds its own descriptor of the file (FileRef, a dup the sender
 * made) and the receiver preads from it, so a static file costs neither a
 * copy in the worker nor buffer memory, and its worker is free as soon as
 * the range is handed over - for files up to FILE_BUDGET: file bytes do
 * not count against max_buffer (they take no memory), but more than
 * FILE_BUDGET of them waiting blocks the sender like a full buffer, so
 * that a worker never runs far ahead of what the client took (what the
 * access log's %O reports is what the worker handed over). They count as
 * `buffered`.
 *
 * Every transition calls the notifier (set_notify()) after the lock is
 * released; the receiver re-reads the state under the lock (level-triggered,
 * DESIGN.md invariant 3), so a lost notification can delay but never lose
 * an end.
 *
 * Lifetime (DESIGN.md invariant 9): the beam, and the Mplx its notifier
 * points to, outlive every call a c2 makes on it, notifier included,
 * because the c2's task holds its Mplx ticket until Mplx::c2_done() and c1
 * frees the stream only after that (h2x_mplx.h). c1, the owner, calls it
 * on its own thread.
 *
 * owner: the c1 Stream (std::unique_ptr); c2 borrows it until its task's
 *        Mplx::c2_done().
 * thread: send side from one thread, receive side from another; all state
 *         under lock_.
 */
#ifndef H2X_BEAM_H
#define H2X_BEAM_H

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include <apr_time.h>

namespace h2x {

using Fields = std::vector<std::pair<std::string, std::string>>;

/* A response head (status + fields), or request/response trailers (status 0). */
struct Head {
    int status = 0;
    Fields fields;
};

/* An open file descriptor owned by the beam pieces that refer to it;
 * closed when the last of them goes (on whichever thread drops it). */
class FileRef {
  public:
    explicit FileRef(int fd) noexcept : fd_(fd) {}
    ~FileRef();
    FileRef(const FileRef &) = delete;
    FileRef &operator=(const FileRef &) = delete;
    int fd() const noexcept { return fd_; }

  private:
    int fd_;
};

/* `len` bytes of `file` from `offset`. */
struct FileRange {
    std::shared_ptr<FileRef> file;
    std::uint64_t offset = 0;
    std::size_t len = 0;
};

enum class BeamEnd { OPEN, COMPLETE, ABORTED };

/* Why a beam was aborted: chooses the RST_STREAM code and the log line. */
enum class AbortReason {
    NONE,
    INCOMPLETE,    /* handler finished without EOS after final headers */
    HANDLER_ERROR, /* an error bucket after the final headers */
    LENGTH,        /* body shorter/longer than its Content-Length */
    TIMEOUT,       /* IO blocked longer than Timeout/H2StreamTimeout */
    PEER_RESET,    /* the client reset the stream */
    CONN_GONE,     /* the connection is shutting down */
    HTTP11_REQUIRED, /* the request needs what HTTP/2 cannot do (TLS renegotiation) */
};
const char *abort_reason_name(AbortReason reason) noexcept;

enum class SendResult { ACCEPTED, TIMED_OUT, ABORTED };

class Beam {
  public:
    using Notify = std::function<void()>;

    Beam(const char *tag, std::size_t max_buffer) noexcept;
    Beam(const Beam &) = delete;
    Beam &operator=(const Beam &) = delete;

    void set_notify(Notify notify) noexcept { notify_ = std::move(notify); }

    /* ---- sender side ---- */
    /* Hand over, in one locked step so the receiver never sees half of it:
     * heads (interim and/or final, in order), body bytes, trailers, and the
     * end (`eos`: COMPLETE). Blocks first while more than max_buffer bytes
     * are buffered, for at most `timeout` (<= 0: never block). */
    SendResult send(std::vector<Head> *heads, const char *data, std::size_t len,
                    Head *trailers, bool eos, apr_interval_time_t timeout) noexcept;
    /* The same, taking `body`'s bytes without copying (it is left empty).
     * `flush`: the handler flushed - every byte sent so far should leave
     * now, not wait to be coalesced with more (State::flushed). `file`: a
     * file range that follows `body` (moved from; never blocks the sender). */
    SendResult send(std::vector<Head> *heads, std::string *body, Head *trailers, bool eos,
                    apr_interval_time_t timeout, bool flush = false,
                    FileRange *file = nullptr) noexcept;
    /* The terminal state ABORTED. Either side may call it. */
    void abort(AbortReason reason) noexcept;

    /* ---- receiver side ---- */
    /* A snapshot of the state, read under the lock. */
    struct State {
        BeamEnd end = BeamEnd::OPEN;
        AbortReason reason = AbortReason::NONE;
        std::size_t buffered = 0;   /* body bytes waiting */
        bool has_trailers = false;  /* trailers waiting */
        std::uint64_t received = 0; /* body bytes the receiver took, ever */
        bool flushed = false;       /* every buffered byte was flushed by the sender */
    };
    /* Buffered bytes that make a full DATA frame: the receiver is woken
     * when the buffer reaches it, even if it holds data already. */
    static constexpr std::size_t FRAME_WORTH = 16384;
    /* File bytes the sender may have waiting in the beam (see above). */
    static constexpr std::size_t FILE_BUDGET = 16 * 1024 * 1024;
    /* Sends shorter than this are appended to the last piece. */
    static constexpr std::size_t SMALL_APPEND = 1024;
    /* Take the queued heads and read the state in one locked step. */
    State take_heads(std::vector<Head> *heads) noexcept;
    /* Copy up to `max` body bytes out; `after` gets the state that follows.
     * A file that can no longer be read (truncated under us) aborts the
     * beam (HANDLER_ERROR) and the bytes read stop short. */
    std::size_t read_data(char *buf, std::size_t max, State *after) noexcept;
    /* Block until body bytes, trailers or an end are there, or `timeout`
     * passes (<= 0: wait without limit). Returns false on timeout. */
    bool wait_readable(apr_interval_time_t timeout) noexcept;
    /* Trailers, once every body byte was read. */
    bool take_trailers(Head *out) noexcept;
    State state() const noexcept;
    /* Raise max_buffer to `max_buffer` (never lowers it): c1 opened a
     * larger flow-control window for the request body it carries. */
    void grow(std::size_t max_buffer) noexcept;

  private:
    void signal(std::unique_lock<std::mutex> &lock) noexcept;
    void set_end(BeamEnd end, AbortReason reason) noexcept; /* under lock_ */
    void drop_body() noexcept;                              /* under lock_ */
    State state_locked() const noexcept;

    const char *tag_;
    std::size_t max_buffer_;            /* under lock_ */
    mutable std::mutex lock_;
    std::condition_variable cond_;      /* any transition */
    /* A piece of body: bytes held in memory, or a file range. */
    struct Piece {
        std::string bytes;
        FileRange file;
        std::size_t size() const noexcept { return file.file ? file.len : bytes.size(); }
    };
    std::deque<Piece> chunks_;          /* under lock_: body pieces */
    std::string spare_;                 /* under lock_: an emptied piece's buffer, for the sender */
    std::size_t chunk_off_ = 0;         /* under lock_: offset in chunks_.front() */
    std::size_t buffered_ = 0;          /* under lock_: body bytes, file ranges included */
    std::size_t in_memory_ = 0;         /* under lock_: the part of buffered_ held in memory */
    std::vector<Head> heads_;           /* under lock_ */
    Head trailers_;                     /* under lock_ */
    bool has_trailers_ = false;         /* under lock_ */
    bool sender_waiting_ = false;       /* under lock_: send() waits for room */
    BeamEnd end_ = BeamEnd::OPEN;       /* under lock_, written once */
    AbortReason reason_ = AbortReason::NONE; /* under lock_ */
    std::uint64_t received_ = 0;        /* under lock_ */
    std::uint64_t sent_total_ = 0;      /* under lock_: body bytes ever sent */
    std::uint64_t flushed_upto_ = 0;    /* under lock_: sent_total_ at the last flush */
    Notify notify_;                     /* set before the beam is shared */
};

} // namespace h2x

#endif
