/* h2x_session.cpp: see h2x_session.h. */
#include "h2x_private.h"
#include "h2x_session.h"

#include <algorithm>
#include <cstring>

#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <ap_mpm.h>
#include <http_connection.h>
#include <http_core.h>
#include <http_main.h>
#include <http_protocol.h>
#include <http_request.h>
#include <apr_base64.h>

#include "h2x_c2_inline.h"
#include "h2x_config.h"
#include "h2x_conn_ctx.h"
#include "h2x_conn_loop.h"
#include "h2x_response.h"
#include "h2x_workers.h"

namespace h2x {

namespace {

/* The longest stream 1's DATA waits for the acknowledgement of our
 * SETTINGS after an h2c Upgrade (Session::end_upgrade_hold()). */
constexpr apr_interval_time_t UPGRADE_HOLD_MAX = APR_USEC_PER_SEC;

Session *of(void *user_data) noexcept
{
    return static_cast<Session *>(user_data);
}

int cb_on_begin_headers(nghttp2_session *, const nghttp2_frame *frame, void *ud) noexcept
{
    return of(ud)->on_begin_headers(frame);
}

int cb_on_header(nghttp2_session *, const nghttp2_frame *frame, const uint8_t *name,
                 size_t namelen, const uint8_t *value, size_t valuelen, uint8_t,
                 void *ud) noexcept
{
    return of(ud)->on_header(frame, name, namelen, value, valuelen);
}

int cb_on_begin_frame(nghttp2_session *, const nghttp2_frame_hd *hd, void *ud) noexcept
{
    return of(ud)->on_begin_frame(hd);
}

int cb_on_frame_recv(nghttp2_session *, const nghttp2_frame *frame, void *ud) noexcept
{
    return of(ud)->on_frame_recv(frame);
}

int cb_on_data_chunk_recv(nghttp2_session *, uint8_t flags, int32_t stream_id,
                          const uint8_t *data, size_t len, void *ud) noexcept
{
    return of(ud)->on_data_chunk_recv(flags, stream_id, data, len);
}

int cb_on_frame_send(nghttp2_session *, const nghttp2_frame *frame, void *ud) noexcept
{
    return of(ud)->on_frame_send(frame);
}

int cb_on_frame_not_send(nghttp2_session *, const nghttp2_frame *frame, int lib_error,
                         void *ud) noexcept
{
    return of(ud)->on_frame_not_send(frame, lib_error);
}

int cb_on_stream_close(nghttp2_session *, int32_t stream_id, uint32_t error_code,
                       void *ud) noexcept
{
    return of(ud)->on_stream_close(stream_id, error_code);
}

ssize_t cb_on_data_read(nghttp2_session *, int32_t stream_id, uint8_t *buf, size_t length,
                        uint32_t *data_flags, nghttp2_data_source *, void *ud) noexcept
{
    return of(ud)->on_data_read(stream_id, buf, length, data_flags);
}

ssize_t cb_data_read_length(nghttp2_session *, uint8_t, int32_t, int32_t window,
                            int32_t conn_window, uint32_t peer_max_frame, void *ud) noexcept
{
    return of(ud)->data_frame_length(std::min(window, conn_window), peer_max_frame);
}

ssize_t cb_select_padding(nghttp2_session *, const nghttp2_frame *frame, size_t max_payload,
                          void *ud) noexcept
{
    return of(ud)->padded_length(frame->hd.length, max_payload);
}

int cb_send_data(nghttp2_session *, nghttp2_frame *frame, const uint8_t *framehd, size_t length,
                 nghttp2_data_source *, void *ud) noexcept
{
    return of(ud)->on_send_data(frame, framehd, length);
}

int cb_on_invalid_frame_recv(nghttp2_session *, const nghttp2_frame *frame, int lib_error,
                             void *ud) noexcept
{
    ap_log_cerror(APLOG_MARK, APLOG_DEBUG, 0, of(ud)->c1(), H2XLOGNO(10013)
                  "h2x_session(%ld): invalid frame type %d on stream %d: %s",
                  of(ud)->c1()->id, frame->hd.type, frame->hd.stream_id,
                  nghttp2_strerror(lib_error));
    return of(ud)->on_invalid_frame_recv(frame, lib_error);
}

const char *frame_type_name(uint8_t type) noexcept
{
    switch (type) {
    case NGHTTP2_DATA: return "DATA";
    case NGHTTP2_HEADERS: return "HEADERS";
    case NGHTTP2_PRIORITY: return "PRIORITY";
    case NGHTTP2_RST_STREAM: return "RST_STREAM";
    case NGHTTP2_SETTINGS: return "SETTINGS";
    case NGHTTP2_PUSH_PROMISE: return "PUSH_PROMISE";
    case NGHTTP2_PING: return "PING";
    case NGHTTP2_GOAWAY: return "GOAWAY";
    case NGHTTP2_WINDOW_UPDATE: return "WINDOW_UPDATE";
    case NGHTTP2_CONTINUATION: return "CONTINUATION";
    default: return "UNKNOWN";
    }
}

} // namespace

Session::Session(conn_rec *c1, server_rec *s, const char *protocol) noexcept
    : c1_(c1), server_(s), protocol_(protocol), status_(c1, protocol)
{
    const ServerConfig &cfg = server_config(s);
    max_streams_ = cfg.max_session_streams > 0 ? cfg.max_session_streams : 100;
    window_size_ = cfg.window_size > 0 ? cfg.window_size : 65535;
    stream_max_mem_ = cfg.stream_max_mem > 0 ? static_cast<std::size_t>(cfg.stream_max_mem) : 65536;
    max_data_frame_len_ = cfg.max_data_frame_len > 0 ? cfg.max_data_frame_len : 0;
    tls_ = std::strcmp(protocol, "h2") == 0;
    output_hold_ = cfg.output_buffering ? apr_time_from_msec(20) : 0;
    inline_requests_ = cfg.inline_requests > 0 && inline_possible();
    tls_warmup_size_ = cfg.tls_warmup_size;
    tls_cooldown_ = apr_time_from_sec(cfg.tls_cooldown_secs);
    padding_bits_ = std::min(std::max(cfg.padding_bits, 0), 8);
    max_header_block_ = cfg.max_header_block_len > 0 ? static_cast<std::size_t>(cfg.max_header_block_len)
                                                     : 64 * 1024;
    max_stream_errors_ = static_cast<int>(std::max<apr_int64_t>(cfg.max_stream_errors, 0));
}

/* H2MaxDataFrameLen caps DATA payloads below the peer's
 * SETTINGS_MAX_FRAME_SIZE and the flow-control window nghttp2 offers. */
ssize_t Session::data_frame_length(int32_t window, uint32_t peer_max_frame) const noexcept
{
    ssize_t len = std::min<ssize_t>(window, static_cast<ssize_t>(peer_max_frame));
    if (max_data_frame_len_ > 0) {
        len = std::min<ssize_t>(len, max_data_frame_len_);
    }
    return len;
}

/* H2Padding: 0..2^bits-1 bytes of padding per frame, within the frame. */
ssize_t Session::padded_length(size_t len, size_t max_payload) noexcept
{
    unsigned char rnd = 0;
    ap_random_insecure_bytes(&rnd, sizeof(rnd));
    size_t pad = rnd & ((1u << padding_bits_) - 1);
    return static_cast<ssize_t>(std::min(len + pad, max_payload));
}

Session::~Session()
{
    if (mplx_) {
        teardown();
    }
    if (ngh2_) {
        nghttp2_session_del(ngh2_);
    }
}

bool Session::init(request_rec *upgrade) noexcept
{
    mplx_.reset(new Mplx(c1_, c1_->pool));
    in_bb_ = apr_brigade_create(c1_->pool, c1_->bucket_alloc);
    out_bb_ = apr_brigade_create(c1_->pool, c1_->bucket_alloc);

    nghttp2_session_callbacks *cbs;
    if (nghttp2_session_callbacks_new(&cbs) != 0) {
        return false;
    }
    nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, cb_on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cbs, cb_on_header);
    nghttp2_session_callbacks_set_on_begin_frame_callback(cbs, cb_on_begin_frame);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, cb_on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, cb_on_data_chunk_recv);
    nghttp2_session_callbacks_set_on_frame_send_callback(cbs, cb_on_frame_send);
    nghttp2_session_callbacks_set_on_frame_not_send_callback(cbs, cb_on_frame_not_send);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, cb_on_stream_close);
    nghttp2_session_callbacks_set_on_invalid_frame_recv_callback(cbs, cb_on_invalid_frame_recv);
    nghttp2_session_callbacks_set_data_source_read_length_callback(cbs, cb_data_read_length);
    nghttp2_session_callbacks_set_send_data_callback(cbs, cb_send_data);
    if (padding_bits_ > 0) {
        nghttp2_session_callbacks_set_select_padding_callback(cbs, cb_select_padding);
    }

    nghttp2_option *opt;
    nghttp2_option_new(&opt);
    /* Request bodies: the window opens as c2 reads, not as c1 receives
     * (DESIGN.md invariant 5). */
    nghttp2_option_set_no_auto_window_update(opt, 1);
    /* H2MaxHeaderBlockLen bounds response heads too, as in mod_http2; a
     * head over it is not sent and the stream is reset (on_frame_not_send). */
    nghttp2_option_set_max_send_header_block_length(opt, max_header_block_);
#ifdef HAVE_NGHTTP2_OPTION_SET_NO_RFC9113_LEADING_AND_TRAILING_WS_VALIDATION
    /* As httpd over HTTP/1.1 and mod_http2: leading and trailing SP/HTAB in
     * a request field value is not worth a reset; Request::add() strips it. */
    nghttp2_option_set_no_rfc9113_leading_and_trailing_ws_validation(opt, 1);
#endif
#ifdef HAVE_NGHTTP2_OPTION_SET_MAX_CONTINUATIONS
    nghttp2_option_set_max_continuations(opt, 8);
#endif
#ifdef HAVE_NGHTTP2_OPTION_SET_STREAM_RESET_RATE_LIMIT
    /* A backstop behind count_client_reset(), which answers first and
     * with the right code (nghttp2's limit ends with INTERNAL_ERROR). */
    nghttp2_option_set_stream_reset_rate_limit(opt, 2 * RESET_BURST, 2 * RESET_RATE);
