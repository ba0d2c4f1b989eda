/* h2x_c2_filter.cpp: see h2x_c2_filter.h. */
#include "h2x_private.h"
#include "h2x_c2_filter.h"

#include <http_connection.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <new>

#include <fcntl.h>

#include <unistd.h>
#include <string>
#include <vector>

#include <http_core.h>
#include <http_protocol.h>
#include <http_request.h>
#include <util_filter.h>
#include <util_time.h>
#include <apr_lib.h>
#include <apr_strings.h>
#include <nghttp2/nghttp2.h>

#include "h2x_bucket_head.h"
#include "h2x_c2.h"
#include "h2x_c2_source.h"
#include "h2x_ws.h"
#include "h2x_config.h"
#include "h2x_conn_ctx.h"
#include "h2x_mplx.h"
#include "h2x_response.h"

namespace h2x {

namespace {

ap_filter_rec_t *g_response_filter;
ap_filter_rec_t *g_net_out_filter;
ap_filter_rec_t *g_net_in_filter;

/* mod_logio counts what core's socket filters move; c2 has none, so %O
 * (and the request head's share of %I) are reported here, per request. */
APR_OPTIONAL_FN_TYPE(ap_logio_add_bytes_out) *g_logio_out;
APR_OPTIONAL_FN_TYPE(ap_logio_add_bytes_in) *g_logio_in;

/* What a head costs on the wire, for %O: a frame header and the HPACK
 * encoding of its fields. c1 encodes it later, with the connection's
 * dynamic table; here it is encoded without one (a table size of 0 makes
 * the encoder stateless, so one per worker thread serves every stream),
 * which is what a new connection would send. */
constexpr apr_off_t FRAME_HEADER_LEN = 9;
constexpr apr_off_t DATA_FRAME_PAYLOAD = 16384;

struct HeadEncoder {
    nghttp2_hd_deflater *deflater = nullptr;
    std::vector<nghttp2_nv> nva;
    std::vector<uint8_t> buf;
    HeadEncoder() noexcept { nghttp2_hd_deflate_new(&deflater, 0); }
    ~HeadEncoder()
    {
        if (deflater) {
            nghttp2_hd_deflate_del(deflater);
        }
    }
};

apr_off_t head_length(const Head &head) noexcept
{
    thread_local HeadEncoder enc;
    char status[4];
    response_to_nv(head, head.status == 0, status, &enc.nva);
    apr_off_t raw = 0;
    for (const nghttp2_nv &nv : enc.nva) {
        raw += static_cast<apr_off_t>(nv.namelen + nv.valuelen);
    }
    if (!enc.deflater) {
        return FRAME_HEADER_LEN + raw;
    }
    enc.buf.resize(nghttp2_hd_deflate_bound(enc.deflater, enc.nva.data(), enc.nva.size()));
    ssize_t n = nghttp2_hd_deflate_hd(enc.deflater, enc.buf.data(), enc.buf.size(),
                                      enc.nva.data(), enc.nva.size());
    return FRAME_HEADER_LEN + (n > 0 ? static_cast<apr_off_t>(n) : raw);
}

/* Body bytes and the DATA frame headers that carry them. */
apr_off_t body_length(apr_off_t bytes) noexcept
{
    return bytes + FRAME_HEADER_LEN * ((bytes + DATA_FRAME_PAYLOAD - 1) / DATA_FRAME_PAYLOAD);
}

C2Task *task_of(const conn_rec *c) noexcept
{
    ConnCtx *ctx = conn_ctx(c);
    return ctx ? ctx->task : nullptr;
}

/* ---------------------------------------------------------------- response */

struct ResponseCtx {
    bool head_sent;
    bool header_only;
    /* httpd started an error response (ap_die) after the head went out;
     * response_filter() then resets the stream. */
    bool error_after_head;
    /* The request whose head went out; another one here is an internal
     * redirect (an ErrorDocument URL), null: error_after_head() saw httpd
     * start its own error document. */
    request_rec *head_r;
};

int add_field(void *data, const char *name, const char *value) noexcept
{
    static_cast<Fields *>(data)->emplace_back(name, value);
    return 1;
}

/* httpd's fixup_vary(): one Vary field, each token once (case-insensitive),
 * joined with "," as httpd does. Two fields, or one that apr_table_mergen()
 * grew twice ("Accept-Encoding, Accept-Encoding" when two compressing
 * filters each add it), both become a single list. */
void merge_vary(request_rec *r) noexcept
{
    const apr_array_header_t *arr = apr_table_elts(r->headers_out);
    auto *elts = reinterpret_cast<const apr_table_entry_t *>(arr->elts);
    std::vector<const char *> tokens;
    int fields = 0;
    bool dropped = false;
    for (int i = 0; i < arr->nelts; ++i) {
        if (!elts[i].key || strcasecmp(elts[i].key, "Vary") || !elts[i].val) {
            continue;
        }
        ++fields;
        char *list = apr_pstrdup(r->pool, elts[i].val);
        char *state = nullptr;
        for (char *tok = apr_strtok(list, ", \t", &state); tok;
             tok = apr_strtok(nullptr, ", \t", &state)) {
            bool seen = false;
            for (const char *t : tokens) {
                if (!strcasecmp(t, tok)) {
                    seen = true;
                    break;
                }
            }
            if (seen) {
                dropped = true;
            }
            else {
                tokens.push_back(tok);
            }
        }
    }
    if (fields > 1 || dropped) {
        std::string merged;
        for (const char *t : tokens) {
            if (!merged.empty()) {
                merged.push_back(',');
            }
            merged.append(t);
        }
        apr_table_setn(r->headers_out, "Vary", apr_pstrdup(r->pool, merged.c_str()));
    }
}

/* What httpd's HTTP/1 header filter (ap_http_header_filter) decides about
 * a response, minus the HTTP/1 framing: the fields a client gets. */
Head make_head(request_rec *r) noexcept
{
    Head head;
    head.status = r->status;
    if (!apr_is_empty_table(r->err_headers_out)) {
        r->headers_out = apr_table_overlay(r->pool, r->err_headers_out, r->headers_out);
        apr_table_clear(r->err_headers_out);
    }
    if (apr_table_get(r->subprocess_env, "force-no-vary")) {
        apr_table_unset(r->headers_out, "Vary");
    }
    else {
        merge_vary(r);
    }
    /* FileETag None, mod_include: "no-etag" removes the ETag. */
    if (apr_table_get(r->notes, "no-etag")) {
        apr_table_unset(r->headers_out, "ETag");
    }
    if (r->status == HTTP_NO_CONTENT || r->status == HTTP_NOT_MODIFIED) {
        /* RFC 9110 §15.3.5, §15.4.5: no content, so nothing describes it. */
        apr_table_unset(r->headers_out, "Content-Length");
        r->content_type = r->content_encoding = nullptr;
        r->content_languages = nullptr;
        r->clength = 0;
    }
    if (r->content_type) {
        const char *ctype = ap_make_content_type(r, r->content_type);
        if (ctype) {
            apr_table_setn(r->headers_out, "Content-Type", ctype);
        }
    }
    if (r->content_encoding) {
        apr_table_setn(r->headers_out, "Content-Encoding", r->content_encoding);
    }
    if (r->content_languages && r->content_languages->nelts) {
        auto **langs = reinterpret_cast<char **>(r->content_languages->elts);
        std::string joined;
        for (int i = 0; i < r->content_languages->nelts; ++i) {
            if (i) {
                joined.append(", ");
            }
            joined.append(langs[i]);
        }
        apr_table_setn(r->headers_out, "Content-Language", apr_pstrdup(r->pool, joined.c_str()));
    }
    if (r->no_cache && !apr_table_get(r->headers_out, "Expires")) {
        char *date = static_cast<char *>(apr_palloc(r->pool, APR_RFC822_DATE_LEN));
        ap_recent_rfc822_date(date, r->request_time);
        apr_table_addn(r->headers_out, "Expires", date);
    }
    if (r->header_only) {
        /* As httpd does: no "Content-Length: 0" on a HEAD response. */
        const char *cl = apr_table_get(r->headers_out, "Content-Length");
        if (cl && !std::strcmp(cl, "0")) {
            apr_table_unset(r->headers_out, "Content-Length");
        }
    }
    /* Date and Server as httpd sets them, keeping a proxied origin's. */
    if (r->proxyreq == PROXYREQ_NONE || !apr_table_get(r->headers_out, "Date")) {
        char *date = static_cast<char *>(apr_palloc(r->pool, APR_RFC822_DATE_LEN));
        ap_recent_rfc822_date(date, r->request_time);
        apr_table_setn(r->headers_out, "Date", date);
    }
    if (r->proxyreq == PROXYREQ_NONE || !apr_table_get(r->headers_out, "Server")) {
        const char *banner = ap_get_server_banner();
        if (banner && *banner) {
            apr_table_setn(r->headers_out, "Server", banner);
        }
    }
    /* One allocation for the vector, not one per doubling. */
    head.fields.reserve(static_cast<std::size_t>(apr_table_elts(r->headers_out)->nelts));
    apr_table_do(add_field, &head.fields, r->headers_out, nullptr);
    response_fields_normalize(&head, r->status);
    return head;
}

/* The response cannot go out: the stream is reset for `reason`, the
 * handler's writes fail from here on. */
apr_status_t abort_response(ap_filter_t *f, apr_bucket_brigade *bb, AbortReason reason) noexcept
{
    C2Task *task = task_of(f->c);
    if (task) {
        task->out->abort(reason);
    }
    apr_brigade_cleanup(bb);
    f->c->aborted = 1;
    return APR_ECONNABORTED;
}

apr_status_t response_filter(ap_filter_t *f, apr_bucket_brigade *bb) noexcept
{
    request_rec *r = f->r;
    auto *ctx = static_cast<ResponseCtx *>(f->ctx);
    if (!ctx) {
        ctx = static_cast<ResponseCtx *>(apr_pcalloc(r->pool, sizeof(ResponseCtx)));
        f->ctx = ctx;
    }
    if (ctx->head_sent && (ctx->error_after_head || r != ctx->head_r)) {
        /* A handler failed after its response had started (a proxy whose
         * backend died mid-body returns 502/503): httpd now sends an error
         * document, or redirects to the ErrorDocument, as if nothing had
         * been sent. Appended to the body that went out, it would end the
         * stream with END_STREAM as a whole, corrupt response (DESIGN.md:
         * an incomplete response is reset). */
        if (!ctx->error_after_head) {
            ctx->error_after_head = true;
            ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, H2XLOGNO(10041)
                          "h2x_c2(%s): status %d after the response had started; "
                          "resetting the stream", f->c->log_id, r->status);
        }
        return abort_response(f, bb, AbortReason::HANDLER_ERROR);
    }
    if (!ctx->head_sent) {
        for (request_rec *rr = r; rr; rr = rr->prev) {
            if (rr->status == HTTP_FORBIDDEN
                && apr_table_get(rr->notes, "ssl-renegotiate-forbidden")) {
                /* mod_ssl wants client-certificate renegotiation, which
                 * HTTP/2 forbids (RFC 9113 §9.2.1): ask the client to
                 * retry over HTTP/1.1. */
                return abort_response(f, bb, AbortReason::HTTP11_REQUIRED);
            }
        }
        /* An error bucket before the head: answer with that error, as
         * httpd's HTTP/1 header filter does. */
        for (apr_bucket *b = APR_BRIGADE_FIRST(bb); b != APR_BRIGADE_SENTINEL(bb);
             b = APR_BUCKET_NEXT(b)) {
            if (AP_BUCKET_IS_ERROR(b)) {
                int status = static_cast<ap_bucket_error *>(b->data)->status;
                apr_brigade_cleanup(bb);
                ap_die(status, r);
                return AP_FILTER_ERROR;
            }
        }
        Head head = make_head(r);
        if (const auto *bad = response_invalid_field(head)) {
            /* A field that cannot be sent: the stream is reset
             * (INTERNAL_ERROR), as mod_http2 does on httpd 2.4, rather than
             * sending what a client would have to reject. */
            ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, H2XLOGNO(10027)
                          "h2x_c2(%s): response field '%s' has invalid characters; "
                          "resetting the stream", f->c->log_id, bad->first.c_str());
            return abort_response(f, bb, AbortReason::HANDLER_ERROR);
        }
        ctx->header_only = r->header_only || response_is_header_only(head.status);
        APR_BRIGADE_INSERT_HEAD(bb, bucket_head_create(f->c->bucket_alloc, HeadKind::RESPONSE,
                                                        std::move(head)));
        ctx->head_sent = true;
        ctx->head_r = r;
        /* As httpd's header filter: the body is under way, so %b reports
         * r->bytes_sent (counted by the content-length filter). */
        r->sent_bodyct = 1;
    }
    for (apr_bucket *b = APR_BRIGADE_FIRST(bb); b != APR_BRIGADE_SENTINEL(bb);) {
        apr_bucket *next = APR_BUCKET_NEXT(b);
        if (APR_BUCKET_IS_EOS(b)) {
            if (!ctx->header_only && r->trailers_out && !apr_is_empty_table(r->trailers_out)) {
                Head trailers;
                apr_table_do(add_field, &trailers.fields, r->trailers_out, nullptr);
                apr_table_clear(r->trailers_out);
                response_fields_normalize(&trailers, 0);
                APR_BUCKET_INSERT_BEFORE(b, bucket_head_create(f->c->bucket_alloc,
                                                               HeadKind::TRAILERS,
                                                               std::move(trailers)));
            }
        }
        else if (ctx->header_only && !APR_BUCKET_IS_METADATA(b)) {
            /* RFC 9110 §6.4.1: no content for HEAD, 204, 304. */
            apr_bucket_delete(b);
        }
        b = next;
    }
    return ap_pass_brigade(f->next, bb);
}

