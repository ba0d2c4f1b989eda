/* h2x_ws.cpp: see h2x_ws.h. */
#include "h2x_private.h"
#include "h2x_ws.h"

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <sys/socket.h>
#include <unistd.h>

#include <apr_base64.h>
#include <apr_optional.h>
#include <apr_poll.h>
#include <apr_sha1.h>
#include <apr_strings.h>

#include <http_core.h>
#include <http_log.h>
#include <http_protocol.h>

#include "h2x_c2.h"
#include "h2x_config.h"
#include "h2x_conn_ctx.h"

/* mod_http2's optional function (mod_http2.h), for modules written
 * against httpd versions without ap_get_pollfd_from_conn(). */
APR_DECLARE_OPTIONAL_FN(apr_status_t, http2_get_pollfd_from_conn,
                        (conn_rec *c, struct apr_pollfd_t *pfd,
                         apr_interval_time_t *ptimeout));

namespace h2x {

WsWake::~WsWake() noexcept
{
    for (int &fd : fds_) {
        if (fd >= 0) {
            ::close(fd);
            fd = -1;
        }
    }
}

bool WsWake::open() noexcept
{
    if (is_open()) {
        return true;
    }
    /* A socket pair, not a pipe: the tunnel (ap_proxy_tunnel_run) first
     * waits for its client side to be writable, which a pipe's read end
     * never is; a socket's is, and it is readable once c1 wrote. */
    return ::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds_) == 0
           || (fds_[0] = fds_[1] = -1, false);
}