#endif
    /* nghttp2 keeps a server's closed streams for the RFC 7540 priority
     * tree, up to SETTINGS_MAX_CONCURRENT_STREAMS - which it does not know
     * here (above), so the retention had no bound: ~240 bytes per request
     * for the life of the connection (test_543). Dependencies on a
     * closed stream fall back to the default priority (RFC 9113 §5.3.2
     * deprecates that scheme anyway). */
    nghttp2_option_set_no_closed_streams(opt, 1);
    int rv = nghttp2_session_server_new2(&ngh2_, cbs, this, opt);
    nghttp2_option_del(opt);
    nghttp2_session_callbacks_del(cbs);
    if (rv != 0) {
        return false;
    }

    /* SETTINGS_MAX_CONCURRENT_STREAMS is not given to nghttp2: once the
     * client acknowledged it, nghttp2 answers an excess stream with a
     * connection error, dropping every stream. RFC 9113 §5.1.2 makes it a
     * stream error (REFUSED_STREAM), which on_begin_headers() sends; the
     * value is added to the outgoing SETTINGS frame in write_output(). */
    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, static_cast<uint32_t>(window_size_)},
        {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
        /* RFC 8441 §3: H2WebSockets on lets clients open WebSockets as
         * streams (extended CONNECT, h2x_ws.h). */
        {NGHTTP2_SETTINGS_ENABLE_CONNECT_PROTOCOL, 1},
    };
    std::size_t niv = sizeof(iv) / sizeof(iv[0]);
    if (server_config(server_).websockets <= 0) {
        --niv;
    }
    nghttp2_submit_settings(ngh2_, NGHTTP2_FLAG_NONE, iv, niv);
    /* The connection window covers every stream's window. */
    int64_t conn_window = static_cast<int64_t>(window_size_) * max_streams_;
    conn_window = std::min<int64_t>(std::max<int64_t>(conn_window, 1 << 20), 0x7fffffff);
    conn_window_ = static_cast<int32_t>(conn_window);
    nghttp2_session_set_local_window_size(ngh2_, NGHTTP2_FLAG_NONE, 0, conn_window_);

    if (upgrade) {
        upgrade_hold_until_ = apr_time_now() + UPGRADE_HOLD_MAX;
        /* RFC 7540 §3.2 (kept by RFC 9113 §3.1 for existing clients):
         * HTTP2-Settings is base64url of a SETTINGS payload, and the
         * upgraded request is stream 1, half-closed (remote). */
        const char *b64 = apr_table_get(upgrade->headers_in, "HTTP2-Settings");
        std::string s = b64 ? b64 : "";
        std::replace(s.begin(), s.end(), '-', '+');
        std::replace(s.begin(), s.end(), '_', '/');
        while (s.size() % 4) {
            s.push_back('=');
        }
        std::string payload(apr_base64_decode_len(s.c_str()) + 1, '\0');
        int len = apr_base64_decode(&payload[0], s.c_str());
        int head = upgrade->header_only ? 1 : 0;
        rv = nghttp2_session_upgrade2(ngh2_, reinterpret_cast<const uint8_t *>(payload.data()),
                                      static_cast<size_t>(len > 0 ? len : 0), head, nullptr);
        if (rv != 0) {
            ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, upgrade, H2XLOGNO(10014)
                          "h2x_session(%ld): bad HTTP2-Settings: %s", c1_->id,
                          nghttp2_strerror(rv));
            return false;
        }
        auto st = std::make_unique<Stream>(1);
        Stream *s1 = st.get();
        streams_[1] = std::move(st);
        ++open_streams_;
        ++streams_opened_;
        s1->state = StreamState::HALF_CLOSED_REMOTE;
        Request &req = s1->request;
        req.method = upgrade->method;
        req.scheme = "http";
        req.path = upgrade->unparsed_uri ? upgrade->unparsed_uri : "/";
        const char *host = apr_table_get(upgrade->headers_in, "Host");
        req.authority = host ? host : "";
        const apr_array_header_t *arr = apr_table_elts(upgrade->headers_in);
        auto *elts = reinterpret_cast<const apr_table_entry_t *>(arr->elts);
        for (int i = 0; i < arr->nelts; ++i) {
            std::string name = elts[i].key;
            std::transform(name.begin(), name.end(), name.begin(), ::tolower);
            if (name == "host" || name == "connection" || name == "upgrade"
                || name == "http2-settings" || name == "keep-alive"
                || name == "transfer-encoding" || name == "te") {
                continue;
            }
            req.fields.emplace_back(name, elts[i].val ? elts[i].val : "");
        }
        req.end_stream = true;
        req.request_time = upgrade->request_time;
        schedule(s1);
    }
    state_ = SessionState::BUSY;
    return true;
}

Stream *Session::find(int32_t id) noexcept
{
    auto it = streams_.find(id);
    return it == streams_.end() ? nullptr : it->second.get();
}

void Session::apply(Stream *s, StreamEvent ev) noexcept
{
    Transition t = transition(s->state, ev);
    if (t.verdict == Verdict::BUG) {
        ap_log_cerror(APLOG_MARK, APLOG_DEBUG, 0, c1_, H2XLOGNO(10015)
                      "h2x_stream(%ld-%d): BUG: %s in state %s", c1_->id, s->id,
                      event_name(ev), state_name(s->state));
        H2X_BUG_ABORT();
        return;
    }
    ap_log_cerror(APLOG_MARK, APLOG_TRACE1, 0, c1_, "h2x_stream(%ld-%d): %s -[%s]-> %s",
                  c1_->id, s->id, state_name(s->state), event_name(ev), state_name(t.next));
    s->state = t.next;
}

void Session::set_end(Stream *s, StreamEnd end, uint32_t code) noexcept
{
    if (s->end != StreamEnd::NONE) {
        return;
    }
    s->end = end;
    s->end_code = code;
    ap_log_cerror(APLOG_MARK, APLOG_TRACE1, 0, c1_, "h2x_stream(%ld-%d): end %s (code %u)",
                  c1_->id, s->id, end_name(end), code);
}

/* HEADERS on a stream that nghttp2 no longer has: it keeps no closed
 * streams (see init()) and would ignore the frame, so RFC 9113 §5.1.1 and
 * §5.1 are checked here, as the frame begins. A lower id never used, or a
 * stream the client ended or reset, is a connection error PROTOCOL_ERROR;
 * a HEADERS frame with END_STREAM on a stream we reset while the client
 * was still sending may be its trailers crossing our RST_STREAM: ignored
 * (§5.1, closed). (DATA on a stream nghttp2 does not know is dropped by
 * nghttp2 before any callback; its bytes go back to the connection
 * window. docs/differences-from-mod_http2.md.) */
int Session::on_begin_frame(const nghttp2_frame_hd *hd) noexcept
{
    if (hd->type == NGHTTP2_SETTINGS && !(hd->flags & NGHTTP2_FLAG_ACK)) {
        on_settings_begin();
        return 0;
    }
    if (hd->type != NGHTTP2_HEADERS || hd->stream_id <= 0 || (hd->stream_id % 2) == 0
        || hd->stream_id > nghttp2_session_get_last_proc_stream_id(ngh2_)
        || nghttp2_session_find_stream(ngh2_, hd->stream_id)) {
        return 0; /* a new stream, or one nghttp2 has: its checks apply */
    }
    if ((hd->flags & NGHTTP2_FLAG_END_STREAM) && reset_by_us(hd->stream_id)) {
        return 0;
    }
    ap_log_cerror(APLOG_MARK, APLOG_DEBUG, 0, c1_, H2XLOGNO(10031)
                  "h2x_session(%ld): HEADERS on stream %d, closed or below stream %d "
                  "already used: closing the connection (PROTOCOL_ERROR)", c1_->id, hd->stream_id,
                  nghttp2_session_get_last_proc_stream_id(ngh2_));
    goaway_sent_ = true;
    nghttp2_session_terminate_session(ngh2_, NGHTTP2_PROTOCOL_ERROR);
    return 0;
}

/* RFC 9113 §6.9.2: a change of SETTINGS_INITIAL_WINDOW_SIZE that takes
 * a stream's send window past 2^31-1 is a connection error
 * (FLOW_CONTROL_ERROR); nghttp2 resets only that stream. So before the
 * client's SETTINGS apply, the old initial size and the largest stream
 * window are noted, and after they applied the largest window's new size
 * is checked. */
void Session::on_settings_begin() noexcept
{
    settings_iws_before_ = nghttp2_session_get_remote_settings(ngh2_, NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE);
    settings_window_before_ = 0;
    for (auto &kv : streams_) {
        int32_t w = nghttp2_session_get_stream_remote_window_size(ngh2_, kv.first);
        settings_window_before_ = std::max<int64_t>(settings_window_before_, w);
    }
}

void Session::on_settings_recv() noexcept
{
    int64_t iws = nghttp2_session_get_remote_settings(ngh2_, NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE);
    if (iws <= settings_iws_before_
        || settings_window_before_ + (iws - settings_iws_before_) <= NGHTTP2_MAX_WINDOW_SIZE) {
        return;
    }
    ap_log_cerror(APLOG_MARK, APLOG_DEBUG, 0, c1_, H2XLOGNO(10042)
                  "h2x_session(%ld): SETTINGS_INITIAL_WINDOW_SIZE %ld -> %ld takes a stream "
                  "window of %ld past 2^31-1: closing the connection (FLOW_CONTROL_ERROR)",
                  c1_->id, static_cast<long>(settings_iws_before_), static_cast<long>(iws),
                  static_cast<long>(settings_window_before_));
    goaway_sent_ = true;
    nghttp2_session_terminate_session(ngh2_, NGHTTP2_FLOW_CONTROL_ERROR);
}

/* The client acknowledged our SETTINGS after an h2c Upgrade: stream 1's
 * DATA may go (on_data_read()). A client that never acknowledges them gets
 * it after UPGRADE_HOLD_MAX, through the output hold's timer. */
void Session::end_upgrade_hold() noexcept
{
    upgrade_hold_until_ = 0;
    Stream *s1 = find(1);
    if (s1 && s1->deferred && !s1->closed) {
        s1->hold_until = 0;
        s1->deferred = false;
        nghttp2_session_resume_data(ngh2_, 1);
    }
}