/* ---------------------------------------------------------- network output */

/* Body bytes travel into the beam in pieces of up to this size. */
constexpr std::size_t CHUNK_MAX = 64 * 1024;

/* File buckets at least this long go into the beam as file ranges (no
 * copy); shorter ones are cheaper to copy than to dup a descriptor for. */
constexpr apr_size_t FILE_RANGE_MIN = 16 * 1024;
/* ... and at most this long each (Beam::FILE_BUDGET / 4). */
constexpr apr_size_t FILE_RANGE_MAX = Beam::FILE_BUDGET / 4;

/* The network filter's state: constructed in the c2 pool (placement
 * new), destroyed by the pool's cleanup. */
struct NetOutCtx {
    std::string interim; /* HTTP/1 text of 1xx responses, until complete */
    std::string pending; /* body bytes not yet in the beam */
    std::vector<Head> heads;
    /* The beam's descriptor for the file last passed as a range, so that
     * the pieces of one file share one dup. */
    apr_file_t *last_file = nullptr;
    std::shared_ptr<FileRef> last_ref;
};

apr_status_t net_out_cleanup(void *data) noexcept
{
    static_cast<NetOutCtx *>(data)->~NetOutCtx();
    return APR_SUCCESS;
}

/* The file range of a file bucket, with a descriptor the beam owns: the
 * handler may close its file as soon as the bucket is gone (H2CopyFiles). */
