/* h2x_session.h: the HTTP/2 server session of one client connection (c1).
 *
 * Owns the nghttp2 session, the streams and the Mplx. Runs the c1 loop:
 * read frames (non-blocking), act on stream news from the workers, write
 * frames (coalesced, then flushed), sleep on the socket and the wake-up
 * pipe. Ends on client close, fatal protocol error, idle KeepAliveTimeout
 * (GOAWAY NO_ERROR) or graceful shutdown (GOAWAY with the last accepted
 * stream id, every accepted stream finished first: DESIGN.md invariant 8).
 *
 * owner: the c1 process_connection/protocol_switch hook (stack lifetime).
 * thread: c1 only, except where Mplx says otherwise.
 */
#ifndef H2X_SESSION_H
#define H2X_SESSION_H

#include <cstdint>
#include <array>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include <httpd.h>
#include <nghttp2/nghttp2.h>

#include "h2x_frame_gate.h"
#include "h2x_idle_watch.h"
#include "h2x_mplx.h"
#include "h2x_out_buf.h"
#include "h2x_status.h"
#include "h2x_stream.h"

namespace h2x {

enum class SessionState { INIT, BUSY, IDLE, DRAINING, FINISHED };

/* How Session::run() returned. */
enum class RunResult {
    CLOSED,    /* the session is over; the connection closes */
    YIELDED,   /* idle: the MPM watches the connection and calls again */
    NEEDS_THREAD, /* on the event loop: the session must do something that
                   * may block (start requests, write to a full socket): run
                   * it on a thread that may (h2x_conn_loop.h) */
    WAITING,   /* parked (run() with `park`): streams are in progress and
                * there is nothing to do until their news (the loop's waker,
                * Mplx::c1_park()), the client's next bytes, or
                * wait_deadline() */
};

class Session {
  public:
    Session(conn_rec *c1, server_rec *s, const char *protocol) noexcept;
    ~Session();

    /* h2c Upgrade: `r` becomes stream 1 (RFC 9113 §3.2 of RFC 7540). */
    bool init(request_rec *upgrade_request) noexcept;
    /* Runs until the connection is done or, with `may_suspend` (an async
     * MPM), until it has no stream left (idle: YIELDED). `on_loop`: on the
     * event loop's thread (h2x_conn_loop.h), which must not block: where
     * the session would wait, or write more than the socket takes now, it
     * returns NEEDS_THREAD instead. `park` (the loop, or a worker running
     * the session for it): where the session would wait for its streams,
     * it parks with the loop's waker and returns WAITING. */
    RunResult run(bool may_suspend, bool on_loop, bool park = false) noexcept;
    /* The event loop's waker for this connection (set once, when the loop
     * first takes it; `arg` lives as long as the connection). */
    void set_loop_waker(Mplx::Waker waker, void *arg) noexcept
    {
        loop_waker_ = waker;
        loop_waker_arg_ = arg;
    }
    /* After run() returned WAITING: when to run it again at the latest. */
    apr_time_t wait_deadline() const noexcept
    {
        return wait_deadline_;
    }
    /* Idle: when KeepAliveTimeout ends. */
    apr_time_t idle_deadline() const noexcept
    {
        return idle_since_ + server_->keep_alive_timeout;
    }
    /* The connection is about to close (pre_close_connection hook). */
    void pre_close() noexcept;
    /* After run() YIELDED: let IdleWatch keep KeepAliveTimeout while the
     * MPM holds the connection in its I/O queue. False: not available,
     * leave it to the MPM's keep-alive queue. */
    bool park_idle() noexcept;

    static constexpr std::size_t OUT_FLUSH = 64 * 1024; /* coalesce writes up to this */
    /* An idle connection keeps a write buffer up to this size (enough for
     * a small response: no malloc per request), frees a larger one. */
    static constexpr std::size_t OUT_KEEP_IDLE = 4096;
    static constexpr apr_off_t READ_MAX = 64 * 1024;    /* input taken per read */
    static constexpr int READ_ROUNDS = 16;   /* reads per read_input() call */

    /* nghttp2 callbacks (trampolines in h2x_session.cpp) */
    int on_begin_headers(const nghttp2_frame *frame) noexcept;
    int on_header(const nghttp2_frame *frame, const uint8_t *name, size_t namelen,
                  const uint8_t *value, size_t valuelen) noexcept;
    int on_begin_frame(const nghttp2_frame_hd *hd) noexcept;
    void on_settings_begin() noexcept;
    void on_settings_recv() noexcept;
    void end_upgrade_hold() noexcept;
    int on_frame_recv(const nghttp2_frame *frame) noexcept;
    int on_data_chunk_recv(uint8_t flags, int32_t stream_id, const uint8_t *data,
                           size_t len) noexcept;
    int on_frame_send(const nghttp2_frame *frame) noexcept;
    int on_frame_not_send(const nghttp2_frame *frame, int lib_error) noexcept;
    int on_stream_close(int32_t stream_id, uint32_t error_code) noexcept;
    int on_invalid_frame_recv(const nghttp2_frame *frame, int lib_error) noexcept;
    ssize_t on_data_read(int32_t stream_id, uint8_t *buf, size_t length,
                         uint32_t *data_flags) noexcept;