/* A stream we reset while the client may still be sending on it. */
bool Session::reset_by_us(int32_t stream_id) const noexcept
{
    return std::find(our_resets_.begin(), our_resets_.end(), stream_id) != our_resets_.end();
}

void Session::remember_reset(int32_t stream_id) noexcept
{
    if (!reset_by_us(stream_id)) {
        our_resets_[our_resets_next_++ % our_resets_.size()] = stream_id;
    }
}

int Session::on_begin_headers(const nghttp2_frame *frame) noexcept
{
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) {
        return 0;
    }
    int32_t id = frame->hd.stream_id;
    if (open_streams_ >= max_streams_ && active_streams() >= max_streams_) {
        /* RFC 9113 §5.1.2: a stream over the advertised limit is a stream
         * error; REFUSED_STREAM tells the client it may retry it. */
        ap_log_cerror(APLOG_MARK, APLOG_TRACE1, 0, c1_,
                      "h2x_session(%ld): stream %d refused, %d streams open", c1_->id, id,
                      open_streams_);
        nghttp2_submit_rst_stream(ngh2_, NGHTTP2_FLAG_NONE, id, NGHTTP2_REFUSED_STREAM);
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    }
    ++streams_opened_;
    if (state_ == SessionState::IDLE) {
        /* A stream is activity: the KeepAliveTimeout clock starts again
         * when the connection is next without streams. A request served
         * at once (h2x_c2_inline.h) never leaves run_attached() a moment
         * with a stream open, so the loop alone would not notice it. */
        state_ = SessionState::BUSY;
    }
    auto st = std::make_unique<Stream>(id);
    st->request.request_time = apr_time_now();
    Stream *s = st.get();
    streams_[id] = std::move(st);
    ++open_streams_;
    nghttp2_session_set_stream_user_data(ngh2_, id, s);
    apply(s, StreamEvent::RECV_HEADERS);
    return 0;
}

/* A WebSocket whose backend closed: mod_proxy's tunnel shuts down its
 * client side for writing and goes on reading the client until it ends
 * too (TCP half-close). A stream has no half-closed socket to show for
 * it; the tunnel's shutdown of the socket pair (h2x_ws.h) ends our output
 * with END_STREAM once every byte before it is out. The client then ends
 * its side, or is asked to after a grace (stop_unread_body()). */
void Session::check_ws_shutdown() noexcept
{
    apr_time_t now = apr_time_now();
    if (now - ws_checked_ < apr_time_from_msec(50)) {
        return;
    }
    ws_checked_ = now;
    for (auto &kv : streams_) {
        Stream *s = kv.second.get();
        if (!s->task || !s->task->websocket || s->ws_out_shut || s->closed
            || s->rst_submitted || !s->response_submitted
            || s->end == StreamEnd::END_STREAM_SENT || !s->task->ws_wake.peer_shut()) {
            continue;
        }
        s->ws_out_shut = true;
        ap_log_cerror(APLOG_MARK, APLOG_TRACE1, 0, c1_,
                      "h2x_stream(%ld-%d): WebSocket backend closed, ending the stream",
                      c1_->id, s->id);
        if (s->deferred) {
            s->deferred = false;
            nghttp2_session_resume_data(ngh2_, s->id);
        }
    }
}

/* RFC 9113 §5.1.2: the streams that count against
 * SETTINGS_MAX_CONCURRENT_STREAMS. One we reset is closed for us even
 * while nghttp2 still holds it until the RST_STREAM frame is out; the
 * client, which may have ended it already, opens the next stream. */
int Session::active_streams() const noexcept
{
    int n = 0;
    for (const auto &kv : streams_) {
        const Stream *s = kv.second.get();
        if (!s->closed && !s->rst_submitted) {
            ++n;
        }
    }
    return n;
}

int Session::on_header(const nghttp2_frame *frame, const uint8_t *name, size_t namelen,
                       const uint8_t *value, size_t valuelen) noexcept
{
    Stream *s = find(frame->hd.stream_id);
    if (!s) {
        return 0;
    }
    if (s->rst_submitted) {
        /* The rest of this block is of no use: nghttp2 then only keeps
         * its HPACK table in step and no longer checks every field (an
         * HPACK bomb's thousands of 4 KB values cost ~70 ms a block
         * otherwise). Our RST_STREAM is queued, so nghttp2 adds none. */
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    }
    if (s->scheduled) {
        /* RFC 9113 §8.1: a trailing header block; it reaches the handler
         * as r->trailers_in, with the end of the body. */
        if (trailers_over_limits(s, namelen, valuelen)) {
            return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
        }
        std::string n(reinterpret_cast<const char *>(name), namelen);
        if (!n.empty() && n[0] != ':') {
            s->request_trailers.fields.emplace_back(
                std::move(n), std::string(reinterpret_cast<const char *>(value), valuelen));
        }
        return 0;
    }
    s->request.add(server_, reinterpret_cast<const char *>(name), namelen,
                   reinterpret_cast<const char *>(value), valuelen);
    if (s->request.reset_code) {
        ap_log_cerror(APLOG_MARK, APLOG_DEBUG, 0, c1_, H2XLOGNO(10028)
                      "h2x_stream(%ld-%d): request head over httpd's limits "
                      "(LimitRequestLine %d, LimitRequestFieldSize %d): resetting",
                      c1_->id, s->id, server_->limit_req_line, server_->limit_req_fieldsize);
        reset(s, s->request.reset_code);
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    }
    if (s->request.raw_bytes > max_header_block_ && !s->request.fail_status) {
        /* H2MaxHeaderBlockLen: too large a request head. */
        s->request.fail_status = HTTP_REQUEST_HEADER_FIELDS_TOO_LARGE;
    }
    return 0;
}

/* Request trailers are bounded as the head is (H2MaxHeaderBlockLen,
 * LimitRequestFields): an HPACK block that decodes to far more than it
 * weighs must not grow the server. The request is under way, so the only
 * answer is a reset; the handler sees the body end as aborted. */
bool Session::trailers_over_limits(Stream *s, size_t namelen, size_t valuelen) noexcept
{
    s->request_trailer_bytes += namelen + valuelen + 4;
    int fields = static_cast<int>(s->request_trailers.fields.size()) + 1;
    if (s->request_trailer_bytes <= max_header_block_
        && (server_->limit_req_fields <= 0 || fields <= server_->limit_req_fields)) {
        return false;
    }
    ap_log_cerror(APLOG_MARK, APLOG_DEBUG, 0, c1_, H2XLOGNO(10030)
                  "h2x_stream(%ld-%d): request trailers over H2MaxHeaderBlockLen %lu or "
                  "LimitRequestFields %d: resetting", c1_->id, s->id,
                  static_cast<unsigned long>(max_header_block_), server_->limit_req_fields);
    s->request_trailers = Head();
    abandon(s, AbortReason::PEER_RESET);
    reset(s, NGHTTP2_ENHANCE_YOUR_CALM);
    return true;
}

/* Starts the tasks of the requests that arrived in the input just read,
 * unless the client reset them in the same read (RFC 9113 §8.1 allows the
 * server to drop any work for a reset stream; CVE-2023-44487 made that the
 * point: a reset right behind its HEADERS must cost no worker, no CGI). */
void Session::start_ready() noexcept
{
    if (ready_.empty()) {
        return;
    }
    /* The two buffers trade places: neither is given back to malloc. */
    std::vector<int32_t> &ids = ready_scratch_;
    ids.clear();
    ids.swap(ready_);
    int waiting = -1; /* tasks_waiting_on_client(), once needed */
    for (int32_t id : ids) {
        Stream *s = find(id);
        if (!s || s->task) {
            continue;
        }
        if (s->rst_submitted || s->closed || terminating_) {
            /* Never started (reset, or the session is ending on an error
             * GOAWAY): nothing to wait for. */
            s->c2_done = true;
            abandon(s, AbortReason::PEER_RESET);
            maybe_destroy(s);
            continue;
        }
        if (s->state == StreamState::OPEN) {
            /* Its handler will wait for the client's body: a client that
             * sends it slowly on many streams would otherwise hold a
             * worker per stream and starve every other connection of
             * them (issue 10; Slowloris on streams). Beyond
             * CLIENT_WAIT_FREE such tasks, start it only while the pool
             * keeps a reserve; until then it waits here, holding no
             * worker (its body collects in its input beam, bounded by the
             * stream window). run() looks again every WAIT_RECHECK. */
            if (waiting < 0) {
                waiting = tasks_waiting_on_client();
            }
            Workers *w = Workers::get();
            if (waiting >= CLIENT_WAIT_FREE && w && !w->has_reserve()) {
                ready_.push_back(id);
                continue;
            }
            ++waiting;
        }
        start_task(s, ids.size() == 1 && may_start_on_c1(s));
    }
}

/* On the event loop, only a request that may be served at once starts
 * (h2x_conn_loop.h): one that would go to a worker needs a thread to feed
 * it and take its response, and none may be free for a while, so a
 * thread of the MPM starts it. Nor any, when a module's request hooks may
 * block the loop (ConnLoop::may_start_requests()). */
bool Session::loop_may_start() noexcept
{
    if (ready_.size() != 1 || !ConnLoop::may_start_requests()) {
        return false;
    }
    const Stream *s = find(ready_.front());
    return s && !s->task && may_start_on_c1(s);
}

/* A request that arrives alone may start on c1 (h2x_c2_inline.h): no
 * other task runs for this connection, no body follows, GET or HEAD. */
bool Session::may_start_on_c1(const Stream *s) noexcept
{
    const Request &req = s->request;
    return inline_requests_ && req.end_stream && !req.fail_status && !goaway_sent_
           && (req.method == "GET" || req.method == "HEAD") && mplx_->c1_running() == 0;
}

/* Running tasks that wait on the client: its request body is still open,
 * or the response waits on its flow-control window. */
int Session::tasks_waiting_on_client() const noexcept
{
    int n = 0;
    for (const auto &kv : streams_) {
        const Stream *s = kv.second.get();
        if (s->task && !s->c2_done
            && (s->state == StreamState::OPEN || s->blocked_since != 0)) {
            ++n;
        }
    }
    return n;
}

void Session::schedule(Stream *s) noexcept
{
    Request &req = s->request;
    req.finish();
    int32_t id = s->id;
    if (!req.end_stream) {
        /* Holds at most one window of data: flow control bounds it. */
        s->in_window = window_size_;
        s->in.reset(new Beam("in", static_cast<std::size_t>(window_size_) + IN_SLACK));
    }
    s->scheduled = true;
    ready_.push_back(id);
}

