/* h2x_conn_loop.cpp: see h2x_conn_loop.h. */
#include "h2x_private.h"
#include "h2x_conn_loop.h"
#include "h2x_child_thread.h"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <mutex>

#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <apr_portable.h>
#include <apr_thread_proc.h>

#include <ap_mpm.h>
#include <http_connection.h>
#include <http_core.h>
#include <http_config.h>
#include <http_log.h>
#include <mpm_common.h>

#include "h2x_config.h"
#include "h2x_conn_ctx.h"
#include "h2x_session.h"

namespace h2x {

enum class LoopState { OUT, PENDING, IDLE, WAIT, TURN, WORKER, LINGER, GRAVE };

/* Why a connection goes to an MPM worker: to run its session, or to be
 * closed (ended, expired, or the child stops). */
enum class HandOff { RUN, CLOSE };

struct LoopEntry {
    conn_rec *c;
    /* The MPM's scoreboard handle of the connection (the slot of the MPM
     * thread that last ran it): the MPM unsets c->sbh while the connection
     * is suspended; requests served here count on that slot (server-status
     * "Total Accesses", h2x_status.cpp). */
    void *sbh;
    int fd;
    LoopState state;
    HandOff why;
    apr_time_t deadline;    /* IDLE: KeepAliveTimeout ends; WAIT: the next
                             * turn at the latest; LINGER: give up; GRAVE:
                             * the pool may go */
    apr_time_t suspended_at; /* when the MPM suspended it (on_suspend()) */
    LoopEntry *prev, *next; /* its list (idle, waiting, ...), oldest first */
    bool woken;             /* its streams had news since its last turn began */
    bool in_ready;          /* in the ready stack */
    LoopEntry *ready_next;
};

namespace {

struct List {
    LoopEntry *head = nullptr, *tail = nullptr;
};

struct Loop {
    int epfd = -1;
    int evfd = -1;          /* wakes the loop: stop, or expire all */
    apr_thread_t *thread = nullptr;
    std::mutex mutex;       /* the lists and every entry's state */
    List idle;              /* IDLE and TURN entries, in the order they went idle */
    List linger;            /* LINGER entries, in the order they closed */
    List grave;             /* GRAVE entries, closed, their pools still kept */
    List busy;              /* WORKER entries (for an ungraceful stop) */
    List waiting;           /* WAIT entries, any order */
    LoopEntry *ready = nullptr; /* WAIT entries to run now (news, or due) */
    apr_time_t wait_due = 0;    /* no WAIT deadline before this (0: none) */
    bool stopping = false;  /* under mutex: graceful stop, adopt no more */
    bool quit = false;      /* under mutex: the child's pool goes */
};

/* The child's loop: made at child_init and never freed (a late callback
 * of the MPM may still look at it while the process exits). */
Loop *g_loop = nullptr;
std::atomic<bool> g_running{false};
bool g_may_start = true; /* set at child_init, read-only after */

/* Modules whose request hooks (authentication, access, fixups) may wait on
 * a network service or run an administrator's code: with one of them
 * loaded, requests never start on the loop's thread. */
const char *const BLOCKING_MODULES[] = {
    "mod_authnz_ldap.c", "mod_authn_dbd.c", "mod_authz_dbd.c", "mod_authn_dbm.c",
    "mod_authnz_fcgi.c", "mod_auth_openidc.c", "mod_auth_mellon.c", "mod_auth_gssapi.c",
    "mod_auth_kerb.c", "mod_auth_cas.c", "mod_lua.c", "mod_perl.c", "mod_python.c",
    "mod_wsgi.c", "mod_security2.c", "mod_evasive20.c", "mod_qos.c",
};

constexpr int MAX_EVENTS = 64;
constexpr apr_interval_time_t SWEEP_EVERY = apr_time_from_sec(1);
/* How long a closing connection may take to read the client's last bytes
 * (the MPM's SECONDS_TO_LINGER). */
constexpr apr_interval_time_t LINGER_MAX = apr_time_from_sec(2);
/* The same while the child stops: shorter, but not none - closing with
 * the client's bytes unread resets the connection, and the client may
 * lose our GOAWAY with it. */
constexpr apr_interval_time_t LINGER_STOPPING = apr_time_from_msec(500);
/* The event MPM writes to a connection's records right after its
 * suspend_connection hook returned (notify_suspend(): c->sbh, and the
 * record's "suspended" flag), when the loop may already have it. A thread
 * preempted between the two can come back after the connection closed, so
 * the pool of a connection suspended less than this long ago is kept that
 * long (in the grave list) before it is destroyed. */
constexpr apr_interval_time_t SUSPEND_GRACE = apr_time_from_sec(1);

void list_append(List *l, LoopEntry *e) noexcept
{
    e->next = nullptr;
    e->prev = l->tail;
    if (l->tail) {
        l->tail->next = e;
    }
    else {
        l->head = e;
    }
    l->tail = e;
}

void list_remove(List *l, LoopEntry *e) noexcept
{
    if (e->prev) {
        e->prev->next = e->next;
    }
    else {
        l->head = e->next;
    }
    if (e->next) {
        e->next->prev = e->prev;
    }
    else {
        l->tail = e->prev;
    }
    e->prev = e->next = nullptr;
}

/* Wakes the loop thread (its eventfd). */
void poke(Loop *l) noexcept
{
    uint64_t one = 1;
    ssize_t w = ::write(l->evfd, &one, sizeof(one));
    (void)w;
}

/* Under the mutex: `e` to be run by the loop thread soon. */
void ready_push(Loop *l, LoopEntry *e) noexcept
{
    if (!e->in_ready) {
        e->in_ready = true;
        e->ready_next = l->ready;
        l->ready = e;
    }
}

/* Under the mutex. */
void ready_remove(Loop *l, LoopEntry *e) noexcept
{
    if (!e->in_ready) {
        return;
    }
    for (LoopEntry **p = &l->ready; *p; p = &(*p)->ready_next) {
        if (*p == e) {
            *p = e->ready_next;
            break;
        }
    }
    e->in_ready = false;
    e->ready_next = nullptr;
}

/* Under the mutex: `e`, its socket in the epoll set, waits for its
 * streams' news (or the client) until `deadline`. True when the loop
 * thread must be poked to see it in time (news came already, or the
 * deadline is earlier than any it knows). */
bool park_locked(Loop *l, LoopEntry *e, apr_time_t deadline) noexcept
{
    e->state = LoopState::WAIT;
    e->deadline = deadline;
    list_append(&l->waiting, e);
    bool earlier = !l->wait_due || deadline < l->wait_due;
    if (earlier) {
        l->wait_due = deadline;
    }
    if (e->woken) {
        ready_push(l, e);
    }
    return earlier || e->woken;
}

/* Mplx::Waker, on a thread that holds one of the connection's tasks (under
 * the Mplx's lock: the connection and its entry live): news for a
 * connection whose session parked. */
void waker(void *arg) noexcept
{
    auto *e = static_cast<LoopEntry *>(arg);
    Loop *l = g_loop;
    bool push;
    {
        std::lock_guard<std::mutex> lock(l->mutex);
        e->woken = true;
        push = e->state == LoopState::WAIT && !e->in_ready;
        if (push) {
            ready_push(l, e);
        }
    }
    if (push) {
        poke(l);
    }
}

/* The entry's socket joins the epoll set (readable, or the peer's
 * close). */
bool watch(Loop *l, LoopEntry *e) noexcept
{
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLRDHUP;
    ev.data.ptr = e;
    return epoll_ctl(l->epfd, EPOLL_CTL_ADD, e->fd, &ev) == 0;
}

/* The end of a connection: its pool is the MPM's per-connection pool;
 * destroying it closes the socket, deletes the session (h2x_c1.cpp) and
 * runs the MPM's cleanups (connection count, suspended count). Not before
 * SUSPEND_GRACE after the MPM suspended it. */
void finish(LoopEntry *e) noexcept
{
    Loop *l = g_loop;
    apr_time_t until = e->suspended_at + SUSPEND_GRACE;
    if (e->suspended_at && apr_time_now() < until) {
        /* Only the pool must wait: the session (most of a connection's
         * memory) goes now. */
        ConnCtx *ctx = conn_ctx(e->c);
        if (ctx && ctx->session && !ctx->in_run) {
            Session *done = ctx->session;
            ctx->session = nullptr;
            delete done;
        }
        {
            std::lock_guard<std::mutex> lock(l->mutex);
            e->state = LoopState::GRAVE;
            e->deadline = until;
            list_append(&l->grave, e);
        }
        poke(l); /* the loop's next sweep must come by then */
        return;
    }
    apr_pool_destroy(e->c->pool);
}

/* Worker thread: close the connection as the MPM would. The
 * pre_close_connection hooks run first (ours says GOAWAY(NO_ERROR) if the
 * session has not ended, Session::pre_close(); mod_ssl's close_notify),
 * then our side shuts down, each write bounded by LINGER_MAX as in the
 * MPM. What the client still sends is read and dropped by the loop for up
 * to LINGER_MAX (a reset would lose the GOAWAY), LINGER_STOPPING while the
 * child stops. */
void close_connection(LoopEntry *e) noexcept
{
    conn_rec *c = e->c;
    Loop *l = g_loop;
    {
        std::lock_guard<std::mutex> lock(l->mutex);
        if (e->state == LoopState::WORKER) {
            list_remove(&l->busy, e);
        }
        e->state = LoopState::OUT;
    }
    c->keepalive = AP_CONN_CLOSE;
    apr_socket_t *csd = ap_get_conn_socket(c);
    if (!csd) {
        finish(e);
        return;
    }
    /* ap_start_lingering_close() marks c->sbh's scoreboard slot
     * SERVER_CLOSING. That slot belongs to the MPM thread that last ran
     * the connection, not to this one, and is idle again by now: the mark
     * would stay, the parent would count one idle thread less and start
     * a spare child for it. */
    c->sbh = nullptr;
    apr_socket_timeout_set(csd, LINGER_MAX);
    if (ap_start_lingering_close(c)) {
        finish(e);
        return;
    }
    apr_socket_timeout_set(csd, 0);
    {
        std::lock_guard<std::mutex> lock(l->mutex);
        e->state = LoopState::LINGER;
        e->deadline = apr_time_now() + (l->stopping ? LINGER_STOPPING : LINGER_MAX);
        list_append(&l->linger, e);
    }
    if (!watch(l, e)) {
        {
            std::lock_guard<std::mutex> lock(l->mutex);
            list_remove(&l->linger, e);
        }
        finish(e);
    }
}

/* Loop thread: a lingering connection is done (the client closed, or its
 * time is up). */
void linger_done(Loop *l, LoopEntry *e) noexcept
{
    epoll_ctl(l->epfd, EPOLL_CTL_DEL, e->fd, nullptr);
    {
        std::lock_guard<std::mutex> lock(l->mutex);
        list_remove(&l->linger, e);
        e->state = LoopState::OUT;
    }
    finish(e);
}

/* Loop thread: read and drop what the client sends on a closing
 * connection; done at its end. */
void linger_read(Loop *l, LoopEntry *e) noexcept
{
    char buf[2048];
    for (;;) {
        ssize_t n = ::recv(e->fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (n > 0) {
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
            return;
        }
        linger_done(l, e);
        return;
    }
}

/* An MPM worker, its session parked (WAITING): back into the loop, which
 * runs the session's next turn itself. False: it cannot; close it. */
bool park_from_worker(LoopEntry *e, apr_time_t deadline) noexcept
{
    Loop *l = g_loop;
    /* Into the epoll set first: once the entry is WAIT, the loop thread
     * may run it (and take it out of the set) at any time. */
    if (!watch(l, e)) {
        return false;
    }
    bool wake;
    {
        std::lock_guard<std::mutex> lock(l->mutex);
        list_remove(&l->busy, e);
        wake = park_locked(l, e, deadline);
    }
    if (wake) {
        poke(l);
    }
    return true;
}

/* An MPM worker, from the timed callback: run, expire or close the
 * session the loop gave up. */
void worker_callback(void *baton) noexcept
{
    auto *e = static_cast<LoopEntry *>(baton);
    conn_rec *c = e->c;
    ConnCtx *ctx = conn_ctx(c);
    Session *session = ctx ? ctx->session : nullptr;
    if (!session || e->why == HandOff::CLOSE) {
        close_connection(e);
        return;
    }
    /* The MPM's threads are made with ap_thread_create(), which records
     * them for ap_thread_current(); without it, no request starts on this
     * thread (h2x_c2_inline.h needs the apr_thread_t). */
#if AP_HAS_THREAD_LOCAL
    c->current_thread = ap_thread_current();
#else
    c->current_thread = nullptr;
#endif
    c->sbh = e->sbh;
    {
        std::lock_guard<std::mutex> lock(g_loop->mutex);
        e->woken = false;
    }
    ctx->in_run = true;
    RunResult result = session->run(true, false, true);
    ctx->in_run = false;
    if (result == RunResult::WAITING && park_from_worker(e, session->wait_deadline())) {
        return; /* the loop's now: hands off */
    }
    if (result != RunResult::YIELDED || !ConnLoop::adopt(c, false)) {
        close_connection(e);
    }
}

void hand_off(LoopEntry *e, HandOff why) noexcept
{
    e->why = why;
    apr_status_t rv = ap_mpm_register_timed_callback(0, worker_callback, e);
    if (rv != APR_SUCCESS) {
        /* Cannot happen with the event MPM; nothing else can run it. */
        ap_log_cerror(APLOG_MARK, APLOG_ERR, rv, e->c, H2XLOGNO(10047)
                      "h2x_session(%ld): cannot hand the connection to an MPM "
                      "worker; closing it", e->c->id);
        close_connection(e);
    }
}

/* Loop thread: take `e` out of the set and the list, to a worker. */
void leave(Loop *l, LoopEntry *e, HandOff why) noexcept
{
    epoll_ctl(l->epfd, EPOLL_CTL_DEL, e->fd, nullptr);
    {
        std::lock_guard<std::mutex> lock(l->mutex);
        list_remove(&l->idle, e);
        list_append(&l->busy, e);
        e->state = LoopState::WORKER;
    }
    hand_off(e, why);
}

/* Loop thread: the client sent something on `e`'s connection. */
void turn(Loop *l, LoopEntry *e, apr_thread_t *self) noexcept
{
    bool linger = false;
    {
        std::lock_guard<std::mutex> lock(l->mutex);
        if (e->state == LoopState::LINGER) {
            linger = true;
        }
        else if (e->state == LoopState::WAIT) {
            /* While the turn runs, it is in the idle list as any TURN. */
            list_remove(&l->waiting, e);
            list_append(&l->idle, e);
            e->state = LoopState::TURN;
            e->woken = false;
        }
        else if (e->state != LoopState::IDLE) {
            return;
        }
        else {
            e->state = LoopState::TURN;
            e->woken = false;
        }
    }
    if (linger) {
        linger_read(l, e);
        return;
    }
    conn_rec *c = e->c;
    ConnCtx *ctx = conn_ctx(c);
    Session *session = ctx ? ctx->session : nullptr;
    if (!session) {
        leave(l, e, HandOff::CLOSE);
        return;
    }
    c->current_thread = self;
    c->sbh = e->sbh;
    ctx->in_run = true;
    RunResult result = session->run(true, true, true);
    ctx->in_run = false;
    switch (result) {
    case RunResult::WAITING: {
        std::lock_guard<std::mutex> lock(l->mutex);
        list_remove(&l->idle, e);
        park_locked(l, e, session->wait_deadline()); /* this thread looks next */
        return;
    }
    case RunResult::YIELDED: {
        std::lock_guard<std::mutex> lock(l->mutex);
        e->state = LoopState::IDLE;
        e->deadline = session->idle_deadline();
        if (l->idle.tail != e) {
            list_remove(&l->idle, e);
            list_append(&l->idle, e);
        }
        if (l->stopping) {
            break; /* the sweep below the events expires it */
        }
        return;
    }
    case RunResult::NEEDS_THREAD:
        leave(l, e, HandOff::RUN);
        return;
    case RunResult::CLOSED:
        leave(l, e, HandOff::CLOSE);
        return;
    }
}

/* Loop thread: end what is past its deadline in `list` (all of it when
 * the child stops): idle connections go to a worker to be closed,
 * lingering ones are closed here. The lists are in the order their
 * deadlines were set, so the scan stops at the first one not yet due,
 * unless `full`. Returns the next deadline, 0 for none. */
apr_time_t sweep(Loop *l, List *list, apr_time_t now, bool full) noexcept
{
    apr_time_t next = 0;
    for (;;) {
        LoopEntry *due = nullptr;
        {
            std::lock_guard<std::mutex> lock(l->mutex);
            for (LoopEntry *e = list->head; e; e = e->next) {
                if (e->state != LoopState::IDLE && e->state != LoopState::LINGER
                    && e->state != LoopState::GRAVE) {
                    continue;
                }
                if ((l->stopping && e->state == LoopState::IDLE) || e->deadline <= now) {
                    due = e;
                    break;
                }
                if (!next || e->deadline < next) {
                    next = e->deadline;
                }
                if (!full) {
                    break;
                }
            }
        }
        if (!due) {
            return next;
        }
        if (due->state == LoopState::LINGER) {
            linger_done(l, due);
            continue;
        }
        if (due->state == LoopState::GRAVE) {
            {
                std::lock_guard<std::mutex> lock(l->mutex);
                list_remove(&l->grave, due);
                due->state = LoopState::OUT;
            }
            apr_pool_destroy(due->c->pool);
            continue;
        }
        ap_log_cerror(APLOG_MARK, APLOG_TRACE1, 0, due->c,
                      "h2x_session(%ld): idle connection expired", due->c->id);
        leave(l, due, HandOff::CLOSE);
    }
}

/* Loop thread: WAIT entries past their deadline go on the ready stack. */
void sweep_waiting(Loop *l, apr_time_t now) noexcept
{
    std::lock_guard<std::mutex> lock(l->mutex);
    if (!l->wait_due || now < l->wait_due) {
        return;
    }
    apr_time_t next = 0;
    for (LoopEntry *e = l->waiting.head; e; e = e->next) {
        if (e->deadline <= now) {
            ready_push(l, e);
        }
        else if (!next || e->deadline < next) {
            next = e->deadline;
        }
    }
    l->wait_due = next;
}

/* Loop thread: turns for the parked sessions that had news (or are due),
 * at most `max` of them before the loop looks at its sockets again. */
void run_ready(Loop *l, apr_thread_t *self, int max) noexcept
{
    for (int i = 0; i < max; ++i) {
        LoopEntry *e;
        {
            std::lock_guard<std::mutex> lock(l->mutex);
            e = l->ready;
            if (!e) {
                return;
            }
            l->ready = e->ready_next;
            e->in_ready = false;
            e->ready_next = nullptr;
            if (e->state != LoopState::WAIT) {
                continue; /* turned since, from its socket */
            }
        }
        turn(l, e, self);
    }
}

void *APR_THREAD_FUNC loop_run(apr_thread_t *self, void *) noexcept
{
    Loop *l = g_loop;
    epoll_event evs[MAX_EVENTS];
    apr_time_t next_full = apr_time_now() + SWEEP_EVERY;
    apr_time_t next_due = 0;
    for (;;) {
        apr_time_t now = apr_time_now();
        apr_time_t until = next_full;
        if (next_due && next_due < until) {
            until = next_due;
        }
        bool ready;
        {
            std::lock_guard<std::mutex> lock(l->mutex);
            ready = l->ready != nullptr;
            if (l->wait_due && l->wait_due < until) {
                until = l->wait_due;
            }
        }
        int ms = ready || until <= now ? 0 : static_cast<int>((until - now + 999) / 1000);
        int n = epoll_wait(l->epfd, evs, MAX_EVENTS, ms);
        bool stop_now = false;
        for (int i = 0; i < n; ++i) {
            if (evs[i].data.ptr == nullptr) {
                uint64_t v;
                ssize_t r = ::read(l->evfd, &v, sizeof(v));
                (void)r;
                std::lock_guard<std::mutex> lock(l->mutex);
                stop_now = l->quit;
                continue;
            }
            turn(l, static_cast<LoopEntry *>(evs[i].data.ptr), self);
        }
        if (stop_now) {
            break;
        }
        now = apr_time_now();
        sweep_waiting(l, now);
        run_ready(l, self, MAX_EVENTS);
        now = apr_time_now();
        bool full = now >= next_full;
        if (full) {
            next_full = now + SWEEP_EVERY;
        }
        if (full || (next_due && next_due <= now) || n > 0) {
            next_due = 0;
            for (List *list : {&l->idle, &l->linger, &l->grave}) {
                apr_time_t t = sweep(l, list, now, full);
                if (t && (!next_due || t < next_due)) {
                    next_due = t;
                }
            }
        }
    }
    return nullptr;
}

apr_status_t loop_stop(void *) noexcept
{
    Loop *l = g_loop;
    g_running.store(false);
    {
        std::lock_guard<std::mutex> lock(l->mutex);
        l->quit = true;
        l->stopping = true;
    }
    poke(l);
    apr_status_t rv;
    apr_thread_join(&rv, l->thread);
    l->thread = nullptr;
    return APR_SUCCESS;
}

bool any_server_on(server_rec *s) noexcept
{
    for (; s; s = s->next) {
        if (server_config(s).event_loop) {
            return true;
        }
    }
    return false;
}

} // namespace

void ConnLoop::child_init(apr_pool_t *pchild, server_rec *s) noexcept
{
    int async = 0;
    if (ap_mpm_query(AP_MPMQ_IS_ASYNC, &async) != APR_SUCCESS || !async || !any_server_on(s)) {
        return;
    }
    for (const char *name : BLOCKING_MODULES) {
        if (ap_find_linked_module(name)) {
            ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, s,
                         "mod_h2x: %s is loaded: requests start on MPM threads, "
                         "not on the event loop", name);
            g_may_start = false;
            break;
        }
    }
    auto *l = new Loop;
    l->epfd = epoll_create1(EPOLL_CLOEXEC);
    l->evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    apr_status_t rv = APR_SUCCESS;
    if (l->epfd < 0 || l->evfd < 0) {
        rv = APR_FROM_OS_ERROR(errno);
    }
    else {
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.ptr = nullptr;
        if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, l->evfd, &ev) != 0) {
            rv = APR_FROM_OS_ERROR(errno);
        }
    }
    g_loop = l;
    const char *failure = H2XLOGNO(10046) "mod_h2x: cannot start the event loop thread "
                                          "(H2xEventLoop); idle connections are left to "
                                          "the MPM";
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, rv, s, "%s", failure);
        return;
    }
    l->thread = start_child_thread(pchild, s, loop_run, nullptr, failure);
    if (!l->thread) {
        return;
    }
    apr_pool_cleanup_register(pchild, nullptr, loop_stop, apr_pool_cleanup_null);
    g_running.store(true);
    ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, s, H2XLOGNO(10049)
                 "mod_h2x: event loop started (H2xEventLoop)%s",
                 g_may_start ? "" : "; requests start on MPM threads");
}