bool file_range_of(NetOutCtx *ctx, apr_bucket *b, FileRange *range) noexcept
{
    auto *fb = static_cast<apr_bucket_file *>(b->data);
    if (ctx->last_file != fb->fd || !ctx->last_ref) {
        apr_os_file_t fd;
        if (apr_os_file_get(&fd, fb->fd) != APR_SUCCESS) {
            return false;
        }
        int dup = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
        if (dup < 0) {
            return false;
        }
        ctx->last_ref = std::make_shared<FileRef>(dup);
        ctx->last_file = fb->fd;
    }
    range->file = ctx->last_ref;
    range->offset = static_cast<std::uint64_t>(b->start);
    range->len = b->length;
    return true;
}

/* Parses "HTTP/1.1 103 Early Hints\r\nLink: ...\r\n\r\n" as written by
 * ap_send_interim_response() into an interim head. */
bool parse_interim(std::string *text, Head *head) noexcept
{
    std::size_t end = text->find("\r\n\r\n");
    if (end == std::string::npos) {
        return false;
    }
    std::string block = text->substr(0, end + 2);
    text->erase(0, end + 4);
    std::size_t pos = block.find("\r\n");
    std::string status_line = block.substr(0, pos);
    std::size_t sp = status_line.find(' ');
    head->status = sp == std::string::npos ? 0 : std::atoi(status_line.c_str() + sp + 1);
    pos += 2;
    while (pos < block.size()) {
        std::size_t eol = block.find("\r\n", pos);
        std::string line = block.substr(pos, eol - pos);
        pos = eol + 2;
        std::size_t colon = line.find(':');
        if (colon == std::string::npos) {
            continue;
        }
        std::size_t v = colon + 1;
        while (v < line.size() && (line[v] == ' ' || line[v] == '\t')) {
            ++v;
        }
        head->fields.emplace_back(line.substr(0, colon), line.substr(v));
    }
    response_fields_normalize(head, head->status);
    return true;
}

/* Moves what is pending into the beam. Returns APR_SUCCESS, APR_TIMEUP or
 * APR_ECONNABORTED. */