void WsWake::wake() noexcept
{
    if (fds_[1] < 0) {
        return;
    }
    const char one = 1;
    ssize_t n;
    do {
        n = ::send(fds_[1], &one, 1, MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    /* EAGAIN: the buffer is full, hence readable: the reader is awake. */
}

void WsWake::drain() noexcept
{
    if (fds_[0] < 0) {
        return;
    }
    char buf[256];
    for (;;) {
        ssize_t n = ::recv(fds_[0], buf, sizeof(buf), 0);
        if (n > 0) {
            continue;
        }
        if (n < 0 && errno == EINTR) {
            continue;
        }
        return;
    }
}

bool WsWake::peer_shut() const noexcept
{
    if (fds_[1] < 0) {
        return false;
    }
    char c;
    /* Nothing else is ever written towards this end: 0 is the shutdown. */
    return ::recv(fds_[1], &c, 1, MSG_DONTWAIT | MSG_PEEK) == 0;
}

namespace {

/* RFC 6455 §1.3 / §4.2.2: the GUID appended to the key. */
const char WS_GUID[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/* base64(SHA-1(key + GUID)): the Sec-WebSocket-Accept for `key`. */
std::string ws_accept_for(const std::string &key) noexcept
{
    apr_sha1_ctx_t sha;
    unsigned char digest[APR_SHA1_DIGESTSIZE];
    apr_sha1_init(&sha);
    apr_sha1_update(&sha, key.data(), static_cast<unsigned int>(key.size()));
    apr_sha1_update(&sha, WS_GUID, sizeof(WS_GUID) - 1);
    apr_sha1_final(digest, &sha);
    char out[64];
    int len = apr_base64_encode(out, reinterpret_cast<const char *>(digest), sizeof(digest));
    return std::string(out, len > 0 ? static_cast<std::size_t>(len - 1) : 0);
}

const std::string *field(const Head &head, const char *name) noexcept
{
    for (const auto &f : head.fields) {
        if (!strcasecmp(f.first.c_str(), name)) {
            return &f.second;
        }
    }
    return nullptr;
}

void remove_field(Head *head, const char *name) noexcept
{
    auto &fields = head->fields;
    fields.erase(std::remove_if(fields.begin(), fields.end(),
                                [name](const std::pair<std::string, std::string> &f) {
                                    return !strcasecmp(f.first.c_str(), name);
                                }),
                 fields.end());
}

/* A body-less 502: the target is no WebSocket (RFC 8441 leaves the
 * status open; mod_http2 answers 502 too). */
void make_bad_gateway(Head *head) noexcept
{
    head->status = HTTP_BAD_GATEWAY;
    head->fields.clear();
    head->fields.emplace_back("content-length", "0");
}

C2Task *ws_task(conn_rec *c) noexcept
{
    ConnCtx *ctx;
    if (!c || !c->master || !(ctx = conn_ctx(c)) || !ctx->task) {
        return nullptr;
    }
    C2Task *task = ctx->task;
    return task->websocket && task->ws_wake.is_open() ? task : nullptr;
}

/* The get_pollfd_from_conn hook (httpd >= 2.4.58): the WebSocket stream's
 * input as something a pollset can wait on. */
apr_status_t ws_get_pollfd(conn_rec *c, apr_pollfd_t *pfd, apr_interval_time_t *ptimeout)
{
    C2Task *task = ws_task(c);
    if (!task) {
        return DECLINED;
    }
    /* The c2's socket is the pair's read end (C2Task::process()). */
    apr_socket_t *sock = ap_get_conn_socket(c);
    if (!sock) {
        return APR_ENOTIMPL;
    }
    pfd->desc_type = APR_POLL_SOCKET;
    pfd->desc.s = sock;
    if (ptimeout) {
        *ptimeout = task->timeout;
    }
    return APR_SUCCESS;
}

apr_status_t http2_get_pollfd_from_conn(conn_rec *c, apr_pollfd_t *pfd,
                                        apr_interval_time_t *ptimeout)
{
    apr_status_t rv = ws_get_pollfd(c, pfd, ptimeout);
    return rv == DECLINED ? APR_ENOTIMPL : rv;
}

} // namespace

bool ws_is_extended_connect(const Request &req) noexcept
{
    return req.method == "CONNECT" && !req.protocol.empty();
}

int ws_prepare_request(request_rec *r, C2Task *task) noexcept
{
    const Request &req = *task->request;
    if (req.protocol != "websocket" || server_config(r->server).websockets <= 0) {
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, H2XLOGNO(10033)
                      "h2x_c2(%s): extended CONNECT for :protocol '%s' refused (%s)",
                      r->connection->log_id, req.protocol.c_str(),
                      req.protocol != "websocket" ? "unknown protocol"
                                                  : "H2WebSockets off for this host");
        return HTTP_NOT_IMPLEMENTED;
    }
    /* RFC 6455 §4.1: a random 16-byte nonce, base64. It only has to match
     * the handler's answer; the client never sees it. */
    unsigned char nonce[16];
    ap_random_insecure_bytes(nonce, sizeof(nonce));
    char key[32];
    int len = apr_base64_encode(key, reinterpret_cast<const char *>(nonce), sizeof(nonce));
    task->ws_key.assign(key, len > 0 ? static_cast<std::size_t>(len - 1) : 0);
    task->ws_accept = ws_accept_for(task->ws_key);
    apr_table_setn(r->headers_in, "Upgrade", "websocket");
    apr_table_mergen(r->headers_in, "Connection", "Upgrade");
    apr_table_setn(r->headers_in, "Sec-WebSocket-Key", apr_pstrdup(r->pool, task->ws_key.c_str()));
    ap_log_rerror(APLOG_MARK, APLOG_TRACE1, 0, r, "h2x_c2(%s): WebSocket CONNECT for %s",
                  r->connection->log_id, req.path.c_str());
    return OK;
}

bool ws_response_head(C2Task *task, Head *head, bool *upgraded, bool *no_body) noexcept
{
    *upgraded = false;
    *no_body = false;
    if (head->status == HTTP_SWITCHING_PROTOCOLS) {
        const std::string *accept = field(*head, "sec-websocket-accept");
        if (accept && *accept == task->ws_accept) {
            /* RFC 8441 §5: the handshake succeeded; the stream carries the
             * WebSocket from here on. */
            head->status = HTTP_OK;
            remove_field(head, "sec-websocket-accept");
            remove_field(head, "upgrade");
            remove_field(head, "connection");
            remove_field(head, "content-length");
            *upgraded = true;
            return true;
        }
        ap_log_cerror(APLOG_MARK, APLOG_DEBUG, 0, task->c2, H2XLOGNO(10034)
                      "h2x_c2(%s): WebSocket handshake answered 101 with %s "
                      "Sec-WebSocket-Accept: 502", task->c2->log_id,
                      accept ? "a wrong" : "no");
        make_bad_gateway(head);
        *no_body = true;
        return true;
    }
    if (head->status < 200) {
        return false; /* other interim responses travel as they are */
    }
    if (head->status < 300) {
        ap_log_cerror(APLOG_MARK, APLOG_DEBUG, 0, task->c2, H2XLOGNO(10035)
                      "h2x_c2(%s): WebSocket CONNECT answered %d, not 101: the "
                      "target is no WebSocket, 502", task->c2->log_id, head->status);
        make_bad_gateway(head);
        *no_body = true;
    }
    return true;
}

void ws_register_hooks() noexcept
{
    ap_hook_get_pollfd_from_conn(ws_get_pollfd, nullptr, nullptr, APR_HOOK_MIDDLE);
}

void ws_register_optional_fns() noexcept
{
    APR_REGISTER_OPTIONAL_FN(http2_get_pollfd_from_conn);
}

} // namespace h2x