/* The stream's c2 task goes to the workers (start_ready()). */
void Session::start_task(Stream *s, bool on_c1) noexcept
{
    int32_t id = s->id;
    Request &req = s->request;
    Mplx *mplx = mplx_.get();
    s->out.reset(new Beam("out", stream_max_mem_));
    s->out->set_notify([mplx, id] { mplx->signal(id); });
    s->task.reset(new C2Task(c1_, server_, mplx, id, &s->request, s->in.get(), s->out.get()));
    s->task->consume_signal_at = std::max<std::size_t>(
        1, std::min<std::size_t>(CONSUME_SIGNAL, static_cast<std::size_t>(window_size_) / 2));
    if (s->task->websocket) {
        ws_seen_ = true;
        if (s->in) {
            /* The tunnel polls the task's socket pair for the stream's
             * input (h2x_ws.h): every change of the input wakes it. */
            C2Task *task = s->task.get();
            s->in->set_notify([task] { task->ws_wake.wake(); });
        }
    }
    status_.stream_started(id, req.method, req.path);
    mplx_->c1_task_started();
    if (on_c1 && c1_->current_thread && s->task->run_inline(c1_->current_thread)) {
        return; /* over: its response waits in the beam, its news in the Mplx */
    }
    Workers *w = Workers::get();
    if (!w) {
        s->task->dropped();
        return;
    }
    w->submit(s->task.get());
}

/* LogLevel h2x:trace2: every frame, one line. */
void Session::trace_frame(const char *dir, const nghttp2_frame *frame) const noexcept
{
    ap_log_cerror(APLOG_MARK, APLOG_TRACE2, 0, c1_,
                  "h2x_session(%ld): %s %s stream=%d flags=0x%x len=%lu", c1_->id, dir,
                  frame_type_name(frame->hd.type), frame->hd.stream_id, frame->hd.flags,
                  static_cast<unsigned long>(frame->hd.length));
}