apr_status_t net_out_push(C2Task *task, NetOutCtx *ctx, Head *trailers, bool eos,
                          bool flush = false, FileRange *file = nullptr) noexcept
{
    std::size_t file_len = file ? file->len : 0;
    apr_off_t n = body_length(static_cast<apr_off_t>(ctx->pending.size() + file_len));
    for (const Head &h : ctx->heads) {
        n += head_length(h);
    }
    if (trailers) {
        n += head_length(*trailers);
    }
    task->bytes_out += n;
    if (g_logio_out && n) {
        g_logio_out(task->c2, n);
    }
    /* On c1 (h2x_c2_inline.h) nobody else would drain the beam: never
     * wait for room (what may run there is bounded by INLINE_MAX_FILE). */
    SendResult res = task->out->send(&ctx->heads, &ctx->pending, trailers, eos,
                                     task->on_c1 ? 0 : task->timeout, flush, file);
    ctx->pending.clear();
    switch (res) {
    case SendResult::ACCEPTED:
        return APR_SUCCESS;
    case SendResult::TIMED_OUT:
        /* DESIGN.md invariant 6: the client did not take data for Timeout. */
        ap_log_cerror(APLOG_MARK, APLOG_DEBUG, 0, task->c2, H2XLOGNO(10009)
                      "h2x_c2(%s): output blocked longer than the timeout, resetting",
                      task->c2->log_id);
        task->out->abort(AbortReason::TIMEOUT);
        if (task->in) {
            task->in->abort(AbortReason::TIMEOUT);
        }
        return APR_TIMEUP;
    case SendResult::ABORTED:
        return APR_ECONNABORTED;
    }
    return APR_ECONNABORTED;
}

/* Appends `len` bytes of a file bucket, from its current start, to `out`
 * (pread: the file offset is not touched). */
bool read_file_piece(apr_bucket *b, std::string *out, apr_size_t len) noexcept
{
    auto *fb = static_cast<apr_bucket_file *>(b->data);
    apr_os_file_t fd;
    if (apr_os_file_get(&fd, fb->fd) != APR_SUCCESS) {
        return false;
    }
    std::size_t at = out->size();
    out->resize(at + len);
    apr_size_t done = 0;
    while (done < len) {
        ssize_t n = ::pread(fd, &(*out)[at + done], len - done,
                            static_cast<off_t>(b->start + static_cast<apr_off_t>(done)));
        if (n <= 0) {
            if (n < 0 && errno == EINTR) {
                continue;
            }
            out->resize(at);
            return false;
        }
        done += static_cast<apr_size_t>(n);
    }
    return true;
}

/* A WebSocket stream's 101 (h2x_ws.h): becomes the final 200 that opens
 * the tunnel, or a body-less 502 that ends the stream; whatever followed
 * the 101 in the same write is the tunnel's first data. */
apr_status_t ws_take_handshake(C2Task *task, NetOutCtx *ctx, Head *interim) noexcept
{
    bool upgraded = false, no_body = false;
    ws_response_head(task, interim, &upgraded, &no_body);
    task->final_head = true;
    task->content_length = -1;
    ctx->heads.push_back(std::move(*interim));
    if (upgraded) {
        task->ws_open = true;
        task->body_bytes += static_cast<apr_off_t>(ctx->interim.size());
        ctx->pending.append(ctx->interim);
        ctx->interim.clear();
        return net_out_push(task, ctx, nullptr, false);
    }
    /* No WebSocket behind it: the handler's tunnel must stop. */
    task->header_only = true;
    task->eos = true;
    apr_status_t rv = net_out_push(task, ctx, nullptr, true);
    task->c2->aborted = 1;
    return rv;
}

