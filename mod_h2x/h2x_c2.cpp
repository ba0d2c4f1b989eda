/* h2x_c2.cpp: see h2x_c2.h. */
#include "h2x_private.h"
#include "h2x_c2.h"

#include <atomic>
#include <cstring>

#include <http_connection.h>
#include <http_core.h>
#include <http_protocol.h>
#include <http_request.h>
#include <http_vhost.h>
#include <mpm_common.h>
#include <ap_mpm.h>
#include <apr_portable.h>
#include <apr_strings.h>

#include "h2x_c2_filter.h"
#include "h2x_config.h"
#include "h2x_conn_ctx.h"
#include "h2x_mplx.h"
#include "h2x_response.h"

namespace h2x {

namespace {

apr_socket_t *g_dummy_socket; /* per child: c2 connections have no socket */
module *g_mpm_module;         /* the MPM, whose conn config c2 shares with c1 */
module *g_ssl_module;         /* mod_ssl: c2 shares c1's TLS state for SSL_* vars */
pid_t g_pid;                  /* per child: for the c2 log ids */

std::atomic<unsigned long> g_c2_serial{0}; /* per child: c2 connections made */

/* A c2 id must differ from every other live connection's, in all children:
 * mod_cgid's daemon (one for the server) files each CGI's pid under the
 * id of the connection that started it, the handler asks for that pid
 * right after the start and kills it when the request ends. c1 ids do not
 * do: the event MPM gives a connection the number of the thread that
 * accepted it, and that thread goes on to accept more while the first
 * connection lives on, idle (test_580_03). So: bit 62 (above any c1 id),
 * the child's pid (22 bits, Linux's largest pid_max) and the child's
 * serial number of the c2 (40 bits). */
long c2_connection_id() noexcept
{
    static_assert(sizeof(long) >= 8, "c2 ids need a 64-bit long");
    constexpr unsigned long SERIAL_BITS = 40;
    unsigned long serial = g_c2_serial.fetch_add(1, std::memory_order_relaxed)
                           & ((1UL << SERIAL_BITS) - 1);
    unsigned long pid = static_cast<unsigned long>(g_pid) & ((1UL << 22) - 1);
    return static_cast<long>((1UL << 62) | (pid << SERIAL_BITS) | serial);
}

/* Each worker thread keeps one root pool with its own allocator: a c2
 * pool is its child, used and destroyed on that thread only, so its memory
 * goes back to a warm, unlocked allocator instead of to malloc. */
struct ThreadPool {
    apr_pool_t *pool = nullptr;
    ~ThreadPool()
    {
        if (pool) {
            apr_pool_destroy(pool);
        }
    }
};
thread_local ThreadPool t_pool;

apr_pool_t *thread_root_pool() noexcept
{
    if (!t_pool.pool) {
        apr_allocator_t *allocator;
        if (apr_allocator_create(&allocator) != APR_SUCCESS) {
            return nullptr;
        }
        /* Keep at most this much freed memory per worker thread. */
        apr_allocator_max_free_set(allocator, ap_max_mem_free ? ap_max_mem_free : 1024 * 1024);
        /* Unmanaged: not a child of APR's global pool. The thread's exit
         * destroys it (~ThreadPool); as a child of the global pool it
         * would be destroyed a second time when a child process exits
         * (apr_terminate()) while its detached workers are still
         * finishing - a segfault at shutdown. */
        if (apr_pool_create_unmanaged_ex(&t_pool.pool, nullptr, allocator) != APR_SUCCESS) {
            apr_allocator_destroy(allocator);
            t_pool.pool = nullptr;
            return nullptr;
        }
        apr_allocator_owner_set(allocator, t_pool.pool);
        apr_pool_tag(t_pool.pool, "h2x_worker");
        /* A c2 started on a c1 thread may finish on a worker
         * (h2x_c2_inline.h): its pool then allocates and is destroyed
         * there while this thread goes on with others. */
        apr_thread_mutex_t *mutex;
        if (apr_thread_mutex_create(&mutex, APR_THREAD_MUTEX_DEFAULT, t_pool.pool)
            == APR_SUCCESS) {
            apr_allocator_mutex_set(allocator, mutex);
        }
    }
    return t_pool.pool;
}

conn_rec *c2_create(conn_rec *c1, std::int32_t stream_id, apr_thread_t *thread) noexcept
{
    apr_pool_t *root = thread_root_pool();
    apr_pool_t *pool;
    if (!root || apr_pool_create(&pool, root) != APR_SUCCESS) {
        return nullptr;
    }
    apr_pool_tag(pool, "h2x_c2");

    auto *c2 = static_cast<conn_rec *>(apr_palloc(pool, sizeof(conn_rec)));
    *c2 = *c1;
    c2->master = c1;
    c2->pool = pool;
    c2->id = c2_connection_id();
    c2->conn_config = ap_create_conn_config(pool);
    c2->notes = apr_table_make(pool, 5);
    c2->input_filters = nullptr;
    c2->output_filters = nullptr;
    c2->sbh = nullptr;
    c2->bucket_alloc = apr_bucket_alloc_create(pool);
    c2->cs = nullptr;
    c2->data_in_input_filters = 0;
    c2->data_in_output_filters = 0;
    c2->clogging_input_filters = 1;
    c2->aborted = 0;
    /* One request per c2, thrown away afterwards: nothing to keep clean. */
    c2->keepalive = AP_CONN_CLOSE;
    c2->keepalives = 1;
    c2->log = nullptr;
    /* As mod_http2's H2_STREAM_TAG: child pid, c1 id, stream id. Not
     * unique (c1 ids repeat, see c2_connection_id()); for logs. */
    c2->log_id = apr_psprintf(pool, "%" APR_PID_T_FMT "-%ld-%d", g_pid, c1->id,
                              static_cast<int>(stream_id));
    c2->current_thread = thread;
    c2->outgoing = 0;
    ap_set_core_module_config(c2->conn_config, g_dummy_socket);
    if (g_mpm_module) {
        /* Not every MPM knows secondary connections: let them find their
         * per-connection state as on c1. */
        ap_set_module_config(c2->conn_config, g_mpm_module,
                             ap_get_module_config(c1->conn_config, g_mpm_module));
    }
    if (g_ssl_module) {
        /* The stream runs over c1's TLS: HTTPS, SSL_* variables, client
         * certificates and mod_ssl's access checks read it from here. */
        ap_set_module_config(c2->conn_config, g_ssl_module,
                             ap_get_module_config(c1->conn_config, g_ssl_module));
    }
    return c2;
}

/* Ends a request that failed before processing: passes the EOR bucket so
 * that logging and the request pool's destruction happen as usual. */
void end_request(request_rec *r) noexcept
{
    conn_rec *c = r->connection;
    apr_bucket_brigade *bb = apr_brigade_create(c->pool, c->bucket_alloc);
    APR_BRIGADE_INSERT_TAIL(bb, ap_bucket_eor_create(c->bucket_alloc, r));
    ap_pass_brigade(c->output_filters, bb);
    apr_brigade_destroy(bb);
}

/* Builds the request_rec from the HTTP/2 request, as ap_read_request would
 * from an HTTP/1.1 one. Returns null when the request was already answered
 * with an error (and ended). */
request_rec *create_request(C2Task *task, conn_rec *c2) noexcept
{
    const Request &req = *task->request;
    request_rec *r = ap_create_request(c2);
    int status = HTTP_OK;
    /* RFC 8441: an extended CONNECT runs as a GET for its :path (h2x_ws.h). */
    bool is_connect = req.method == "CONNECT" && !task->websocket;

    /* The HTTP/1 response formatter is replaced by ours (h2x_c2_filter). */
    c2_filter_setup_request(r);

    r->headers_in = apr_table_make(r->pool, static_cast<int>(req.fields.size()) + 2);
    for (const auto &f : req.fields) {
        apr_table_add(r->headers_in, f.first.c_str(), f.second.c_str());
    }
    if (!req.authority.empty() && !is_connect) {
        /* httpd routes and checks on Host: :authority stands for it. */
        apr_table_setn(r->headers_in, "Host", apr_pstrdup(r->pool, req.authority.c_str()));
    }
    if (!req.end_stream && !task->websocket && !apr_table_get(r->headers_in, "Content-Length")) {
        /* A body of unknown length: httpd's body readers (ap_setup_client_block,
         * mod_proxy) only read one when told it is chunked. Our input filter
         * delivers the plain bytes and the EOS; nothing parses chunks. */
        apr_table_mergen(r->headers_in, "Transfer-Encoding", "chunked");
    }
    ap_run_pre_read_request(r, c2);

    r->request_time = req.request_time;
    if (is_connect) {
        r->the_request = apr_psprintf(r->pool, "CONNECT %s HTTP/2.0", req.authority.c_str());
    }
    else {
        r->the_request = apr_psprintf(r->pool, "%s %s HTTP/2.0",
                                      task->websocket ? "GET" : req.method.c_str(),
                                      req.path.empty() ? "/" : req.path.c_str());
    }
    r->hostname = nullptr;
    if (req.fail_status) {
        ap_parse_request_line(r);
        status = req.fail_status;
        goto die;
    }
    if (!ap_parse_request_line(r) || !ap_check_request_header(r)) {
        status = r->status;
        r->status = HTTP_OK;
        r->per_dir_config = r->server->lookup_defaults;
        goto die;
    }
    r->per_dir_config = r->server->lookup_defaults;
    task->timeout = stream_timeout(nullptr, r->server);
    if (task->websocket && (status = ws_prepare_request(r, task)) != OK) {
        goto die;
    }
    c2_filter_count_request_head(c2, static_cast<apr_off_t>(req.raw_bytes));
    if ((status = ap_post_read_request(r)) != OK) {
        goto die;
    }
    return r;

die:
    if (status < 400) {
        status = HTTP_BAD_REQUEST;
    }
    ap_die(status, r);
    end_request(r);
    return nullptr;
}

/* process_connection for c2: run the stream's one request. */
int c2_process_connection(conn_rec *c) noexcept
{
    ConnCtx *ctx;
    if (!c->master || !(ctx = conn_ctx(c)) || !ctx->task) {
        return DECLINED;
    }
    C2Task *task = ctx->task;
    request_rec *r = create_request(task, c);
    if (r) {
        ap_update_child_status(static_cast<ap_sb_handle_t *>(c->sbh), SERVER_BUSY_WRITE, r);
        if (task->on_c1) {
            inline_process_request(task, r); /* may hand r over to a worker */
        }
        else {
            ap_process_request(r);
            /* r is gone: the EOR bucket destroyed it. */
        }
    }
    return DONE;
}

/* pre_connection for c2: our network filters instead of core's socket IO. */
int c2_pre_connection(conn_rec *c, void *) noexcept
{
    ConnCtx *ctx;
    if (!c->master || !(ctx = conn_ctx(c)) || !ctx->task) {
        return DECLINED;
    }
    c2_filter_setup_connection(c);
    return OK;
}

/* H2EarlyHints on: a 103 with the H2EarlyHint fields and a preload Link
 * per H2PushResource, before the handler runs (RFC 8297). */
void send_configured_early_hints(request_rec *r, C2Task *task) noexcept
{
    if (r->main || r->prev || task->final_head || !early_hints_enabled(r)) {
        return;
    }
    const DirConfig &dc = dir_config(r);
    Head hints;
    hints.status = 103;
    if (dc.early_hint_headers) {
        auto *h = reinterpret_cast<const EarlyHint *>(dc.early_hint_headers->elts);
        for (int i = 0; i < dc.early_hint_headers->nelts; ++i) {
            hints.fields.emplace_back(h[i].name, h[i].value);
        }
    }
    if (dc.push_resources) {
        auto *p = reinterpret_cast<const PushResource *>(dc.push_resources->elts);
        for (int i = 0; i < dc.push_resources->nelts; ++i) {
            hints.fields.emplace_back(
                "link", std::string("<") + p[i].uri_ref + ">; rel=preload"
                            + (p[i].critical ? "; critical" : ""));
        }
    }
    if (hints.fields.empty()) {
        return;
    }
    response_fields_normalize(&hints, 103);
    std::vector<Head> heads(1, std::move(hints));
    task->out->send(&heads, nullptr, 0, nullptr, false, 0);
}

/* Variables mod_http2 provides to CGI and SSI (H2_* and HTTP2). */
int c2_fixups(request_rec *r) noexcept
{
    conn_rec *c = r->connection;
    ConnCtx *ctx;
    if (!c->master || !(ctx = conn_ctx(c)) || !ctx->task) {
        return DECLINED;
    }
    apr_table_t *env = r->subprocess_env;
    apr_table_setn(env, "HTTP2", "on");
    apr_table_setn(env, "H2PUSH", "off");
    apr_table_setn(env, "H2_PUSH", "off");
    apr_table_setn(env, "H2_PUSHED", "");
    apr_table_setn(env, "H2_PUSHED_ON", "");
    apr_table_setn(env, "H2_STREAM_ID", apr_itoa(r->pool, ctx->task->stream_id));
    apr_table_setn(env, "H2_STREAM_TAG", c->log_id);
    send_configured_early_hints(r, ctx->task);
    return DECLINED;
}

} // namespace

C2Task::C2Task(conn_rec *c1_, server_rec *s, Mplx *mplx_, std::int32_t id,
               const Request *req, Beam *in_, Beam *out_) noexcept
    : c1(c1_), server(s), mplx(mplx_), stream_id(id), request(req), in(in_), out(out_),
      score_sbh(c1_->sbh), websocket(ws_is_extended_connect(*req))
{
    timeout = s->timeout;
    if (websocket && in) {
        ws_wake.open();
    }
}

void C2Task::run(apr_thread_t *thread) noexcept
{
    if (resume != InlineResume::NONE) {
        /* Started on c1, handed over before its handler. */
        c2->current_thread = thread;
        inline_resume(this);
        finish_c2();
    }
    else {
        process(thread);
    }
    release();
}

bool C2Task::run_inline(apr_thread_t *thread) noexcept
{
    on_c1 = true;
    process(thread);
    on_c1 = false;
    if (resume != InlineResume::NONE) {
        return false; /* the caller hands it to the workers */
    }
    release();
    return true;
}

void C2Task::dropped() noexcept
{
    out->abort(AbortReason::CONN_GONE);
    if (c2) {
        /* Handed over from c1 and never taken up: its request ends here,
         * unlogged, with the c2. */
        finish_c2();
    }
    release();
}

void C2Task::finish_c2() noexcept
{
    end_output();
    ap_log_cerror(APLOG_MARK, APLOG_TRACE1, 0, c2, "h2x_c2(%s): done", c2->log_id);
    /* The c2 pool's cleanups (the request's, mod_cgid's, ...) run here,
     * while the ticket still keeps the stream and the connection alive. */
    apr_pool_destroy(c2->pool);
    c2 = nullptr;
}

void C2Task::process(apr_thread_t *thread) noexcept
{
    if (out->state().end == BeamEnd::ABORTED) {
        /* Reset by the client (or the connection gone) between queueing
         * and now: no request processing, no CGI started for nobody
         * (Rapid Reset, CVE-2023-44487). */
        return;
    }
    c2 = c2_create(c1, stream_id, thread);
    if (!c2) {
        out->abort(AbortReason::HANDLER_ERROR);
        return;
    }
    ConnCtx *ctx = conn_ctx_ensure(c2);
    ctx->task = this;
    ctx->server = server;
    apr_socket_t *csd = g_dummy_socket;
    if (websocket && ws_wake.is_open()) {
        /* A WebSocket tunnel polls "the client socket" (mod_proxy_wstunnel
         * takes it from the connection): the socket pair that c1 wakes
         * (h2x_ws.h). apr_os_sock_put() leaves its closing to WsWake. */
        apr_os_sock_t fd = ws_wake.read_fd();
        apr_socket_t *ws_sock = nullptr;
        if (apr_os_sock_put(&ws_sock, &fd, c2->pool) == APR_SUCCESS) {
            csd = ws_sock;
            ap_set_core_module_config(c2->conn_config, csd);
        }
    }
    ap_log_cerror(APLOG_MARK, APLOG_TRACE1, 0, c2, "h2x_c2(%s): start", c2->log_id);
    ap_process_connection(c2, csd);
    if (resume != InlineResume::NONE) {
        return; /* started on c1: the c2 and its request live on */
    }
    finish_c2();
}

/* DESIGN.md invariant 9: the one place the task lets go. Its fields are
 * read before the call; inside c2_done() c1 may free this task, its
 * stream and the Mplx, so nothing runs after it. */
void C2Task::release() noexcept
{
    Mplx *const m = mplx;
    const std::int32_t id = stream_id;
    m->c2_done(id);
}

/* DESIGN.md invariant 2: the output ends COMPLETE or ABORTED, never "closed". */
void C2Task::end_output() noexcept
{
    Beam::State st = out->state();
    if (st.end != BeamEnd::OPEN) {
        return;
    }
    if (final_head && (header_only || content_length == 0)) {
        /* 204, 304, HEAD, Content-Length: 0: whole with the head alone.
         * The network filter normally completed it already. */
        std::vector<Head> none;
        out->send(&none, nullptr, 0, nullptr, true, 0);
        return;
    }
    ap_log_cerror(APLOG_MARK, APLOG_DEBUG, 0, c2, H2XLOGNO(10008)
                  "h2x_c2(%s): response %s without EOS, resetting the stream",
                  c2->log_id, final_head ? "started" : "never started");
    out->abort(AbortReason::INCOMPLETE);
}

apr_status_t c2_child_init(apr_pool_t *pchild, server_rec *) noexcept
{
    g_mpm_module = nullptr;
    g_pid = getpid();
    g_ssl_module = ap_find_linked_module("mod_ssl.c");
    c2_filter_child_init();
    inline_child_init();
    for (int i = 0; ap_loaded_modules[i]; ++i) {
        const char *name = ap_loaded_modules[i]->name;
        if (!std::strcmp(name, "event.c") || !std::strcmp(name, "worker.c")
            || !std::strcmp(name, "prefork.c")) {
            g_mpm_module = ap_loaded_modules[i];
            break;
        }
    }
    return apr_socket_create(&g_dummy_socket, APR_INET, SOCK_STREAM, APR_PROTO_TCP, pchild);
}

void c2_register_hooks() noexcept
{
    inline_register_hooks();
    ap_hook_pre_connection(c2_pre_connection, nullptr, nullptr, APR_HOOK_MIDDLE);
    ap_hook_process_connection(c2_process_connection, nullptr, nullptr, APR_HOOK_FIRST);
    ap_hook_fixups(c2_fixups, nullptr, nullptr, APR_HOOK_LAST);
    c2_backend_register_hooks();
    c2_filter_register();
}

} // namespace h2x