void ConnLoop::child_stopping(bool graceful) noexcept
{
    Loop *l = g_loop;
    if (!l || !g_running.load()) {
        return;
    }
    {
        std::lock_guard<std::mutex> lock(l->mutex);
        l->stopping = true;
        if (!graceful) {
            /* As the MPM does with the connections its workers serve
             * (close_worker_sockets()): a session blocked on a worker (a
             * WebSocket, a long download) sees its socket end, and the
             * child can exit. */
            for (List *list : {&l->busy, &l->idle, &l->waiting, &l->linger}) {
                for (LoopEntry *e = list->head; e; e = e->next) {
                    ::shutdown(e->fd, SHUT_RDWR);
                }
            }
        }
    }
    poke(l);
}

bool ConnLoop::may_start_requests() noexcept
{
    return g_may_start;
}

namespace {

/* The connection's pool goes while the entry may still be linked (the
 * MPM closed a connection we were about to take, or the child exits):
 * take it out of the loop first. */
apr_status_t entry_cleanup(void *data) noexcept
{
    auto *e = static_cast<LoopEntry *>(data);
    Loop *l = g_loop;
    if (!l) {
        return APR_SUCCESS;
    }
    std::lock_guard<std::mutex> lock(l->mutex);
    switch (e->state) {
    case LoopState::PENDING:
    case LoopState::IDLE:
    case LoopState::TURN:
        epoll_ctl(l->epfd, EPOLL_CTL_DEL, e->fd, nullptr);
        list_remove(&l->idle, e);
        break;
    case LoopState::LINGER:
        epoll_ctl(l->epfd, EPOLL_CTL_DEL, e->fd, nullptr);
        list_remove(&l->linger, e);
        break;
    case LoopState::WAIT:
        epoll_ctl(l->epfd, EPOLL_CTL_DEL, e->fd, nullptr);
        list_remove(&l->waiting, e);
        break;
    case LoopState::GRAVE:
        list_remove(&l->grave, e);
        break;
    case LoopState::WORKER:
        list_remove(&l->busy, e);
        break;
    case LoopState::OUT:
        break;
    }
    ready_remove(l, e);
    e->state = LoopState::OUT;
    return APR_SUCCESS;
}

/* PENDING/WORKER -> IDLE: the socket joins the epoll set. */
bool activate(Loop *l, LoopEntry *e) noexcept
{
    bool stopping;
    {
        std::lock_guard<std::mutex> lock(l->mutex);
        e->state = LoopState::IDLE;
        stopping = l->stopping;
    }
    if (!watch(l, e)) {
        std::lock_guard<std::mutex> lock(l->mutex);
        list_remove(&l->idle, e);
        e->state = LoopState::OUT;
        return false;
    }
    if (stopping) {
        poke(l); /* child_stopping() came in between: its sweep must see this one */
    }
    return true;
}

/* The event MPM has suspended a connection c1_run() gave us: from here on
 * it does not touch it (two stores after this hook, notify_suspend(), come
 * long before the loop could have closed it: a close goes through an MPM
 * worker). Only now may the loop see it. */
void on_suspend(conn_rec *c, request_rec *) noexcept
{
    ConnCtx *ctx;
    if (c->master || !(ctx = conn_ctx(c)) || !ctx->loop_entry) {
        return;
    }
    auto *e = static_cast<LoopEntry *>(ctx->loop_entry);
    Loop *l = g_loop;
    bool pending;
    {
        std::lock_guard<std::mutex> lock(l->mutex);
        pending = e->state == LoopState::PENDING;
    }
    if (pending) {
        e->suspended_at = apr_time_now();
    }
    if (pending && !activate(l, e)) {
        /* Cannot happen short of descriptors; the connection is stuck in
         * the MPM's suspended state: close it. */
        ap_log_cerror(APLOG_MARK, APLOG_ERR, APR_FROM_OS_ERROR(errno), c, H2XLOGNO(10048)
                      "h2x_session(%ld): cannot add the connection to the event loop; "
                      "closing it", c->id);
        hand_off(e, HandOff::CLOSE);
    }
}

} // namespace