apr_status_t net_out_filter(ap_filter_t *f, apr_bucket_brigade *bb) noexcept
{
    conn_rec *c = f->c;
    C2Task *task = task_of(c);
    if (!task) {
        return APR_ECONNABORTED;
    }
    auto *ctx = static_cast<NetOutCtx *>(f->ctx);
    if (!ctx) {
        /* In the c2 pool: no malloc per stream for the filter's state. */
        ctx = new (apr_palloc(c->pool, sizeof(NetOutCtx))) NetOutCtx();
        apr_pool_cleanup_register(c->pool, ctx, net_out_cleanup, apr_pool_cleanup_null);
        f->ctx = ctx;
    }
    if (!bb) {
        /* "Write out what you hold" (ap_filter_output_pending(), as the
         * proxy tunnel asks): we hold nothing back. */
        return c->aborted ? APR_ECONNABORTED : APR_SUCCESS;
    }
    if (c->aborted) {
        apr_brigade_cleanup(bb);
        return APR_ECONNABORTED;
    }
    apr_status_t rv = APR_SUCCESS;
    const std::size_t chunk_max = CHUNK_MAX;
    Head trailers;
    bool has_trailers = false;
    bool push_now = false;
    bool flushed = false; /* a FLUSH bucket: what the handler wrote leaves now */
    /* The range of a file bucket taken whole, held until the next bucket:
     * when that is the EOS (a static file: [FILE, EOS]) both go into the
     * beam at once, so that c1 cannot send the last DATA before it knows
     * the end and then end the stream with a zero-length DATA frame. */
    FileRange held;
    bool has_held = false;

    while (!APR_BRIGADE_EMPTY(bb) && rv == APR_SUCCESS) {
        apr_bucket *b = APR_BRIGADE_FIRST(bb);
        if (task->eos) {
            /* Whatever follows the end (the EOR, stray buckets) is dropped;
             * the EOR's destruction logs and frees the request. */
            apr_bucket_delete(b);
            continue;
        }
        if (has_held && !APR_BUCKET_IS_EOS(b)) {
            /* Anything but the end: the held range goes first, in order. */
            has_held = false;
            rv = net_out_push(task, ctx, nullptr, false, false, &held);
            push_now = false;
            if (rv != APR_SUCCESS) {
                break;
            }
        }
        if (bucket_is_head(b)) {
            HeadBucketData *hd = bucket_head_data(b);
            if (hd->kind == HeadKind::RESPONSE) {
                bool upgraded = false, no_body = false;
                if (!task->final_head && task->websocket) {
                    ws_response_head(task, &hd->head, &upgraded, &no_body);
                    task->ws_open = upgraded;
                }
                if (!task->final_head) {
                    task->final_head = true;
                    task->header_only = no_body || (task->r && task->r->header_only)
                                        || response_is_header_only(hd->head.status);
                    task->content_length = response_content_length(hd->head);
                    ctx->heads.push_back(std::move(hd->head));
                    push_now = true;
                    if (task->header_only) {
                        /* DESIGN.md invariant 2: a header-only response is
                         * whole with its head; END_STREAM rides the HEADERS. */
                        task->eos = true;
                        rv = net_out_push(task, ctx, nullptr, true);
                        push_now = false;
                    }
                }
            }
            else {
                trailers = std::move(hd->head);
                has_trailers = true;
            }
            apr_bucket_delete(b);
        }
        else if (APR_BUCKET_IS_EOS(b)) {
            apr_bucket_delete(b);
            if (task->final_head && task->content_length >= 0
                && task->body_bytes != task->content_length) {
                ap_log_cerror(APLOG_MARK, APLOG_DEBUG, 0, c, H2XLOGNO(10010)
                              "h2x_c2(%s): body has %" APR_OFF_T_FMT " bytes, Content-Length "
                              "says %" APR_OFF_T_FMT ", resetting the stream",
                              c->log_id, task->body_bytes, task->content_length);
                task->out->abort(AbortReason::LENGTH);
                rv = APR_ECONNABORTED;
                break;
            }
            if (!task->final_head) {
                /* EOS without any response: nothing to complete. */
                continue;
            }
            task->eos = true;
            rv = net_out_push(task, ctx, has_trailers ? &trailers : nullptr, true, false,
                              has_held ? &held : nullptr);
            has_trailers = false;
            has_held = false;
            push_now = false;
        }
        else if (AP_BUCKET_IS_ERROR(b)) {
            apr_bucket_delete(b);
            if (task->final_head) {
                /* An error after the response started (a backend that
                 * broke mid-body): the client must not take this as whole. */
                ap_log_cerror(APLOG_MARK, APLOG_DEBUG, 0, c, H2XLOGNO(10011)
                              "h2x_c2(%s): error bucket after the response head, "
                              "resetting the stream", c->log_id);
                task->out->abort(AbortReason::HANDLER_ERROR);
                c->aborted = 1;
                rv = APR_ECONNABORTED;
            }
        }
        else if (APR_BUCKET_IS_FLUSH(b)) {
            apr_bucket_delete(b);
            push_now = true;
            flushed = true;
        }
        else if (AP_BUCKET_IS_EOR(b)) {
            /* Deleting the EOR ends the request (and its pool, whose
             * cleanups may wait for a CGI to die). Hand over what we have
             * and settle the output's end first, so c1 resets an
             * incomplete response without waiting for that. */
            if (!ctx->pending.empty() || !ctx->heads.empty()) {
                rv = net_out_push(task, ctx, nullptr, false);
                push_now = false;
            }
            task->end_output();
            apr_bucket_delete(b);
        }
        else if (task->ws_open && AP_BUCKET_IS_EOC(b)) {
            /* The tunnel shuts our side down: the backend closed the
             * WebSocket. The stream ends cleanly, with END_STREAM. */
            apr_bucket_delete(b);
            task->eos = true;
            rv = net_out_push(task, ctx, nullptr, true, true);
            push_now = false;
        }
        else if (APR_BUCKET_IS_METADATA(b)) {
            apr_bucket_delete(b);
        }
        else if (APR_BUCKET_IS_FILE(b) && task->final_head && b->length >= FILE_RANGE_MIN
                 && !(task->r && copy_files_enabled(task->r))) {
            /* H2CopyFiles off: the file travels as a range of a descriptor
             * the beam owns (h2x_beam.h); c1 reads it as it sends, the
             * worker neither copies it nor waits for the client to take it. */
            FileRange range;
            if (!file_range_of(ctx, b, &range)) {
                rv = APR_EGENERAL;
                break;
            }
            /* In pieces, so that the beam's FILE_BUDGET holds the worker
             * back when the client is slow (a 100 MB file is one bucket). */
            range.len = std::min<apr_size_t>(b->length, FILE_RANGE_MAX);
            task->body_bytes += static_cast<apr_off_t>(range.len);
            if (range.len == b->length) {
                apr_bucket_delete(b);
                held = std::move(range);
                has_held = true;
            }
            else {
                b->start += static_cast<apr_off_t>(range.len);
                b->length -= range.len;
                rv = net_out_push(task, ctx, nullptr, false, false, &range);
                push_now = false;
            }
        }
        else if (APR_BUCKET_IS_FILE(b) && task->final_head && b->length > 0) {
            /* A file's bytes are read straight into the chunk that goes into
             * the beam: no mmap set-up per piece, no intermediate bucket. */
            std::size_t room = chunk_max > ctx->pending.size() ? chunk_max - ctx->pending.size() : 0;
            if (room == 0) {
                rv = net_out_push(task, ctx, nullptr, false);
                push_now = false;
                continue;
            }
            apr_size_t want = std::min<apr_size_t>(b->length, room);
            /* A small file costs its size, not a whole chunk; more pieces
             * after it grow the buffer by doubling, not piece by piece. */
            std::size_t need = ctx->pending.size() + want;
            if (ctx->pending.capacity() < need) {
                ctx->pending.reserve(
                    std::max(need, std::min(chunk_max, 2 * ctx->pending.capacity())));
            }
            if (!read_file_piece(b, &ctx->pending, want)) {
                rv = APR_EGENERAL;
                break;
            }
            task->body_bytes += static_cast<apr_off_t>(want);
            if (want == b->length) {
                apr_bucket_delete(b);
            }
            else {
                b->start += static_cast<apr_off_t>(want);
                b->length -= want;
            }
            if (ctx->pending.size() >= chunk_max) {
                rv = net_out_push(task, ctx, nullptr, false);
                push_now = false;
            }
        }
        else {
            const char *data;
            apr_size_t len;
            if (b->length != static_cast<apr_size_t>(-1) && b->length > chunk_max) {
                /* A file or mmap bucket can be megabytes: take it in pieces
                 * so that the beam's bound (H2StreamMaxMemSize) holds. */
                apr_bucket_split(b, chunk_max);
            }
            rv = apr_bucket_read(b, &data, &len, APR_NONBLOCK_READ);
            if (APR_STATUS_IS_EAGAIN(rv)) {
                /* Hand over what we have before blocking on the source
                 * (a CGI pipe): streaming responses reach the client now. */
                if (!ctx->pending.empty() || !ctx->heads.empty()) {
                    rv = net_out_push(task, ctx, nullptr, false);
                    push_now = false;
                    if (rv != APR_SUCCESS) {
                        break;
                    }
                }
                rv = source_wait_readable(task, b);
                if (rv == APR_SUCCESS) {
                    rv = apr_bucket_read(b, &data, &len, APR_BLOCK_READ);
                }
            }
            if (rv != APR_SUCCESS) {
                /* The source failed, e.g. a CGI that stalled past Timeout.
                 * The handler sees the error; end_output() aborts the beam. */
                break;
            }
            if (!task->final_head) {
                ctx->interim.append(data, len);
                Head interim;
                while (!task->final_head && parse_interim(&ctx->interim, &interim)) {
                    if (task->websocket && interim.status == HTTP_SWITCHING_PROTOCOLS) {
                        /* The WebSocket handshake's answer (h2x_ws.h): the
                         * stream's final response. */
                        rv = ws_take_handshake(task, ctx, &interim);
                        interim = Head();
                        break;
                    }
                    /* 103 Early Hints only with H2EarlyHints on, as in
                     * mod_http2; 101 has no meaning inside HTTP/2. */
                    bool forward = interim.status >= 100 && interim.status < 200
                                   && interim.status != 101
                                   && (interim.status != 103
                                       || (task->r && early_hints_enabled(task->r)));
                    if (forward) {
                        ctx->heads.push_back(std::move(interim));
                        push_now = true;
                    }
                    interim = Head();
                }
            }
            else {
                task->body_bytes += static_cast<apr_off_t>(len);
                if (ctx->pending.empty()) {
                    /* More may follow: room for a chunk, so that appends
                     * do not copy what is there on every doubling. */
                    ctx->pending.reserve(chunk_max);
                }
                ctx->pending.append(data, len);
                if (ctx->pending.size() >= chunk_max) {
                    rv = net_out_push(task, ctx, nullptr, false);
                    push_now = false;
                }
            }
            apr_bucket_delete(b);
        }
    }
    if (rv == APR_SUCCESS && (push_now || !ctx->pending.empty() || !ctx->heads.empty()
                              || has_trailers || has_held)) {
        /* A WebSocket's messages leave as the tunnel hands them over: c1
         * never holds them back (Session::on_data_read()), so they need no
         * FLUSH, and c1 is woken only when it may be waiting - bytes added
         * to bytes it has not taken yet travel with them. */
        rv = net_out_push(task, ctx, has_trailers ? &trailers : nullptr, false, flushed,
                          has_held ? &held : nullptr);
    }
    if (rv != APR_SUCCESS) {
        apr_brigade_cleanup(bb);
        if (task->out->state().end == BeamEnd::ABORTED) {
            c->aborted = 1;
        }
    }
    return rv;
}