    int on_send_data(nghttp2_frame *frame, const uint8_t *framehd, size_t length) noexcept;
    ssize_t data_frame_length(int32_t window, uint32_t peer_max_frame) const noexcept;
    ssize_t padded_length(size_t len, size_t max_payload) noexcept;

    conn_rec *c1() const noexcept { return c1_; }

  private:
    RunResult run_attached(bool may_suspend) noexcept; /* run() with the pollset */
    bool loop_may_flush() noexcept;      /* on_loop_: would flush_output() block? */
    Stream *find(int32_t id) noexcept;
    void apply(Stream *s, StreamEvent ev) noexcept;
    void set_end(Stream *s, StreamEnd end, uint32_t code) noexcept;
    void schedule(Stream *s) noexcept;
    void start_ready() noexcept;
    int tasks_waiting_on_client() const noexcept;
    void start_task(Stream *s, bool on_c1) noexcept;
    bool may_start_on_c1(const Stream *s) noexcept;
    bool loop_may_start() noexcept;
    void process_news() noexcept;
    void process_output(Stream *s) noexcept;
    void process_input_consumed(Stream *s) noexcept;
    int active_streams() const noexcept;
    void check_ws_shutdown() noexcept;
    void reset(Stream *s, uint32_t code) noexcept;
    void abandon(Stream *s, AbortReason reason) noexcept;
    void trace_frame(const char *dir, const nghttp2_frame *frame) const noexcept;
    void stop_unread_body(Stream *s) noexcept;
    void count_stream_error(int32_t id, uint32_t code) noexcept;
    void count_client_reset() noexcept;
    void log_summary(const char *why) noexcept;
    bool trailers_over_limits(Stream *s, size_t namelen, size_t valuelen) noexcept;
    void maybe_destroy(Stream *s) noexcept;
    void remember_reset(int32_t stream_id) noexcept; /* into our_resets_ */
    bool reset_by_us(int32_t stream_id) const noexcept;
    bool read_input() noexcept;          /* false: connection gone */
    bool write_output() noexcept;        /* false: write failed */
    bool flush_output() noexcept;        /* writes out_buf_ to c1 */
    void patch_settings(std::size_t at) noexcept;
    void start_shutdown(uint32_t error) noexcept; /* GOAWAY */
    void teardown() noexcept; /* idempotent */
    void check_blocked_output(apr_time_t now) noexcept;
    void grow_in_window(Stream *s, const Beam::State &in) noexcept;
    void release_held_output(apr_time_t now) noexcept;
    apr_interval_time_t next_hold_end(apr_time_t now) const noexcept;