int Session::on_frame_recv(const nghttp2_frame *frame) noexcept
{
    trace_frame("recv", frame);
    Stream *s = frame->hd.stream_id ? find(frame->hd.stream_id) : nullptr;
    switch (frame->hd.type) {
    case NGHTTP2_HEADERS:
        if (!s) {
            break;
        }
        if (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) {
            apply(s, StreamEvent::RECV_END_STREAM);
            s->remote_ended = true;
        }
        if (!s->scheduled && !s->rst_submitted && frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
            s->request.end_stream = (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
            schedule(s);
        }
        else if (s->in && (frame->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
            /* Request trailers end the body. */
            s->in->send(nullptr, nullptr, 0, &s->request_trailers, true, 0);
        }
        break;
    case NGHTTP2_DATA:
        if (s && s->stop_body_at && !(frame->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
            /* More of a body nobody reads, and not its end: ask the client
             * to stop. A frame that ends it closes the stream cleanly. */
            reset(s, NGHTTP2_NO_ERROR);
        }
        if (s && (frame->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
            apply(s, StreamEvent::RECV_END_STREAM);
            s->remote_ended = true;
            if (s->in) {
                std::vector<Head> none;
                s->in->send(&none, nullptr, 0, nullptr, true, 0);
            }
        }
        break;
    case NGHTTP2_RST_STREAM:
        if (s && s->end == StreamEnd::NONE) {
            count_client_reset();
        }
        if (s) {
            apply(s, StreamEvent::RECV_RST);
            s->remote_ended = true;
            set_end(s, StreamEnd::RST_RECEIVED, frame->rst_stream.error_code);
            /* The client's reset frees the work at once: the handler fails
             * at its next write, a queued task never starts. */
            abandon(s, AbortReason::PEER_RESET);
        }
        break;
    case NGHTTP2_GOAWAY:
        log_summary("client GOAWAY");
        break;
    case NGHTTP2_SETTINGS:
        if (!(frame->hd.flags & NGHTTP2_FLAG_ACK)) {
            on_settings_recv();
        }
        else if (upgrade_hold_until_) {
            end_upgrade_hold();
        }
        if (!(frame->hd.flags & NGHTTP2_FLAG_ACK) && !handshake_done_) {
            /* The client's preface and first SETTINGS arrived: the
             * connection's handshake is over. mod_reqtimeout's handshake
             * and header stages guard it until here (a client that sends
             * half a preface is cut off by them); from now on the streams
             * have their own timeouts, and a read deadline meant for one
             * HTTP/1.1 request must not end a long-lived HTTP/2 connection
             * (mod_http2's test_105_03). */
            handshake_done_ = true;
            ap_remove_input_filter_byhandle(c1_->input_filters, "reqtimeout");
        }
        break;
    default:
        break;
    }
    return 0;
}

/* At LogLevel h2x:debug, one line per connection when it winds down, with
 * the counters of mod_http2's session summary under its tag (AH03401)
 * next to ours, so that log watchers written for mod_http2 keep working:
 * remote.emitted = streams the client opened. */
void Session::log_summary(const char *why) noexcept
{
    if (summary_logged_ || !ngh2_ || !APLOGcdebug(c1_)) {
        return;
    }
    summary_logged_ = true;
    ap_log_cerror(APLOG_MARK, APLOG_DEBUG, 0, c1_, H2XLOGNO(10032)
                  "h2x_session(%ld): %s (mod_http2: AH03401: h2_session(%ld,%s): shutdown, "
                  "remote.emitted=%d, remote.max_id=%d, stream errors=%d)", c1_->id, why,
                  c1_->id, protocol_, streams_opened_,
                  nghttp2_session_get_last_proc_stream_id(ngh2_), stream_errors_);
}

int Session::on_data_chunk_recv(uint8_t, int32_t stream_id, const uint8_t *data,
                                size_t len) noexcept
{
    Stream *s = find(stream_id);
    if (s && s->in && !s->c2_done
        && s->in->send(nullptr, reinterpret_cast<const char *>(data), len, nullptr, false, 0)
               == SendResult::ACCEPTED) {
        s->in_received += len;
        return 0;
    }
    /* Nobody will read it: give the window back now (RFC 9113 §6.9: the
     * connection window counts it either way). */
    nghttp2_session_consume(ngh2_, stream_id, len);
    if (s) {
        s->in_received += len;
        s->in_consumed += len;
    }
    return 0;
}

int Session::on_frame_send(const nghttp2_frame *frame) noexcept
{
    trace_frame("sent", frame);
    if (frame->hd.type == NGHTTP2_RST_STREAM) {
        auto it = std::find(errors_counted_.begin(), errors_counted_.end(), frame->hd.stream_id);
        if (it != errors_counted_.end()) {
            errors_counted_.erase(it); /* counted on receipt */
        }
        else {
            count_stream_error(frame->hd.stream_id, frame->rst_stream.error_code);
        }
    }
    Stream *s = frame->hd.stream_id ? find(frame->hd.stream_id) : nullptr;
    if (!s) {
        if (frame->hd.type == NGHTTP2_RST_STREAM) {
            /* A stream refused, or reset before it was ours: the client
             * may still be sending on it (on_begin_frame()). */
            remember_reset(frame->hd.stream_id);
        }
        return 0;
    }
    switch (frame->hd.type) {
    case NGHTTP2_HEADERS:
    case NGHTTP2_DATA:
        if (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) {
            apply(s, StreamEvent::SEND_END_STREAM);
            set_end(s, StreamEnd::END_STREAM_SENT, 0);
            stop_unread_body(s);
        }
        else if (frame->hd.type == NGHTTP2_HEADERS) {
            apply(s, StreamEvent::SEND_HEADERS);
        }
        break;
    case NGHTTP2_RST_STREAM:
        apply(s, StreamEvent::SEND_RST);
        set_end(s, StreamEnd::RST_SENT, frame->rst_stream.error_code);
        break;
    default:
        break;
    }
    return 0;
}

int Session::on_stream_close(int32_t stream_id, uint32_t error_code) noexcept
{
    Stream *s = find(stream_id);
    if (!s) {
        return 0;
    }
    s->closed = true;
    --open_streams_;
    if (!s->remote_ended) {
        /* Closed by our RST_STREAM while the client was still sending:
         * its trailers may be on their way (on_begin_frame()). */
        remember_reset(stream_id);
    }
    status_.stream_ended(stream_id);
    if (s->end == StreamEnd::NONE) {
        set_end(s, StreamEnd::CONNECTION_GONE, error_code);
    }
    s->state = StreamState::CLOSED;
    abandon(s, AbortReason::CONN_GONE);
    if (s->scheduled && !s->task) {
        /* Closed before its task started (start_ready() skips the id):
         * freed now, so that a burst of reset requests in one read never
         * piles up. */
        s->c2_done = true;
    }
    maybe_destroy(s);
    return 0;
}

ssize_t Session::on_data_read(int32_t stream_id, uint8_t *buf, size_t length,
                              uint32_t *data_flags) noexcept
{
    Stream *s = find(stream_id);
    if (!s || !s->out) {
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    }
    if (upgrade_hold_until_ && apr_time_now() >= upgrade_hold_until_) {
        upgrade_hold_until_ = 0;  /* no ACK within UPGRADE_HOLD_MAX: stop asking the clock */
    }
    if (upgrade_hold_until_) {
        /* h2c Upgrade: the upgraded request's DATA waits until the client
         * has acknowledged our SETTINGS, the first frame after the 101
         * (RFC 7540 §3.2, RFC 9113 §3.4). The client then has read what
         * followed the 101. Without the wait the initial 64 KiB window of
         * DATA can arrive in the same read as the 101, and clients that
         * keep what follows the 101 in a fixed buffer fail: curl 7.88
         * ("connection buffer size is too small to store data following
         * HTTP Upgrade response header", 32 KiB) and Java's HttpClient.
         * The HEADERS go out at once. */
        s->hold_until = upgrade_hold_until_;
        s->deferred = true;
        return NGHTTP2_ERR_DEFERRED;
    }
    if (output_hold_ > 0 && !s->c2_done && !(s->task && s->task->websocket)) {
        /* H2OutputBuffering: a frame shorter than it could be, with the end
         * not yet known, waits a moment for more data or the end, so that
         * END_STREAM can ride this DATA frame instead of a zero-length one
         * (DESIGN.md invariant 4), and small writes travel together. What
         * the handler flushed (a FLUSH bucket: a CGI or a proxied backend
         * pausing, a streaming handler) is never held. */
        Beam::State st = s->out->state();
        if (st.end == BeamEnd::OPEN && st.buffered < length && !st.has_trailers
            && !st.flushed) {
            apr_time_t now = apr_time_now();
            if (!s->hold_until) {
                s->hold_until = now + output_hold_;
            }
            if (now < s->hold_until) {
                s->deferred = true;
                return NGHTTP2_ERR_DEFERRED;
            }
        }
    }
    s->hold_until = 0;
    Beam::State st = s->out->state();
    if (st.end != BeamEnd::ABORTED && !st.has_trailers && st.buffered > 0) {
        /* The usual case: the bytes go straight from the beam into the
         * connection's output buffer in on_send_data() (no copy through
         * nghttp2's frame buffer). END_STREAM rides this frame when it
         * takes the last bytes of a complete body. */
        std::size_t n = std::min(length, st.buffered);
        *data_flags |= NGHTTP2_DATA_FLAG_NO_COPY;
        if (n == st.buffered && (st.end == BeamEnd::COMPLETE || s->ws_out_shut)) {
            *data_flags |= NGHTTP2_DATA_FLAG_EOF;
        }
        return static_cast<ssize_t>(n);
    }
    Beam::State after;
    std::size_t n = s->out->read_data(reinterpret_cast<char *>(buf), length, &after);
    if (after.end == BeamEnd::ABORTED) {
        /* DESIGN.md invariant 2: an aborted response is never "complete". */
        nghttp2_submit_rst_stream(ngh2_, NGHTTP2_FLAG_NONE, stream_id, NGHTTP2_INTERNAL_ERROR);
        s->rst_submitted = true;
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    }
    if (after.buffered == 0 && s->ws_out_shut && after.end == BeamEnd::OPEN) {
        /* The WebSocket's backend is done (check_ws_shutdown()). */
        *data_flags |= NGHTTP2_DATA_FLAG_EOF;
        return static_cast<ssize_t>(n);
    }
    if (after.buffered == 0 && after.end == BeamEnd::COMPLETE) {
        /* DESIGN.md invariant 4: END_STREAM rides the last DATA frame, or
         * the trailing HEADERS when there are trailers. */
        *data_flags |= NGHTTP2_DATA_FLAG_EOF;
        Head trailers;
        if (s->out->take_trailers(&trailers) && !trailers.fields.empty()) {
            char status[4];
            response_to_nv(trailers, true, status, &nva_);
            *data_flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
            nghttp2_submit_trailer(ngh2_, stream_id, nva_.data(), nva_.size());
        }
        return static_cast<ssize_t>(n);
    }
    if (n == 0) {
        ap_log_cerror(APLOG_MARK, APLOG_TRACE3, 0, c1_, "h2x_stream(%ld-%d): data deferred",
                      c1_->id, stream_id);
        s->hold_until = 0;
        s->deferred = true;
        return NGHTTP2_ERR_DEFERRED;
    }
    return static_cast<ssize_t>(n);
}

/* H2MaxStreamErrors: streams reset for what the client did wrong (a
 * malformed request, a flow-control violation, frames after its own
 * END_STREAM, refused fields) cost the server work the client can repeat
 * at will. Past the limit the connection ends with GOAWAY(ENHANCE_YOUR_CALM)
 * - the answer to "MadeYouReset" (CVE-2025-8671), where valid-looking frames
 * make the server reset streams instead of the client. */
void Session::count_stream_error(int32_t id, uint32_t code) noexcept
{
    switch (code) {
    case NGHTTP2_PROTOCOL_ERROR:
    case NGHTTP2_FLOW_CONTROL_ERROR:
    case NGHTTP2_STREAM_CLOSED:
    case NGHTTP2_FRAME_SIZE_ERROR:
    case NGHTTP2_COMPRESSION_ERROR:
    case NGHTTP2_ENHANCE_YOUR_CALM:
        break;
    default:
        return;
    }
    ++stream_errors_;
    if (max_stream_errors_ > 0 && stream_errors_ > max_stream_errors_ && !goaway_sent_) {
        ap_log_cerror(APLOG_MARK, APLOG_INFO, 0, c1_, H2XLOGNO(10029)
                      "h2x_session(%ld): %d streams reset for client errors (last: stream "
                      "%d, %s), more than H2MaxStreamErrors %d: closing the connection",
                      c1_->id, stream_errors_, id, nghttp2_http2_strerror(code),
                      max_stream_errors_);
        goaway_sent_ = true;
        terminating_ = true;
        nghttp2_session_terminate_session(ngh2_, NGHTTP2_ENHANCE_YOUR_CALM);
    }
}

/* Rapid Reset (CVE-2023-44487): a client that resets streams before
 * their response ended, more than RESET_RATE a second beyond a burst of
 * RESET_BURST, makes the server open and drop work faster than any real
 * client cancels it: the connection ends with GOAWAY(ENHANCE_YOUR_CALM)
 * (RFC 9113 §5.4.1, §10.5). A token bucket: one token per such reset. */
void Session::count_client_reset() noexcept
{
    apr_time_t now = apr_time_now();
    if (!reset_tokens_at_) {
        reset_tokens_ = RESET_BURST;
    }
    else {
        double refill = static_cast<double>(now - reset_tokens_at_) / APR_USEC_PER_SEC * RESET_RATE;
        reset_tokens_ = std::min<double>(RESET_BURST, reset_tokens_ + refill);
    }
    reset_tokens_at_ = now;
    if (reset_tokens_ >= 1.0) {
        reset_tokens_ -= 1.0;
        return;
    }
    if (!goaway_sent_) {
        ap_log_cerror(APLOG_MARK, APLOG_INFO, 0, c1_, H2XLOGNO(10038)
                      "h2x_session(%ld): the client resets streams faster than %d/s "
                      "(burst %d): closing the connection (Rapid Reset)", c1_->id,
                      RESET_RATE, RESET_BURST);
        goaway_sent_ = true;
        terminating_ = true;
        nghttp2_session_terminate_session(ngh2_, NGHTTP2_ENHANCE_YOUR_CALM);
    }
}

/* nghttp2 found a stream error in what the client sent (a WINDOW_UPDATE
 * overflowing the stream's window, DATA after END_STREAM, ...) and queued
 * the RST_STREAM: it counts against H2MaxStreamErrors now, not when the
 * reset leaves - a client packing thousands of such frames into one read
 * meets the limit within that read. */
int Session::on_invalid_frame_recv(const nghttp2_frame *frame, int lib_error) noexcept
{
    int32_t id = frame->hd.stream_id;
    if (id == 0 || lib_error == 0 || goaway_sent_) {
        return 0;
    }
    if (std::find(errors_counted_.begin(), errors_counted_.end(), id) == errors_counted_.end()) {
        errors_counted_.push_back(id);
        count_stream_error(id, NGHTTP2_PROTOCOL_ERROR);
    }
    return 0;
}

/* nghttp2 refused to send a frame it had queued: a response head or
 * trailers over H2MaxHeaderBlockLen, or with a field it cannot encode.
 * nghttp2 leaves a server's stream open then; the stream must still end
 * (DESIGN.md invariant 1), so it is reset and its work stopped. */
int Session::on_frame_not_send(const nghttp2_frame *frame, int lib_error) noexcept
{
    Stream *s = frame->hd.stream_id ? find(frame->hd.stream_id) : nullptr;
    if (!s || (frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA)) {
        return 0;
    }
    if (lib_error == NGHTTP2_ERR_SESSION_CLOSING || lib_error == NGHTTP2_ERR_STREAM_CLOSED
        || lib_error == NGHTTP2_ERR_STREAM_CLOSING) {
        /* The connection or the stream is ending anyway (a GOAWAY, a
         * reset): nothing was refused, the stream's end is on its way. */
        abandon(s, AbortReason::CONN_GONE);
        return 0;
    }
    std::size_t field_bytes = 0;
    if (frame->hd.type == NGHTTP2_HEADERS) {
        for (std::size_t i = 0; i < frame->headers.nvlen; ++i) {
            field_bytes += frame->headers.nva[i].namelen + frame->headers.nva[i].valuelen;
        }
    }
    ap_log_cerror(APLOG_MARK, APLOG_ERR, 0, c1_, H2XLOGNO(10026)
                  "h2x_stream(%ld-%d): %s frame (%lu bytes of fields) could not be sent "
                  "(%s; H2MaxHeaderBlockLen %lu): resetting the stream",
                  c1_->id, s->id, frame_type_name(frame->hd.type),
                  static_cast<unsigned long>(field_bytes), nghttp2_strerror(lib_error),
                  static_cast<unsigned long>(max_header_block_));
    abandon(s, AbortReason::HANDLER_ERROR);
    reset(s, NGHTTP2_INTERNAL_ERROR);
    return 0;
}

/* Writes a DATA frame announced with NGHTTP2_DATA_FLAG_NO_COPY: header,
 * padding length, the body bytes taken from the beam, padding. */
int Session::on_send_data(nghttp2_frame *frame, const uint8_t *framehd, size_t length) noexcept
{
    Stream *s = find(frame->hd.stream_id);
    if (!s || !s->out) {
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    }
    std::size_t at = out_buf_.size();
    std::size_t padlen = frame->data.padlen;
    out_buf_.append(reinterpret_cast<const char *>(framehd), 9);
    if (padlen > 0) {
        out_buf_.push_back(static_cast<char>(padlen - 1));
    }
    if (s->out->read_data(out_buf_.grow(length), length, nullptr) != length) {
        /* Aborted under us: no partial frame goes out; the stream is reset. */
        out_buf_.truncate(at);
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    }
    if (padlen > 1) {
        out_buf_.append_zeros(padlen - 1);
    }
    /* Let write_output() flush a full buffer before nghttp2 goes on. */
    return out_buf_.size() >= OUT_FLUSH ? NGHTTP2_ERR_PAUSE : 0;
}

/* RFC 9113 §8.1: a complete response may end a request whose body is
 * still coming with RST_STREAM(NO_ERROR), so the client stops sending it.
 * Only once the handler is done (it may still be reading). A client that
 * has sent body bytes is in the middle of its body and is reset at once.
 * One that has sent none yet may be about to end the request anyway -
 * mod_proxy_http2 sends a body-less request's END_STREAM as an empty DATA
 * frame right after the HEADERS, and drops the response body when a reset
 * arrives with the response - so it is reset only when it goes on sending
 * (its next DATA frame) or has not ended the request within
 * STOP_BODY_GRACE. */
constexpr apr_interval_time_t STOP_BODY_GRACE = APR_USEC_PER_SEC;

void Session::stop_unread_body(Stream *s) noexcept
{
    if (s->end == StreamEnd::END_STREAM_SENT && s->state == StreamState::HALF_CLOSED_LOCAL
        && (!s->scheduled || s->c2_done || s->ws_out_shut) && !s->stop_body_at) {
        if (s->in_received > 0 && !s->rst_submitted) {
            /* The client is in the middle of a body: it is not about to
             * end the request with an empty frame, so no grace. */
            reset(s, NGHTTP2_NO_ERROR);
            return;
        }
        s->stop_body_at = apr_time_now();
    }
}

/* Nobody will take this stream's output or give it input any more: both
 * beams end (an output that completed stays complete), and a task still
 * queued never starts. */
void Session::abandon(Stream *s, AbortReason reason) noexcept
{
    if (s->in) {
        s->in->abort(reason);
    }
    if (s->out) {
        s->out->abort(reason);
    }
    if (s->task && !s->c2_done) {
        if (Workers::get() && Workers::get()->cancel(s->task.get())) {
            s->task->dropped();
        }
        else if (!s->out || s->out->state().end != BeamEnd::COMPLETE) {
            /* Ended early: a proxy blocked on its backend would not notice
             * the beams (h2x_c2_backend.h). A complete response leaves its
             * backend connection alone, for the proxy to reuse. */
            s->task->backends.interrupt();
        }
    }
}

void Session::reset(Stream *s, uint32_t code) noexcept
{
    if (s->rst_submitted || s->closed) {
        return;
    }
    s->rst_submitted = true;
    nghttp2_submit_rst_stream(ngh2_, NGHTTP2_FLAG_NONE, s->id, code);
}

/* Reads the output beam's state and acts on it. Called for every stream
 * with news; idempotent, so calling it too often is harmless and a missed
 * call is caught by the next news or the c2-done record. */
void Session::process_output(Stream *s) noexcept
{
    if (s->closed || !s->out || s->rst_submitted) {
        return;
    }
    std::vector<Head> &heads = heads_scratch_;
    heads.clear();
    Beam::State st = s->out->take_heads(&heads);
    for (Head &head : heads) {
        if (head.status < 200) {
            if (!s->response_submitted && !s->head_held) {
                char status[4];
                response_to_nv(head, false, status, &nva_);
                nghttp2_submit_headers(ngh2_, NGHTTP2_FLAG_NONE, s->id, nullptr, nva_.data(),
                                       nva_.size(), nullptr);
            }
            continue;
        }
        if (!s->response_submitted && !s->head_held) {
            s->held_head = std::move(head);
            s->head_held = true;
        }
    }
    if (s->head_held && st.end != BeamEnd::ABORTED) {
        const Head &head = s->held_head;
        bool header_only = response_is_header_only(head.status) || s->request.method == "HEAD";
        bool ended_empty = st.end == BeamEnd::COMPLETE && st.buffered == 0;
        /* A final head with no body byte yet and no end waits here: when
         * the body turns out empty, END_STREAM can still ride the HEADERS
         * (DESIGN.md invariant 4) instead of a zero-length DATA frame. */
        /* A WebSocket's 200 opens a tunnel whose first bytes may be the
         * client's: it leaves at once (RFC 8441 §5). */
        bool tunnel = s->task && s->task->websocket && head.status == HTTP_OK;
        if (header_only || ended_empty || st.buffered > 0 || tunnel) {
            char status[4];
            response_to_nv(head, false, status, &nva_);
            s->response_submitted = true;
            s->head_held = false;
            if (header_only || (ended_empty && !st.has_trailers)) {
                /* No body, no trailers: END_STREAM on the HEADERS. */
                nghttp2_submit_response(ngh2_, s->id, nva_.data(), nva_.size(), nullptr);
            }
            else if (ended_empty) {
                /* Trailers only (a gRPC error): HEADERS, then HEADERS[ES]. */
                nghttp2_submit_headers(ngh2_, NGHTTP2_FLAG_NONE, s->id, nullptr, nva_.data(),
                                       nva_.size(), nullptr);
                Head trailers;
                s->out->take_trailers(&trailers);
                response_to_nv(trailers, true, status, &nva_);
                nghttp2_submit_trailer(ngh2_, s->id, nva_.data(), nva_.size());
            }
            else {
                nghttp2_data_provider provider;
                provider.source.ptr = s;
                provider.read_callback = cb_on_data_read;
                nghttp2_submit_response(ngh2_, s->id, nva_.data(), nva_.size(), &provider);
            }
            s->held_head = Head();
        }
    }
    if (st.end == BeamEnd::ABORTED) {
        if (st.reason != AbortReason::PEER_RESET && st.reason != AbortReason::CONN_GONE) {
            ap_log_cerror(APLOG_MARK, APLOG_DEBUG, 0, c1_, H2XLOGNO(10016)
                          "h2x_stream(%ld-%d): resetting: %s", c1_->id, s->id,
                          abort_reason_name(st.reason));
            /* RFC 9113 §8.2.2/§9.2.1: HTTP_1_1_REQUIRED asks the client to
             * retry over HTTP/1.1 (mod_ssl's per-location client certs). */
            reset(s, st.reason == AbortReason::HTTP11_REQUIRED ? NGHTTP2_HTTP_1_1_REQUIRED
                                                                : NGHTTP2_INTERNAL_ERROR);
        }
        return;
    }
    if (s->response_submitted && s->deferred
        && (st.buffered > 0 || st.end != BeamEnd::OPEN || st.has_trailers)) {
        s->deferred = false;
        ap_log_cerror(APLOG_MARK, APLOG_TRACE3, 0, c1_,
                      "h2x_stream(%ld-%d): data resumed, %lu bytes waiting", c1_->id, s->id,
                      static_cast<unsigned long>(st.buffered));
        nghttp2_session_resume_data(ngh2_, s->id);
    }
    if (s->c2_done && !s->response_submitted && s->end == StreamEnd::NONE) {
        /* c2 ended without any response: never leave the stream parked. */
        reset(s, NGHTTP2_INTERNAL_ERROR);
    }
}

void Session::process_input_consumed(Stream *s) noexcept
{
    if (!s->in || s->closed) {
        return;
    }
    Beam::State st = s->in->state();
    if (st.received > s->in_consumed) {
        grow_in_window(s, st);
        nghttp2_session_consume(ngh2_, s->id, static_cast<size_t>(st.received - s->in_consumed));
        s->in_consumed = st.received;
    }
}

/* A request body's window grows while the handler outpaces it (RFC 9113
 * §5.2.2: the receiver sizes its windows; §6.9.2 lets it raise one with
 * WINDOW_UPDATE at any time). With one fixed H2WindowSize window, a fast
 * reader - mod_proxy_http2 passing an upload on, which backs off on a
 * timer whenever its input is empty - waits a round trip for every window.
 * So when the handler has taken every byte that arrived (`in` is empty)
 * while the client is held back by the window (less than a quarter of it
 * left: a WINDOW_UPDATE goes out after half of it was consumed, so a
 * client that keeps up never gets that low), the window doubles, up to
 * IN_WINDOW_MAX. A client that is slower than its handler has most of its
 * window left whenever the handler catches up, so its window stays as
 * configured. Memory stays bounded by the connection window, which every
 * stream's buffered body counts against. */
void Session::grow_in_window(Stream *s, const Beam::State &in) noexcept
{
    int32_t max = std::min(IN_WINDOW_MAX, conn_window_);
    if (in.buffered > 0 || in.end != BeamEnd::OPEN || s->in_window >= max
        || s->state != StreamState::OPEN) {
        return;
    }
    int32_t left = nghttp2_session_get_stream_local_window_size(ngh2_, s->id);
    if (left >= s->in_window / 4) {
        return;
    }
    int32_t grown = static_cast<int32_t>(std::min<int64_t>(int64_t{s->in_window} * 2, max));
    /* First room in the beam, then the window that lets the client fill it. */
    s->in->grow(static_cast<std::size_t>(grown) + IN_SLACK);
    if (nghttp2_session_set_local_window_size(ngh2_, NGHTTP2_FLAG_NONE, s->id, grown) == 0) {
        ap_log_cerror(APLOG_MARK, APLOG_TRACE2, 0, c1_,
                      "h2x_stream(%ld-%d): request body window %d -> %d", c1_->id, s->id,
                      static_cast<int>(s->in_window), static_cast<int>(grown));
        s->in_window = grown;
    }
}

void Session::process_news() noexcept
{
    mplx_->c1_take_pending(&news_, &done_);
    for (int32_t id : done_) {
        Stream *s = find(id);
        if (s) {
            s->c2_done = true;
            if (!s->closed) {
                status_.stream_update(id, "sending");
            }
            stop_unread_body(s);
            if (s->in && !s->closed) {
                /* What the handler left unread is given back to flow
                 * control, and the rest of the body is not wanted. */
                s->in->abort(AbortReason::CONN_GONE);
                if (s->in_received > s->in_consumed) {
                    nghttp2_session_consume(ngh2_, s->id,
                                            static_cast<size_t>(s->in_received - s->in_consumed));
                    s->in_consumed = s->in_received;
                }
            }
        }
    }
    for (int32_t id : news_) {
        Stream *s = find(id);
        if (s) {
            process_input_consumed(s);
            process_output(s);
        }
    }
    for (int32_t id : done_) {
        Stream *s = find(id);
        if (s) {
            process_output(s);
            maybe_destroy(s);
        }
    }
    news_.clear();
    done_.clear();
}

void Session::maybe_destroy(Stream *s) noexcept
{
    if (!s->can_destroy()) {
        return;
    }
    if (s->end == StreamEnd::NONE) {
        ap_log_cerror(APLOG_MARK, APLOG_ERR, 0, c1_, H2XLOGNO(10017)
                      "h2x_stream(%ld-%d): BUG: destroyed without an end record", c1_->id, s->id);
        H2X_BUG_ABORT();
    }
    streams_.erase(s->id);
}

bool Session::read_input() noexcept
{
    input_pending_ = false;
    for (int round = 0; round < READ_ROUNDS; ++round) {
        apr_brigade_cleanup(in_bb_);
        apr_status_t rv = ap_get_brigade(c1_->input_filters, in_bb_, AP_MODE_READBYTES,
                                         APR_NONBLOCK_READ, READ_MAX);
        if (APR_STATUS_IS_EAGAIN(rv)) {
            return true;
        }
        if (rv != APR_SUCCESS) {
            ap_log_cerror(APLOG_MARK, APLOG_TRACE1, rv, c1_, "h2x_session(%ld): read ended",
                          c1_->id);
            return false;
        }
        bool got = false;
        apr_size_t read = 0;
        for (apr_bucket *b = APR_BRIGADE_FIRST(in_bb_); b != APR_BRIGADE_SENTINEL(in_bb_);
             b = APR_BUCKET_NEXT(b)) {
            if (APR_BUCKET_IS_EOS(b)) {
                return false;
            }
            if (APR_BUCKET_IS_METADATA(b)) {
                continue;
            }
            const char *data;
            apr_size_t len;
            if (apr_bucket_read(b, &data, &len, APR_BLOCK_READ) != APR_SUCCESS) {
                return false;
            }
            if (!len) {
                continue;
            }
            got = true;
            read += len;
            if (terminating_) {
                /* A GOAWAY that ends the session is queued (a limit was
                 * hit): nothing more of this client is looked at; the
                 * GOAWAY leaves with the next write. */
                return true;
            }
            const auto *bytes = reinterpret_cast<const uint8_t *>(data);
            uint32_t gate_error = 0;
            apr_size_t pass = gate_.pass(bytes, len,
                                         nghttp2_session_get_local_settings(
                                             ngh2_, NGHTTP2_SETTINGS_MAX_FRAME_SIZE),
                                         &gate_error);
            ssize_t n = pass ? nghttp2_session_mem_recv(ngh2_, bytes, pass) : 0;
            if (n >= 0 && gate_error) {
                ap_log_cerror(APLOG_MARK, APLOG_DEBUG, 0, c1_, H2XLOGNO(10043)
                              "h2x_session(%ld): %s: closing the connection "
                              "(FRAME_SIZE_ERROR, RFC 9113 §4.2)", c1_->id,
                              gate_.describe_stop().c_str());
                if (!goaway_sent_) {
                    goaway_sent_ = true;
                    nghttp2_session_terminate_session(ngh2_, gate_error);
                }
                terminating_ = true;
                write_output();
                return false;
            }
            if (n < 0) {
                ap_log_cerror(APLOG_MARK, APLOG_DEBUG, 0, c1_, H2XLOGNO(10018)
                              "h2x_session(%ld): protocol error: %s", c1_->id,
                              nghttp2_strerror(static_cast<int>(n)));
                if (!goaway_sent_) {
                    nghttp2_submit_goaway(ngh2_, NGHTTP2_FLAG_NONE,
                                          nghttp2_session_get_last_proc_stream_id(ngh2_),
                                          n == NGHTTP2_ERR_FLOODED ? NGHTTP2_ENHANCE_YOUR_CALM
                                                                   : NGHTTP2_PROTOCOL_ERROR,
                                          nullptr, 0);
                    goaway_sent_ = true;
                }
                terminating_ = true;
                write_output();
                return false;
            }
        }
        if (!got) {
            return true;
        }
        if (!tls_ && read < READ_MAX) {
            /* core's input filter reads the socket until it has READ_MAX
             * or the socket says EAGAIN: less means it is drained (an
             * EOF shows on the next poll). Over TLS mod_ssl may hold
             * decrypted bytes back, so it is always asked again. */
            return true;
        }
    }
    /* Still reading at the round limit: the rest may already be off the
     * socket, in mod_ssl's or core's input filter (mod_ssl hands out at
     * most 8 KiB per read), where neither the MPM's poll nor c1_wait()
     * sees it. */
    input_pending_ = true;
    return true;
}

bool Session::write_output() noexcept
{
    /* Frames are coalesced into writes of up to OUT_FLUSH bytes; everything
     * nghttp2 has to send goes out before c1 sleeps again. */
    for (;;) {
        for (;;) {
            const uint8_t *data;
            ssize_t n = nghttp2_session_mem_send(ngh2_, &data);
            if (n < 0) {
                ap_log_cerror(APLOG_MARK, APLOG_DEBUG, 0, c1_, H2XLOGNO(10019)
                              "h2x_session(%ld): mem_send: %s", c1_->id,
                              nghttp2_strerror(static_cast<int>(n)));
                return false;
            }
            if (n > 0) {
                std::size_t at = out_buf_.size();
                out_buf_.append(reinterpret_cast<const char *>(data), static_cast<std::size_t>(n));
                patch_settings(at);
            }
            /* n == 0: nothing more now, or on_send_data() paused to let
             * the buffer be flushed; the outer loop then asks again. */
            if (n == 0 || out_buf_.size() >= OUT_FLUSH) {
                break;
            }
        }
        if (out_buf_.empty()) {
            return true;
        }
        if (on_loop_ && !loop_may_flush()) {
            loop_blocked_ = true;
            return true;
        }
        if (!flush_output()) {
            return false;
        }
    }
}

/* On the event loop: may out_buf_ go to the socket without blocking the
 * loop's thread? The socket's send queue (SIOCOUTQ: bytes not yet
 * acknowledged) plus this write must fit in half its send buffer (the
 * kernel counts buffer overhead too; SO_SNDBUF only grows, so it is read
 * again only when the write does not seem to fit), and one turn writes at
 * most LOOP_TURN_MAX. TLS adds a few bytes per record; the margin
 * covers them. */
bool Session::loop_may_flush() noexcept
{
    std::size_t want = out_buf_.size() + 1024;
    if (loop_written_ + want > LOOP_TURN_MAX) {
        return false;
    }
    apr_os_sock_t fd = -1;
    apr_socket_t *sock = ap_get_conn_socket(c1_);
    if (!sock || apr_os_sock_get(&fd, sock) != APR_SUCCESS || fd < 0) {
        return false;
    }
    int queued = 0;
    if (ioctl(fd, SIOCOUTQ, &queued) != 0) {
        return false;
    }
    std::size_t need = (static_cast<std::size_t>(queued) + want) * 2;
    if (need > static_cast<std::size_t>(loop_sndbuf_)) {
        socklen_t len = sizeof(loop_sndbuf_);
        if (getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &loop_sndbuf_, &len) != 0
            || need > static_cast<std::size_t>(loop_sndbuf_)) {
            return false;
        }
    }
    loop_written_ += out_buf_.size();
    return true;
}

/* Our first SETTINGS frame gets SETTINGS_MAX_CONCURRENT_STREAMS added (see
 * init()): a 6-byte entry, and the frame's length grows by 6. */
void Session::patch_settings(std::size_t at) noexcept
{
    if (settings_patched_ || out_buf_.size() - at < 9
        || static_cast<uint8_t>(out_buf_[at + 3]) != NGHTTP2_SETTINGS
        || (static_cast<uint8_t>(out_buf_[at + 4]) & NGHTTP2_FLAG_ACK)) {
        return;
    }
    settings_patched_ = true;
    uint32_t len = (static_cast<uint8_t>(out_buf_[at]) << 16)
                   | (static_cast<uint8_t>(out_buf_[at + 1]) << 8)
                   | static_cast<uint8_t>(out_buf_[at + 2]);
    uint32_t nlen = len + 6;
    out_buf_[at] = static_cast<char>((nlen >> 16) & 0xff);
    out_buf_[at + 1] = static_cast<char>((nlen >> 8) & 0xff);
    out_buf_[at + 2] = static_cast<char>(nlen & 0xff);
    uint32_t v = static_cast<uint32_t>(max_streams_);
    const char entry[6] = {0, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS,
                           static_cast<char>(v >> 24), static_cast<char>(v >> 16),
                           static_cast<char>(v >> 8), static_cast<char>(v)};
    out_buf_.insert(at + 9 + len, entry, 6);
}

bool Session::flush_output() noexcept
{
    apr_brigade_cleanup(out_bb_);
    apr_time_t now = apr_time_now();
    if (tls_ && tls_cooldown_ > 0 && now - last_write_ > tls_cooldown_) {
        /* H2TLSCoolDownSecs: after a pause the path may have cooled down
         * (congestion window); start with small records again. */
        tls_warm_bytes_ = 0;
    }
    last_write_ = now;
    std::size_t record = out_buf_.size();
    if (tls_ && tls_warm_bytes_ < tls_warmup_size_) {
        /* H2TLSWarmUpSize: until that much went out, one TLS record per
         * ~1300 bytes (fits one TCP segment), so a client can decrypt what
         * arrived without waiting for a 16 KB record's last packet. Each
         * bucket becomes its own SSL_write, hence its own record. */
        record = 1300;
        tls_warm_bytes_ += static_cast<apr_int64_t>(out_buf_.size());
    }
    for (std::size_t off = 0; off < out_buf_.size(); off += record) {
        std::size_t len = std::min(record, out_buf_.size() - off);
        APR_BRIGADE_INSERT_TAIL(out_bb_, apr_bucket_transient_create(out_buf_.data() + off, len,
                                                                      c1_->bucket_alloc));
    }
    APR_BRIGADE_INSERT_TAIL(out_bb_, apr_bucket_flush_create(c1_->bucket_alloc));
    apr_status_t rv = ap_pass_brigade(c1_->output_filters, out_bb_);
    apr_brigade_cleanup(out_bb_);
    out_buf_.clear();
    if (rv != APR_SUCCESS) {
        ap_log_cerror(APLOG_MARK, APLOG_TRACE1, rv, c1_, "h2x_session(%ld): write failed",
                      c1_->id);
        return false;
    }
    return true;
}

void Session::start_shutdown(uint32_t error) noexcept
{
    if (goaway_sent_) {
        return;
    }
    goaway_sent_ = true;
    int32_t last = nghttp2_session_get_last_proc_stream_id(ngh2_);
    ap_log_cerror(APLOG_MARK, APLOG_DEBUG, 0, c1_, H2XLOGNO(10020)
                  "h2x_session(%ld): GOAWAY last_stream_id=%d error=%u", c1_->id, last, error);
    nghttp2_submit_goaway(ngh2_, NGHTTP2_FLAG_NONE, last, error, nullptr, 0);
}

/* DESIGN.md invariant 6: a response whose DATA waits on the client's
 * flow-control window longer than the IO timeout is reset, even when the
 * handler already finished (then no c2 is left to time out). */
void Session::check_blocked_output(apr_time_t now) noexcept
{
    if (now - last_blocked_check_ < apr_time_from_msec(500)) {
        return;
    }
    last_blocked_check_ = now;
    int32_t conn_window = nghttp2_session_get_remote_window_size(ngh2_);
    for (auto &kv : streams_) {
        Stream *s = kv.second.get();
        if (s->stop_body_at && !s->closed && now - s->stop_body_at >= STOP_BODY_GRACE) {
            reset(s, NGHTTP2_NO_ERROR);
        }
        if (s->closed || !s->response_submitted || s->rst_submitted || !s->out) {
            continue;
        }
        Beam::State st = s->out->state();
        bool blocked = st.buffered > 0
                       && (conn_window <= 0
                           || nghttp2_session_get_stream_remote_window_size(ngh2_, s->id) <= 0);
        if (!blocked || st.received != s->blocked_sent) {
            /* Not blocked, or the client took data since: a slow reader
             * is not a stalled one. */
            s->blocked_since = blocked ? now : 0;
            s->blocked_sent = st.received;
            continue;
        }
        if (!s->blocked_since) {
            s->blocked_since = now;
            continue;
        }
        apr_interval_time_t limit = stream_timeout(nullptr, server_);
        if (now - s->blocked_since > limit) {
            ap_log_cerror(APLOG_MARK, APLOG_DEBUG, 0, c1_, H2XLOGNO(10023)
                          "h2x_stream(%ld-%d): client window closed longer than the "
                          "timeout, resetting", c1_->id, s->id);
            s->out->abort(AbortReason::TIMEOUT);
            reset(s, NGHTTP2_INTERNAL_ERROR);
        }
    }
}

/* Streams whose short DATA frame waited out its hold send it now.
 * Call before write_output(). */
void Session::release_held_output(apr_time_t now) noexcept
{
    for (auto &kv : streams_) {
        Stream *s = kv.second.get();
        if (s->hold_until && !s->closed && s->deferred && now >= s->hold_until) {
            s->deferred = false;
            nghttp2_session_resume_data(ngh2_, s->id);
        }
    }
}

/* How long until the next hold ends, or -1 when nothing is held. */
apr_interval_time_t Session::next_hold_end(apr_time_t now) const noexcept
{
    apr_interval_time_t next = -1;
    for (const auto &kv : streams_) {
        const Stream *s = kv.second.get();
        if (!s->hold_until || s->closed || !s->deferred) {
            continue;
        }
        apr_interval_time_t left = s->hold_until > now ? s->hold_until - now : 0;
        if (next < 0 || left < next) {
            next = left;
        }
    }
    return next;
}

RunResult Session::run(bool may_suspend, bool on_loop, bool park) noexcept
{
    if (!mplx_->c1_attach()) {
        teardown();
        return RunResult::CLOSED;
    }
    on_loop_ = on_loop;
    park_ = park && loop_waker_;
    loop_blocked_ = false;
    loop_written_ = 0;
    RunResult result = run_attached(may_suspend);
    on_loop_ = false;
    mplx_->c1_detach();
    return result;
}

RunResult Session::run_attached(bool may_suspend) noexcept
{
    apr_interval_time_t keepalive = server_->keep_alive_timeout;
    if (idle_.wake()) {
        /* IdleWatch expired the parked connection: idle for
         * KeepAliveTimeout, or the child stops gracefully. Its read side is
         * shut down; RFC 9113 §6.8: say GOAWAY, then close. */
        ap_log_cerror(APLOG_MARK, APLOG_TRACE1, 0, c1_,
                      "h2x_session(%ld): idle connection expired", c1_->id);
        start_shutdown(NGHTTP2_NO_ERROR);
        write_output();
        teardown();
        return RunResult::CLOSED;
    }
    for (;;) {
        if (!read_input()) {
            break;
        }
        if (on_loop_ && !ready_.empty() && !loop_may_start()) {
            /* A thread that may wait starts them. */
            return RunResult::NEEDS_THREAD;
        }
        start_ready();
        process_news();
        int mpm_state = AP_MPMQ_RUNNING;
        if (ap_mpm_query(AP_MPMQ_MPM_STATE, &mpm_state) == APR_SUCCESS
            && mpm_state == AP_MPMQ_STOPPING) {
            /* DESIGN.md invariant 8: stop taking streams, finish the others. */
            start_shutdown(NGHTTP2_NO_ERROR);
        }
        check_blocked_output(apr_time_now());
        if (ws_seen_) {
            check_ws_shutdown();
        }
        release_held_output(apr_time_now());
        if (!write_output()) {
            break;
        }
        if (loop_blocked_) {
            /* The rest of out_buf_ goes out from a thread that may block. */
            return RunResult::NEEDS_THREAD;
        }
        if (!nghttp2_session_want_read(ngh2_) && !nghttp2_session_want_write(ngh2_)) {
            break;
        }
        if (input_pending_) {
            /* Input left in c1's filters: read on now, neither yield (the
             * MPM polls the socket only) nor wait (the same). Uploads over
             * TLS stalled a second here, test_593_08. */
            continue;
        }
        if (open_streams_ == 0 && mplx_->c1_running() == 0) {
            if (goaway_sent_) {
                break;
            }
            apr_time_t now = apr_time_now();
            if (state_ != SessionState::IDLE) {
                /* Only streams count as activity, not PINGs or SETTINGS. */
                state_ = SessionState::IDLE;
                idle_since_ = now;
            }
            else if (now - idle_since_ >= keepalive) {
                /* DESIGN.md: idle for KeepAliveTimeout: GOAWAY(NO_ERROR). */
                start_shutdown(NGHTTP2_NO_ERROR);
                write_output();
                break;
            }
            out_buf_.trim(OUT_KEEP_IDLE);
            if (may_suspend) {
                /* Idle: give the thread back to the MPM at once. It watches
                 * the socket (KeepAliveTimeout) and calls us again when the
                 * client sends more; see pre_close(). Holding on to the
                 * thread for even a few ms lets busy keep-alive connections
                 * bypass the listener, whose accept queue then starves
                 * (docs/performance.md, "New connections under load"). */
                return RunResult::YIELDED;
            }
        }
        else {
            state_ = goaway_sent_ ? SessionState::DRAINING : SessionState::BUSY;
        }
        apr_interval_time_t wait = apr_time_from_sec(1);
        if (state_ == SessionState::IDLE) {
            /* Only a thread that may not suspend (sync MPM, h2c Upgrade)
             * gets here idle: it waits out KeepAliveTimeout itself. */
            apr_interval_time_t left = keepalive - (apr_time_now() - idle_since_);
            wait = std::max<apr_interval_time_t>(std::min(wait, left), 1000);
        }
        if (ws_seen_) {
            /* check_ws_shutdown() has no wake-up of its own. */
            wait = std::min<apr_interval_time_t>(wait, apr_time_from_msec(100));
        }
        if (!ready_.empty()) {
            /* Requests waiting for the pool's reserve (start_ready()):
             * other connections' tasks end without waking this one. */
            wait = std::min(wait, WAIT_RECHECK);
        }
        apr_interval_time_t held = next_hold_end(apr_time_now());
        if (held >= 0) {
            wait = std::min<apr_interval_time_t>(wait, std::max<apr_interval_time_t>(held, 100));
        }
        if (park_ && !on_loop_) {
            /* A worker: while the streams' news comes quickly (a transfer
             * in full flow), go on here; park only after PARK_AFTER with
             * nothing to do - each parking costs a hand-off back. */
            apr_time_t t0 = apr_time_now();
            bool readable = mplx_->c1_wait(std::min(wait, PARK_AFTER));
            if (readable || apr_time_now() - t0 < PARK_AFTER) {
                continue;
            }
        }
        if (park_) {
            /* Wait in the event loop, not on a thread: the streams' news
             * wakes it (through the Mplx), so does the client; the loop
             * runs the next turn by wait_deadline() at the latest. */
            if (mplx_->c1_park(loop_waker_, loop_waker_arg_)) {
                wait_deadline_ = apr_time_now() + wait;
                return RunResult::WAITING;
            }
            continue; /* news came in meanwhile */
        }
        if (on_loop_) {
            /* The event loop does not wait for one connection. */
            return RunResult::NEEDS_THREAD;
        }
        mplx_->c1_wait(wait);
    }
    teardown();
    return RunResult::CLOSED;
}

void Session::pre_close() noexcept
{
    if (state_ == SessionState::FINISHED) {
        return;
    }
    /* The MPM closes an idle connection (KeepAliveTimeout, graceful
     * restart): say so first, RFC 9113 §6.8. */
    start_shutdown(NGHTTP2_NO_ERROR);
    write_output();
    teardown();
}

bool Session::park_idle() noexcept
{
    /* The MPM's I/O queue closes a connection after `Timeout` (the main
     * server's, which the connection's MPM record starts with, or its
     * own): a KeepAliveTimeout longer than that is only kept in the
     * keep-alive queue. */
    apr_interval_time_t keepalive = server_->keep_alive_timeout;
    if (keepalive >= ap_server_conf->timeout || keepalive >= c1_->base_server->timeout) {
        return false;
    }
    return idle_.park(ap_get_conn_socket(c1_), idle_since_ + keepalive);
}

void Session::teardown() noexcept
{
    if (state_ == SessionState::FINISHED) {
        return;
    }
    state_ = SessionState::FINISHED;
    /* Before the MPM closes the socket: IdleWatch must not touch it then. */
    idle_.unlink();
    log_summary("closed");
    /* Every stream still here ends now; workers stop at their next IO. */
    for (auto &kv : streams_) {
        Stream *s = kv.second.get();
        abandon(s, AbortReason::CONN_GONE);
        if (s->end == StreamEnd::NONE) {
            s->end = StreamEnd::CONNECTION_GONE;
        }
    }
    mplx_->c1_join_all();
    streams_.clear();
}


} // namespace h2x