/* ----------------------------------------------------------- network input */

/* Request trailers become r->trailers_in when the body ends. */
void deliver_trailers(C2Task *task) noexcept
{
    Head trailers;
    if (!task->r || !task->in->take_trailers(&trailers)) {
        return;
    }
    request_rec *r = task->r;
    for (const auto &f : trailers.fields) {
        apr_table_add(r->trailers_in, f.first.c_str(), f.second.c_str());
    }
}

/* The c2 network input keeps what it took from the input beam but has not
 * handed out yet in `held`: a SPECULATIVE read only looks, READBYTES and
 * GETLINE hand out part of it, so every input mode behaves as core's
 * socket input filter does (DESIGN.md invariant 10). mod_reqtimeout, for
 * one, peeks at one byte before each request it times. */
struct NetInCtx {
    apr_bucket_brigade *held; /* body bytes, then possibly the EOS */
};

/* What httpd's HTTP_IN filter checks before the first body read. */
apr_status_t check_body_length(C2Task *task, conn_rec *c) noexcept
{
    request_rec *r = task->r;
    if (!r || task->body_checked) {
        return APR_SUCCESS;
    }
    task->body_checked = true;
    task->body_limit = ap_get_limit_req_body(r);
    const char *cl = apr_table_get(r->headers_in, "Content-Length");
    apr_off_t len = 0;
    char *end = nullptr;
    if (task->body_limit && cl && apr_strtoff(&len, cl, &end, 10) == APR_SUCCESS
        && len > task->body_limit) {
        /* LimitRequestBody: the handler maps this to 413. */
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, H2XLOGNO(10024)
                      "h2x_c2(%s): request body of %s bytes is larger than "
                      "LimitRequestBody %" APR_OFF_T_FMT, c->log_id, cl, task->body_limit);
        return APR_ENOSPC;
    }
    return APR_SUCCESS;
}

/* RFC 9110 §10.1.1: 100 when the handler first blocks on the body, never
 * for a request answered without reading it. Sent the way httpd sends it,
 * which clears r->expecting_100, so a proxied backend's own 100
 * (Proxy100Continue) is not sent twice. A non-blocking read (mod_proxy_http's
 * prefetch) does not trigger it. Returns false when the handler answered
 * with an error already: the client waits for our word and sends no body. */
bool maybe_send_continue(C2Task *task) noexcept
{
    request_rec *r = task->r;
    if (!r || !r->expecting_100 || task->final_head || r->eos_sent || r->bytes_sent) {
        return true;
    }
    if (!ap_is_HTTP_SUCCESS(r->status)) {
        return false;
    }
    int status = r->status;
    const char *status_line = r->status_line;
    r->status = HTTP_CONTINUE;
    r->status_line = nullptr;
    ap_send_interim_response(r, 0);
    r->status = status;
    r->status_line = status_line;
    return true;
}

/* Moves the next piece of the body from the input beam into `held`; the
 * EOS follows the last byte. APR_EAGAIN when a non-blocking read finds
 * nothing. */