    conn_rec *c1_;
    server_rec *server_;
    const char *protocol_;
    nghttp2_session *ngh2_ = nullptr;
    std::unique_ptr<Mplx> mplx_;
    StatusEntry status_;            /* what server-status shows of us */
    std::unordered_map<int32_t, std::unique_ptr<Stream>> streams_;
    int open_streams_ = 0;          /* streams nghttp2 has not closed */
    int max_streams_ = 100;         /* H2MaxSessionStreams */
    int window_size_ = 65535;       /* H2WindowSize */
    int32_t conn_window_ = 1 << 20; /* our connection receive window */
    std::size_t stream_max_mem_ = 65536;
    int max_data_frame_len_ = 0;    /* H2MaxDataFrameLen, 0: no own cap */
    int padding_bits_ = 0;          /* H2Padding */
    bool tls_ = false;              /* h2 over TLS */
    bool ws_seen_ = false;          /* a WebSocket stream was opened here */
    bool inline_requests_ = false;  /* H2xInlineRequests, and possible here */
    apr_time_t ws_checked_ = 0;     /* last check_ws_shutdown() */
    apr_interval_time_t output_hold_ = 0; /* H2OutputBuffering: short-frame hold */
    apr_int64_t tls_warmup_size_ = 0;   /* H2TLSWarmUpSize */
    apr_interval_time_t tls_cooldown_ = 0; /* H2TLSCoolDownSecs */
    apr_int64_t tls_warm_bytes_ = 0;    /* written since the last cool-down */
    apr_time_t last_write_ = 0;
    std::size_t max_header_block_ = 64 * 1024; /* H2MaxHeaderBlockLen */
    int max_stream_errors_ = 8;     /* H2MaxStreamErrors, 0: no limit */
    int stream_errors_ = 0;         /* streams reset for the client's faults */
    static constexpr int RESET_BURST = 1000; /* count_client_reset() */
    static constexpr int RESET_RATE = 33;
    double reset_tokens_ = 0;
    apr_time_t reset_tokens_at_ = 0;
    /* Streams whose error nghttp2 reported on receipt (counted then, not
     * again when their RST_STREAM leaves). */
    std::vector<int32_t> errors_counted_;
    /* Requests complete since the last start_ready(): started once the
     * input read so far is processed, so that a RST_STREAM right behind
     * the HEADERS (Rapid Reset) cancels the stream before any work. A
     * request that would wait on the client may stay here longer
     * (may_start()). */
    std::vector<int32_t> ready_;
    std::vector<int32_t> ready_scratch_; /* start_ready()'s working copy */
    std::vector<Head> heads_scratch_;    /* process_output()'s working copy */
    /* Tasks a connection may always have waiting on its client (request
     * body still open, or output blocked on its window); beyond that, a
     * request with a body still to come starts only while the worker pool
     * keeps a reserve (Workers::has_reserve()). */
    static constexpr int CLIENT_WAIT_FREE = 2;
    /* Request body bytes a task takes before it tells c1 (flow control). */
    static constexpr std::size_t CONSUME_SIGNAL = 16384;
    /* A request body's beam holds its stream window and this much more. */
    static constexpr std::size_t IN_SLACK = 16384;
    /* A request body's stream window grows up to this (grow_in_window()). */
    static constexpr int32_t IN_WINDOW_MAX = 1 << 20;
    static constexpr apr_interval_time_t WAIT_RECHECK = 50 * 1000; /* 50 ms */
    int streams_opened_ = 0;        /* streams the client opened */
    /* read_input() stopped at its round limit: more input may wait in c1's
     * filters (see run_attached()). */
    bool input_pending_ = false;
    bool summary_logged_ = false;
    bool handshake_done_ = false;   /* the client's first SETTINGS arrived */
    /* h2c Upgrade: until the client acknowledged our SETTINGS (or this
     * time passed), stream 1's DATA waits (on_data_read()). 0: no wait. */
    apr_time_t upgrade_hold_until_ = 0;
    /* The last streams we reset or refused while the client was still
     * sending: a HEADERS frame on one of them may be trailers crossing our
     * RST_STREAM, not a reused stream id (on_begin_frame()). */
    std::array<int32_t, 32> our_resets_{};
    std::size_t our_resets_next_ = 0;
    SessionState state_ = SessionState::INIT;
    bool goaway_sent_ = false;
    bool terminating_ = false;      /* an error GOAWAY ends the session: no new work */
    FrameGate gate_;                /* frame checks nghttp2 lacks (read_input()) */
    /* A SETTINGS frame being received: the client's initial window size
     * and the largest stream send window before it (on_settings_recv()). */
    int64_t settings_iws_before_ = 0;
    int64_t settings_window_before_ = 0;
    bool settings_patched_ = false; /* see write_output() */
    apr_time_t idle_since_ = 0;
    /* run() on the event loop: no waiting, no write the socket cannot take
     * at once; loop_blocked_: write_output() stopped for that. */
    bool on_loop_ = false;
    bool loop_blocked_ = false;
    bool park_ = false;             /* run() with park */
    Mplx::Waker loop_waker_ = nullptr;
    void *loop_waker_arg_ = nullptr;
    apr_time_t wait_deadline_ = 0;  /* WAITING: the next turn at the latest */
    std::size_t loop_written_ = 0;  /* bytes written in this turn */
    int loop_sndbuf_ = 0;           /* the socket's SO_SNDBUF, last read */
    /* A turn on the loop writes at most this much, then goes to a thread. */
    static constexpr std::size_t LOOP_TURN_MAX = 256 * 1024;
    /* A worker running the session for the loop parks it after this long
     * without news (run() with park). */
    static constexpr apr_interval_time_t PARK_AFTER = 10 * 1000;
    IdleEntry idle_;                /* parked by park_idle(), see run_attached() */
    apr_time_t last_blocked_check_ = 0;
    apr_bucket_brigade *in_bb_ = nullptr;
    apr_bucket_brigade *out_bb_ = nullptr;
    OutBuf out_buf_;
    std::vector<int32_t> news_, done_;
    std::vector<nghttp2_nv> nva_;
};


} // namespace h2x

#endif
