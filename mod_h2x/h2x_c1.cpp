/* h2x_c1.cpp: see h2x_c1.h. */
#include "h2x_private.h"
#include "h2x_c1.h"

#include <cstring>
#include <string>

#include <apr_base64.h>
#include <apr_lib.h>
#include <apr_poll.h>

#include <http_connection.h>
#include <http_core.h>
#include <http_protocol.h>
#include <http_ssl.h>
#include <ap_mpm.h>
#include <mpm_common.h>

#include "h2x_config.h"
#include "h2x_conn_ctx.h"
#include "h2x_conn_loop.h"
#include "h2x_idle_watch.h"
#include "h2x_session.h"

namespace h2x {

namespace {

/* RFC 9113 §3.4: the client connection preface. */
const char PREFACE[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const apr_size_t PREFACE_LEN = sizeof(PREFACE) - 1;

/* How long a connection that sent a proper prefix of the preface may take
 * for the rest before it is left to HTTP/1.1 (which then answers the
 * "PRI" request line with an error, as it would without mod_h2x). */
constexpr apr_interval_time_t PREFACE_REST_WAIT = 50 * 1000; /* 50 ms */

/* h2c with prior knowledge (H2Direct): does the connection start with the
 * preface? Peeks without consuming. A prefix of it (the preface split over
 * TCP segments, or a client that stalls half-way: the half-open preface
 * attack) waits for more bytes on the socket itself, one poll for at most
 * PREFACE_REST_WAIT in all - no timed retries, which cost a filter-chain
 * read and a thread wake-up each. */
bool starts_with_preface(conn_rec *c) noexcept
{
    apr_bucket_brigade *bb = apr_brigade_create(c->pool, c->bucket_alloc);
    apr_socket_t *sock = ap_get_conn_socket(c);
    apr_time_t deadline = 0;
    apr_size_t seen = 0;
    bool match = false;
    for (;;) {
        apr_brigade_cleanup(bb);
        apr_status_t rv = ap_get_brigade(c->input_filters, bb, AP_MODE_SPECULATIVE,
                                         APR_BLOCK_READ, PREFACE_LEN);
        if (rv != APR_SUCCESS) {
            break;
        }
        char buf[sizeof(PREFACE)];
        apr_size_t len = PREFACE_LEN;
        apr_brigade_flatten(bb, buf, &len);
        if (len == 0 || std::memcmp(buf, PREFACE, len) != 0) {
            break;
        }
        if (len == PREFACE_LEN) {
            match = true;
            break;
        }
        if (len <= seen) {
            /* Readable, yet no more bytes: the client closed. */
            break;
        }
        seen = len;
        /* A prefix of the preface so far: wait for more. */
        apr_time_t now = apr_time_now();
        if (!deadline) {
            deadline = now + PREFACE_REST_WAIT;
        }
        if (!sock || now >= deadline) {
            break;
        }
        apr_pollfd_t pfd = {};
        pfd.p = c->pool;
        pfd.desc_type = APR_POLL_SOCKET;
        pfd.reqevents = APR_POLLIN;
        pfd.desc.s = sock;
        apr_int32_t n = 0;
        if (apr_poll(&pfd, 1, &n, deadline - now) != APR_SUCCESS || n < 1) {
            break;
        }
    }
    apr_brigade_destroy(bb);
    return match;
}

int c1_process_connection(conn_rec *c) noexcept
{
    if (c->master || !active()) {
        return DECLINED;
    }
    ConnCtx *ctx = conn_ctx(c);
    if (!ctx || !ctx->protocol) {
        if (c->keepalives > 0) {
            return DECLINED;
        }
        if (ap_ssl_conn_is_ssl(c)) {
            /* Let the TLS handshake happen; ALPN calls our switch hook. */
            apr_bucket_brigade *bb = apr_brigade_create(c->pool, c->bucket_alloc);
            apr_status_t rv = ap_get_brigade(c->input_filters, bb, AP_MODE_INIT,
                                             APR_BLOCK_READ, 0);
            apr_brigade_destroy(bb);
            if (rv != APR_SUCCESS) {
                return DECLINED;
            }
            ctx = conn_ctx(c);
            if (!ctx || !ctx->protocol) {
                /* No ALPN choice: H2Direct lets a client that knows start
                 * with the preface over TLS too, as in mod_http2. */
                const char *alpn = ap_get_protocol(c);
                if ((alpn && std::strcmp(alpn, AP_PROTOCOL_HTTP1))
                    || !direct_enabled(c->base_server, true)
                    || !ap_is_allowed_protocol(c, nullptr, c->base_server, "h2")
                    || !starts_with_preface(c)) {
                    return DECLINED;
                }
                ctx = conn_ctx_ensure(c);
                ctx->protocol = "h2";
                ctx->server = c->base_server;
            }
        }
        else {
            if (!direct_enabled(c->base_server, false)
                || !ap_is_allowed_protocol(c, nullptr, c->base_server, "h2c")
                || !starts_with_preface(c)) {
                return DECLINED;
            }
            ctx = conn_ctx_ensure(c);
            ctx->protocol = "h2c";
            ctx->server = c->base_server;
        }
    }
    c1_run(c, ctx->server ? ctx->server : c->base_server, ctx->protocol, nullptr);
    return DONE;
}

/* ALPN and Upgrade: which of our protocols may this connection switch to? */
/* HTTP2-Settings is the base64url of a SETTINGS payload. */
bool http2_settings_valid(apr_pool_t *p, const char *value) noexcept
{
    std::string b64(value);
    for (char &ch : b64) {
        if (ch == '-') {
            ch = '+';
        }
        else if (ch == '_') {
            ch = '/';
        }
        else if (!apr_isalnum(ch) && ch != '+' && ch != '/' && ch != '=') {
            return false;
        }
    }
    while (b64.size() % 4) {
        b64.push_back('=');
    }
    char *buf = static_cast<char *>(apr_palloc(p, apr_base64_decode_len(b64.c_str()) + 1));
    int len = apr_base64_decode(buf, b64.c_str());
    return len >= 0 && len % 6 == 0;
}

int protocol_propose(conn_rec *c, request_rec *r, server_rec *s,
                     const apr_array_header_t *offers,
                     apr_array_header_t *proposals) noexcept
{
    if (c->master || !active() || std::strcmp(AP_PROTOCOL_HTTP1, ap_get_protocol(c))) {
        return DECLINED;
    }
    bool tls = ap_ssl_conn_is_ssl(c);
    const char *proto = tls ? "h2" : "h2c";
    if (r) {
        /* RFC 7540 §3.2: Upgrade needs exactly one HTTP2-Settings, named in
         * Connection. A request with a body is answered over HTTP/1.1. */
        if (tls || !upgrade_enabled(r)) {
            return DECLINED;
        }
        const char *settings = apr_table_get(r->headers_in, "HTTP2-Settings");
        const char *conn = apr_table_get(r->headers_in, "Connection");
        if (!settings || !conn || !ap_find_token(r->pool, conn, "http2-settings")) {
            return DECLINED;
        }
        /* RFC 7540 §3.2.1: exactly one HTTP2-Settings (httpd joins repeated
         * fields with ","), holding a whole number of 6-byte settings. */
        if (std::strchr(settings, ',') || !http2_settings_valid(r->pool, settings)) {
            return DECLINED;
        }
        const char *cl = apr_table_get(r->headers_in, "Content-Length");
        if ((cl && std::strcmp(cl, "0")) || apr_table_get(r->headers_in, "Transfer-Encoding")) {
            return DECLINED;
        }
    }
    else if (tls && server_config(s).modern_tls_only) {
        /* H2ModernTLSOnly: RFC 9113 §9.2 wants TLS 1.2 or later. The
         * handshake is still running: the version is what mod_ssl
         * negotiated so far. */
        const char *v = ap_ssl_var_lookup(c->pool, s, c, nullptr, "SSL_PROTOCOL");
        if (v && *v && std::strcmp(v, "TLSv1.2") && std::strcmp(v, "TLSv1.3")) {
            return DECLINED;
        }
    }
    if (!offers || ap_array_str_contains(offers, proto)) {
        APR_ARRAY_PUSH(proposals, const char *) = proto;
    }
    return DECLINED;
}

int protocol_switch(conn_rec *c, request_rec *r, server_rec *s, const char *protocol) noexcept
{
    if (c->master || !active() || (std::strcmp(protocol, "h2") && std::strcmp(protocol, "h2c"))) {
        return DECLINED;
    }
    ConnCtx *ctx = conn_ctx_ensure(c);
    ctx->protocol = std::strcmp(protocol, "h2") ? "h2c" : "h2";
    ctx->server = s;
    if (r) {
        /* h2c Upgrade: the 101 went out; the rest of this connection is
         * HTTP/2, with this request as stream 1. */
        ap_remove_input_filter_byhandle(r->input_filters, "http_in");
        ap_remove_output_filter_byhandle(r->output_filters, "HTTP_HEADER");
        c1_run(c, s, ctx->protocol, r);
    }
    return OK;
}

const char *protocol_get(const conn_rec *c) noexcept
{
    ConnCtx *ctx = conn_ctx(c);
    return ctx ? ctx->protocol : nullptr;
}

} // namespace

namespace {

/* The Session lives as long as the connection: between its turns the MPM
 * may hold an idle connection without a thread. */
apr_status_t session_cleanup(void *data) noexcept
{
    auto *c = static_cast<conn_rec *>(data);
    ConnCtx *ctx = conn_ctx(c);
    if (ctx && ctx->session && !ctx->in_run) {
        /* (A pool destroyed while run() is on the stack can only be a
         * process exiting from a signal handler, e.g. prefork's SIGTERM:
         * then the session is left to the exit, not torn down under the
         * thread that was interrupted inside it.) */
        delete ctx->session;
        ctx->session = nullptr;
    }
    return APR_SUCCESS;
}

void c1_child_stopping(apr_pool_t *, int graceful) noexcept
{
    if (graceful) {
        IdleWatch::child_stopping();
    }
    ConnLoop::child_stopping(graceful != 0);
}

int c1_pre_close(conn_rec *c) noexcept
{
    ConnCtx *ctx;
    if (!c->master && (ctx = conn_ctx(c)) && ctx->session) {
        ctx->session->pre_close();
    }
    return DECLINED;
}

} // namespace

void c1_run(conn_rec *c, server_rec *s, const char *protocol, request_rec *upgrade) noexcept
{
    ConnCtx *ctx = conn_ctx_ensure(c);
    if (!ctx->session) {
        ap_log_cerror(APLOG_MARK, APLOG_TRACE1, 0, c, "h2x_session(%ld): %s starts", c->id,
                      protocol);
        auto *session = new Session(c, s, protocol);
        if (!session->init(upgrade)) {
            ap_log_cerror(APLOG_MARK, APLOG_ERR, 0, c, H2XLOGNO(10021)
                          "h2x_session(%ld): cannot set up the HTTP/2 session", c->id);
            delete session;
            c->keepalive = AP_CONN_CLOSE;
            if (c->cs) {
                c->cs->state = CONN_STATE_LINGER;
            }
            return;
        }
        ctx->session = session;
        apr_pool_pre_cleanup_register(c->pool, c, session_cleanup);
    }
    ap_update_child_status_from_conn(static_cast<ap_sb_handle_t *>(c->sbh), SERVER_BUSY_READ, c);
    int async = 0;
    /* Suspending needs an MPM that can watch the idle connection for us, and
     * a session that is not running inside an HTTP/1.1 request (Upgrade). */
    bool may_suspend = !upgrade && c->cs && ap_mpm_query(AP_MPMQ_IS_ASYNC, &async) == APR_SUCCESS
                       && async;
    ctx->in_run = true;
    RunResult result = ctx->session->run(may_suspend, false);
    ctx->in_run = false;
    if (result == RunResult::YIELDED) {
        c->keepalive = AP_CONN_KEEPALIVE;
        if (!c->data_in_output_filters && ConnLoop::adopt(c, true)) {
            /* mod_h2x's event loop has it now (h2x_conn_loop.h). */
            c->cs->state = CONN_STATE_SUSPENDED;
            return;
        }
#ifdef AP_MPMQ_CAN_WAITIO
        if (!c->data_in_output_filters && ctx->session->park_idle()) {
            /* The MPM's I/O queue, not its keep-alive queue, which it
             * empties when it runs short of threads; h2x_idle_watch.h. */
            c->cs->state = CONN_STATE_ASYNC_WAITIO;
            c->cs->sense = CONN_SENSE_WANT_READ;
            return;
        }
#endif
        c->cs->state = CONN_STATE_WRITE_COMPLETION;
        c->cs->sense = CONN_SENSE_DEFAULT;
        return;
    }
    /* Detach before deleting: a prefork SIGTERM arriving inside the
     * destructor runs session_cleanup() from the signal handler, which
     * must not find the session a second time. */
    Session *done = ctx->session;
    ctx->session = nullptr;
    delete done;
    c->keepalive = AP_CONN_CLOSE;
    if (c->cs) {
        c->cs->state = CONN_STATE_LINGER;
    }
}

void c1_register_hooks() noexcept
{
    /* Before mod_ssl's and core's process_connection: we take over h2 ones. */
    ap_hook_process_connection(c1_process_connection, nullptr, nullptr, APR_HOOK_FIRST);
    ap_hook_protocol_propose(protocol_propose, nullptr, nullptr, APR_HOOK_MIDDLE);
    ap_hook_protocol_switch(protocol_switch, nullptr, nullptr, APR_HOOK_MIDDLE);
    ap_hook_protocol_get(protocol_get, nullptr, nullptr, APR_HOOK_MIDDLE);
    ap_hook_pre_close_connection(c1_pre_close, nullptr, nullptr, APR_HOOK_MIDDLE);
    ap_hook_child_stopping(c1_child_stopping, nullptr, nullptr, APR_HOOK_MIDDLE);
    ConnLoop::register_hooks();
}

} // namespace h2x
