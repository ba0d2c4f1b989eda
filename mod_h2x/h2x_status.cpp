/* h2x_status.cpp: see h2x_status.h. */
#include "h2x_private.h"
#include "h2x_status.h"

#include <mutex>
#include <set>

#include <http_protocol.h>
#include <mod_status.h>
#include <scoreboard.h>

#include "h2x_c2.h"
#include "h2x_conn_ctx.h"

#include "h2x_config.h"
#include "h2x_workers.h"

namespace h2x {

namespace {

std::mutex g_lock;                       /* guards g_sessions and their content */
std::set<SessionStatus *> g_sessions;

int status_hook(request_rec *r, int flags) noexcept
{
    if (!active()) {
        return OK;
    }
    bool short_report = (flags & AP_STATUS_SHORT) != 0;
    Workers *w = Workers::get();
    Workers::Stats ws = w ? w->stats() : Workers::Stats{0, 0, 0, 0, 0};
    std::lock_guard<std::mutex> lock(g_lock);
    if (short_report) {
        ap_rprintf(r, "H2xSessions: %lu\nH2xWorkers: %d\nH2xWorkersBusy: %d\nH2xQueued: %d\n",
                   static_cast<unsigned long>(g_sessions.size()), ws.threads, ws.busy, ws.queued);
        return OK;
    }
    ap_rputs("<hr>\n<h2>mod_h2x</h2>\n", r);
    ap_rprintf(r, "<p>Process %" APR_PID_T_FMT ": %lu HTTP/2 sessions; worker threads: %d "
               "(%d busy, %d idle, %d streams queued; min %d, max %d)</p>\n",
               getpid(), static_cast<unsigned long>(g_sessions.size()), ws.threads, ws.busy,
               ws.threads - ws.busy, ws.queued, ws.min_workers, ws.max_workers);
    if (g_sessions.empty()) {
        return OK;
    }
    ap_rputs("<table><tr><th>conn</th><th>protocol</th><th>client</th><th>streams</th>"
             "<th>open streams</th></tr>\n", r);
    for (SessionStatus *s : g_sessions) {
        std::lock_guard<std::mutex> session_lock(s->lock);
        ap_rprintf(r, "<tr><td>%ld</td><td>%s</td><td>%s</td><td>%lu</td><td>", s->conn_id,
                   ap_escape_html(r->pool, s->protocol.c_str()),
                   ap_escape_html(r->pool, s->client.c_str()),
                   static_cast<unsigned long>(s->streams_total));
        for (const auto &kv : s->streams) {
            ap_rprintf(r, "%d: %s [%s]<br>", kv.first,
                       ap_escape_html(r->pool, kv.second.what.c_str()), kv.second.state);
        }
        ap_rputs("</td></tr>\n", r);
    }
    ap_rputs("</table>\n", r);
    return OK;
}

/* A stream's request counts in the scoreboard as an HTTP/1.1 request does
 * (server-status "Total Accesses" and "Total kBytes"), on the worker
 * record c1 had when the stream started (C2Task::score_sbh) since c2 has
 * no slot of its own: one access and the bytes the
 * response put on the wire (%O). Several c2 of one connection finish at
 * once: one lock keeps their read-modify-write of the record apart. */
std::mutex g_score_lock;

int count_c2_request(request_rec *r) noexcept
{
    conn_rec *c2 = r->connection;
    if (!ap_extended_status || !c2->master || r->main) {
        return DECLINED;
    }
    ConnCtx *ctx = conn_ctx(c2);
    if (!ctx || !ctx->task || !ctx->task->score_sbh) {
        return DECLINED;
    }
    worker_score *ws = ap_get_scoreboard_worker(static_cast<ap_sb_handle_t *>(ctx->task->score_sbh));
    if (!ws) {
        return DECLINED;
    }
    apr_off_t bytes = ctx->task->bytes_out;
    std::lock_guard<std::mutex> lock(g_score_lock);
    ws->access_count++;
    ws->my_access_count++;
    ws->conn_count++;
    ws->bytes_served += bytes;
    ws->my_bytes_served += bytes;
    ws->conn_bytes += bytes;
    return DECLINED;
}

} // namespace

StatusEntry::StatusEntry(conn_rec *c1, const char *protocol) noexcept
{
    std::lock_guard<std::mutex> lock(g_lock);
    status_.conn_id = c1->id;
    status_.client = c1->client_ip ? c1->client_ip : "";
    status_.protocol = protocol ? protocol : "";
    g_sessions.insert(&status_);
}

StatusEntry::~StatusEntry()
{
    std::lock_guard<std::mutex> lock(g_lock);
    g_sessions.erase(&status_);
}

void StatusEntry::stream_started(std::int32_t id, const std::string &method,
                                 const std::string &path) noexcept
{
    std::lock_guard<std::mutex> lock(status_.lock);
    ++status_.streams_total;
    auto &st = status_.streams[id];
    st.what.reserve(method.size() + 1 + path.size());
    st.what.assign(method).append(1, ' ').append(path);
    st.state = "processing";
}

void StatusEntry::stream_update(std::int32_t id, const char *state) noexcept
{
    std::lock_guard<std::mutex> lock(status_.lock);
    auto it = status_.streams.find(id);
    if (it != status_.streams.end()) {
        it->second.state = state;
    }
}

void StatusEntry::stream_ended(std::int32_t id) noexcept
{
    std::lock_guard<std::mutex> lock(status_.lock);
    status_.streams.erase(id);
}

void status_register_hooks() noexcept
{
    APR_OPTIONAL_HOOK(ap, status_hook, status_hook, nullptr, nullptr, APR_HOOK_MIDDLE);
    ap_hook_log_transaction(count_c2_request, nullptr, nullptr, APR_HOOK_LAST);
}

} // namespace h2x