void ConnLoop::register_hooks() noexcept
{
    ap_hook_suspend_connection(on_suspend, nullptr, nullptr, APR_HOOK_MIDDLE);
}

bool ConnLoop::adopt(conn_rec *c, bool from_mpm) noexcept
{
    Loop *l = g_loop;
    ConnCtx *ctx = conn_ctx(c);
    if (!l || !g_running.load() || !ctx || !ctx->session || c->aborted
        || !server_config(ctx->server ? ctx->server : c->base_server).event_loop) {
        return false;
    }
    auto *e = static_cast<LoopEntry *>(ctx->loop_entry);
    if (!e) {
        apr_socket_t *sock = ap_get_conn_socket(c);
        apr_os_sock_t fd = -1;
        if (!sock || apr_os_sock_get(&fd, sock) != APR_SUCCESS || fd < 0) {
            return false;
        }
        e = static_cast<LoopEntry *>(apr_pcalloc(c->pool, sizeof(LoopEntry)));
        e->c = c;
        e->sbh = c->sbh;
        e->fd = fd;
        e->state = LoopState::OUT;
        ctx->loop_entry = e;
        apr_pool_pre_cleanup_register(c->pool, e, entry_cleanup);
        ctx->session->set_loop_waker(waker, e);
    }
    {
        std::lock_guard<std::mutex> lock(l->mutex);
        if (l->stopping) {
            return false; /* (a WORKER entry stays in busy: the caller closes it) */
        }
        if (e->state == LoopState::WORKER) {
            list_remove(&l->busy, e);
        }
        e->deadline = ctx->session->idle_deadline();
        e->state = LoopState::PENDING;
        list_append(&l->idle, e);
    }
    return from_mpm || activate(l, e);
}

} // namespace h2x