apr_status_t net_in_fill(C2Task *task, conn_rec *c, apr_bucket_brigade *held,
                         apr_read_type_e block) noexcept
{
    Beam::State st = task->in->state();
    if (st.buffered == 0 && st.end == BeamEnd::OPEN) {
        if (block == APR_NONBLOCK_READ) {
            return APR_EAGAIN;
        }
        if (!task->in->wait_readable(task->timeout)) {
            /* DESIGN.md invariant 6: the client stopped sending the body. */
            ap_log_cerror(APLOG_MARK, APLOG_DEBUG, 0, c, H2XLOGNO(10012)
                          "h2x_c2(%s): request body stalled longer than the timeout",
                          c->log_id);
            task->in->abort(AbortReason::TIMEOUT);
            task->out->abort(AbortReason::TIMEOUT);
            c->aborted = 1;
            return APR_TIMEUP;
        }
        st = task->in->state();
    }
    if (st.end == BeamEnd::ABORTED) {
        c->aborted = 1;
        return APR_ECONNABORTED;
    }
    if (st.buffered > 0) {
        const apr_size_t max = 64 * 1024;
        char *buf = static_cast<char *>(apr_bucket_alloc(max, c->bucket_alloc));
        std::size_t n = task->in->read_data(buf, max, &st);
        if (n == 0) {
            apr_bucket_free(buf);
            return block == APR_NONBLOCK_READ ? APR_EAGAIN : APR_SUCCESS;
        }
        task->body_read += static_cast<apr_off_t>(n);
        /* c1 re-opens the flow-control window for what was taken - once a
         * fair part of the window was taken, not for every small read:
         * each signal may wake c1 (a WebSocket message cost c1 two
         * wake-ups, this one for nothing). consume_signal_at is at most
         * half the stream window, so the client never runs dry waiting
         * for it, and the connection window (window x streams) never
         * either. */
        task->consumed_unsignaled += n;
        if (task->consumed_unsignaled >= task->consume_signal_at || st.end != BeamEnd::OPEN) {
            task->consumed_unsignaled = 0;
            task->mplx->signal(task->stream_id);
        }
        if (task->body_limit && task->body_read > task->body_limit) {
            apr_bucket_free(buf);
            ap_log_cerror(APLOG_MARK, APLOG_INFO, 0, c, H2XLOGNO(10025)
                          "h2x_c2(%s): request body larger than LimitRequestBody %"
                          APR_OFF_T_FMT, c->log_id, task->body_limit);
            return APR_ENOSPC;
        }
        APR_BRIGADE_INSERT_TAIL(held, apr_bucket_heap_create(buf, n, apr_bucket_free,
                                                             c->bucket_alloc));
    }
    if (st.buffered == 0 && st.end == BeamEnd::COMPLETE) {
        APR_BRIGADE_INSERT_TAIL(held, apr_bucket_eos_create(c->bucket_alloc));
    }
    return APR_SUCCESS;
}

/* Moves the buckets of `held` before `upto` (null: all) to `bb`; the EOS
 * goes along when nothing else is left, and brings the trailers. */
void net_in_hand_out(C2Task *task, apr_bucket_brigade *held, apr_bucket *upto,
                     apr_bucket_brigade *bb) noexcept
{
    while (!APR_BRIGADE_EMPTY(held)) {
        apr_bucket *b = APR_BRIGADE_FIRST(held);
        if (b == upto && !APR_BUCKET_IS_EOS(b)) {
            break;
        }
        if (APR_BUCKET_IS_EOS(b)) {
            deliver_trailers(task);
        }
        APR_BUCKET_REMOVE(b);
        APR_BRIGADE_INSERT_TAIL(bb, b);
    }
}

/* SPECULATIVE: copies of up to `readbytes` held bytes; nothing is taken. */
apr_status_t net_in_peek(apr_bucket_brigade *held, apr_off_t readbytes,
                         apr_bucket_brigade *bb) noexcept
{
    apr_off_t left = readbytes > 0 ? readbytes : APR_INT32_MAX;
    for (apr_bucket *b = APR_BRIGADE_FIRST(held);
         b != APR_BRIGADE_SENTINEL(held) && left > 0; b = APR_BUCKET_NEXT(b)) {
        apr_bucket *copy = nullptr;
        apr_status_t rv = apr_bucket_copy(b, &copy);
        if (rv != APR_SUCCESS) {
            return rv;
        }
        /* Into `bb` before a split: a fresh copy still carries the ring
         * links of `b`, and a split would link its remainder into `held`,
         * leaving held's tail pointing at a bucket of `bb` (appends to
         * `held` then went astray). */
        APR_BRIGADE_INSERT_TAIL(bb, copy);
        if (!APR_BUCKET_IS_METADATA(copy)) {
            if (static_cast<apr_off_t>(copy->length) > left) {
                apr_bucket_split(copy, static_cast<apr_size_t>(left));
                apr_bucket_delete(APR_BUCKET_NEXT(copy));
            }
            left -= static_cast<apr_off_t>(copy->length);
        }
    }
    return APR_SUCCESS;
}

/* EATCRLF: drops the CR and LF bytes at the front of what is held. */
void net_in_eat_crlf(apr_bucket_brigade *held) noexcept
{
    while (!APR_BRIGADE_EMPTY(held)) {
        apr_bucket *b = APR_BRIGADE_FIRST(held);
        const char *data = nullptr;
        apr_size_t len = 0;
        if (APR_BUCKET_IS_METADATA(b)
            || apr_bucket_read(b, &data, &len, APR_BLOCK_READ) != APR_SUCCESS) {
            return;
        }
        apr_size_t skip = 0;
        while (skip < len && (data[skip] == '\r' || data[skip] == '\n')) {
            ++skip;
        }
        if (skip < len) {
            if (skip) {
                apr_bucket_split(b, skip);
                apr_bucket_delete(b);
            }
            return;
        }
        apr_bucket_delete(b);
    }
}

apr_status_t net_in_filter(ap_filter_t *f, apr_bucket_brigade *bb, ap_input_mode_t mode,
                           apr_read_type_e block, apr_off_t readbytes) noexcept
{
    conn_rec *c = f->c;
    C2Task *task = task_of(c);
    if (mode == AP_MODE_INIT) {
        return APR_SUCCESS;
    }
    if (!task || c->aborted) {
        return APR_ECONNABORTED;
    }
    if (!task->in || (task->websocket && !task->ws_open)) {
        /* No body; for a WebSocket, none before the handshake is done (the
         * HTTP/1.1 handshake has none): what the client sends is the
         * tunnel's, read once the 200 is out (mod_proxy_http's prefetch
         * must not wait for it). */
        APR_BRIGADE_INSERT_TAIL(bb, apr_bucket_eos_create(c->bucket_alloc));
        return APR_SUCCESS;
    }
    auto *ctx = static_cast<NetInCtx *>(f->ctx);
    if (!ctx) {
        ctx = static_cast<NetInCtx *>(apr_pcalloc(c->pool, sizeof(NetInCtx)));
        ctx->held = apr_brigade_create(c->pool, c->bucket_alloc);
        f->ctx = ctx;
    }
    if (task->websocket) {
        /* Before looking at the beam: a wake-up after this is for data we
         * have not seen (h2x_ws.h). */
        task->ws_wake.drain();
    }
    apr_status_t rv = check_body_length(task, c);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    if (block == APR_BLOCK_READ && !maybe_send_continue(task)) {
        APR_BRIGADE_INSERT_TAIL(bb, apr_bucket_eos_create(c->bucket_alloc));
        return APR_SUCCESS;
    }
    if (APR_BRIGADE_EMPTY(ctx->held)) {
        rv = net_in_fill(task, c, ctx->held, block);
        if (rv != APR_SUCCESS) {
            return rv;
        }
        if (APR_BRIGADE_EMPTY(ctx->held)) {
            return block == APR_NONBLOCK_READ ? APR_EAGAIN : APR_SUCCESS;
        }
    }
    if (task->ws_open && APR_BUCKET_IS_EOS(APR_BRIGADE_FIRST(ctx->held))) {
        /* The client ended its side of the WebSocket: to the tunnel, that
         * reads as a socket's end of file. */
        return APR_EOF;
    }
    switch (mode) {
    case AP_MODE_SPECULATIVE:
        return net_in_peek(ctx->held, readbytes, bb);
    case AP_MODE_EATCRLF:
        net_in_eat_crlf(ctx->held);
        return APR_SUCCESS;
    case AP_MODE_EXHAUSTIVE:
        net_in_hand_out(task, ctx->held, nullptr, bb);
        return APR_SUCCESS;
    case AP_MODE_GETLINE:
        /* A line, or what is held of it: ap_rgetline() asks again. */
        rv = apr_brigade_split_line(bb, ctx->held, APR_BLOCK_READ, HUGE_STRING_LEN);
        if (!APR_BRIGADE_EMPTY(bb) && APR_BUCKET_IS_EOS(APR_BRIGADE_LAST(bb))) {
            deliver_trailers(task);
        }
        return rv;
    case AP_MODE_READBYTES:
    case AP_MODE_INIT:
        break;
    }
    apr_bucket *upto = nullptr;
    if (readbytes > 0) {
        rv = apr_brigade_partition(ctx->held, readbytes, &upto);
        if (rv != APR_SUCCESS && rv != APR_INCOMPLETE) {
            return rv;
        }
        if (upto == APR_BRIGADE_SENTINEL(ctx->held)) {
            upto = nullptr;
        }
    }
    net_in_hand_out(task, ctx->held, upto, bb);
    return APR_SUCCESS;
}

/* ap_send_error_response() starts an error document: on a c2 whose head
 * went out already, make response_filter() reset the stream instead. */
void error_after_head(request_rec *r) noexcept
{
    if (!r->connection->master) {
        return;
    }
    for (ap_filter_t *f = r->output_filters; f; f = f->next) {
        if (f->frec == g_response_filter) {
            auto *ctx = static_cast<ResponseCtx *>(f->ctx);
            if (ctx && ctx->head_sent) {
                ctx->head_r = nullptr; /* response_filter() logs it */
            }
            return;
        }
    }
}

} // namespace

void c2_filter_register() noexcept
{
    ap_hook_insert_error_filter(error_after_head, nullptr, nullptr, APR_HOOK_REALLY_FIRST);
    g_response_filter = ap_register_output_filter("H2X_RESPONSE", response_filter, nullptr,
                                                  AP_FTYPE_PROTOCOL);
    g_net_out_filter = ap_register_output_filter("H2X_C2_NET_OUT", net_out_filter, nullptr,
                                                 AP_FTYPE_NETWORK);
    g_net_in_filter = ap_register_input_filter("H2X_C2_NET_IN", net_in_filter, nullptr,
                                               AP_FTYPE_NETWORK);
    c2_source_register();
}

void c2_filter_child_init() noexcept
{
    g_logio_out = APR_RETRIEVE_OPTIONAL_FN(ap_logio_add_bytes_out);
    g_logio_in = APR_RETRIEVE_OPTIONAL_FN(ap_logio_add_bytes_in);
}

void c2_filter_count_request_head(conn_rec *c2, apr_off_t bytes) noexcept
{
    if (g_logio_in && bytes > 0) {
        g_logio_in(c2, bytes);
    }
}

void c2_filter_setup_connection(conn_rec *c2) noexcept
{
    ap_add_input_filter_handle(g_net_in_filter, nullptr, nullptr, c2);
    ap_add_output_filter_handle(g_net_out_filter, nullptr, nullptr, c2);
}

namespace {
apr_status_t forget_request(void *data) noexcept
{
    static_cast<C2Task *>(data)->r = nullptr;
    return APR_SUCCESS;
}
} // namespace

void c2_filter_setup_request(request_rec *r) noexcept
{
    ap_remove_output_filter_byhandle(r->output_filters, "HTTP_HEADER");
    ap_add_output_filter_handle(g_response_filter, nullptr, r, r->connection);
    c2_source_setup_request(r);
    C2Task *task = task_of(r->connection);
    if (task) {
        task->r = r;
        /* The EOR bucket destroys r; httpd may read c2 after that (its
         * pipeline check), so forget r with its pool. */
        apr_pool_cleanup_register(r->pool, task, forget_request, apr_pool_cleanup_null);
    }
}

} // namespace h2x
