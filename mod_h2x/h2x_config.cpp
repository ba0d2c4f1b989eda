/* h2x_config.cpp: mod_http2's directives for mod_h2x (see h2x_config.h).
 *
 * Contexts and defaults follow the mod_http2 that ships with httpd 2.4.71;
 * docs/directives/README.md lists them with their sources. Values are parsed
 * strictly: a number with trailing text, a value out of range or a word
 * that is not On/Off fails the configuration with a message that names the
 * directive and the value. */
#include "h2x_private.h"
#include "h2x_config.h"

#include <http_core.h>
#include <http_ssl.h>
#include <ap_mpm.h>
#include <apr_lib.h>

#include <algorithm>
#include <charconv>
#include <climits>
#include <cstdint>
#include <cstring>

namespace h2x {

namespace {

bool g_active = true; /* see active() */

constexpr apr_int64_t INT_MAX64 = INT_MAX;

/* ------------------------------------------------------------------ */
/* Value parsing: every helper returns nullptr or an error that names  */
/* the directive (cmd->cmd->name) and the offending value.             */

const char *bad_value(cmd_parms *cmd, const char *arg, const char *expected) noexcept
{
    return apr_psprintf(cmd->pool, "%s: '%s' is not %s", cmd->cmd->name, arg, expected);
}

/* A decimal integer in [lo, hi], nothing before or after it. */
const char *parse_int(cmd_parms *cmd, const char *arg, apr_int64_t lo, apr_int64_t hi,
                      apr_int64_t *out) noexcept
{
    const char *end = arg + std::strlen(arg);
    std::int64_t v = 0;
    auto [ptr, ec] = std::from_chars(arg, end, v);
    if (ec != std::errc() || ptr != end || ptr == arg || v < lo || v > hi) {
        const char *range = (hi == INT64_MAX)
            ? apr_psprintf(cmd->pool, "a number >= %" APR_INT64_T_FMT, lo)
            : apr_psprintf(cmd->pool, "a number between %" APR_INT64_T_FMT
                           " and %" APR_INT64_T_FMT, lo, hi);
        return bad_value(cmd, arg, range);
    }
    *out = v;
    return nullptr;
}

/* On or Off, any case. (TAKE1 instead of FLAG: httpd's FLAG error does
 * not repeat the bad value.) */
const char *parse_flag(cmd_parms *cmd, const char *arg, int *out) noexcept
{
    if (!strcasecmp(arg, "on")) {
        *out = 1;
    }
    else if (!strcasecmp(arg, "off")) {
        *out = 0;
    }
    else {
        return bad_value(cmd, arg, "On or Off");
    }
    return nullptr;
}

/* httpd's duration syntax: "30" (seconds), "500ms", "2min", "1h". */
const char *parse_duration(cmd_parms *cmd, const char *arg, apr_interval_time_t *out) noexcept
{
    apr_interval_time_t t = 0;
    if (!*arg || !(apr_isdigit(*arg))
        || ap_timeout_parameter_parse(arg, &t, "s") != APR_SUCCESS || t < 0) {
        return bad_value(cmd, arg, "a duration >= 0 (like 30, 500ms, 2min)");
    }
    *out = t;
    return nullptr;
}

/* ------------------------------------------------------------------ */
/* Config access and merging.                                          */

ServerConfig *server_conf(const server_rec *s) noexcept
{
    return s ? static_cast<ServerConfig *>(ap_get_module_config(s->module_config, &h2x_module))
             : nullptr;
}

template <typename T>
T pick(T add, T base) noexcept
{
    return add != static_cast<T>(UNSET) ? add : base;
}

apr_array_header_t *concat(apr_pool_t *p, apr_array_header_t *base, apr_array_header_t *add) noexcept
{
    if (base && add) {
        return apr_array_append(p, base, add);
    }
    return add ? add : base;
}

/* Inside <Directory>, <Location>, <Files>, <If> or .htaccess. */
bool in_dir_context(const cmd_parms *cmd) noexcept { return cmd->path != nullptr; }

bool in_htaccess(cmd_parms *cmd) noexcept
{
    return ap_check_cmd_context(cmd, NOT_IN_HTACCESS) != nullptr;
}

/* What a DirConfig looks like before any directive. */
constexpr DirConfig DIR_UNSET = {"unset", UNSET, UNSET, UNSET, UNSET, UNSET, UNSET,
                                 nullptr, nullptr};

/* Defaults for a server_rec without a config (never in practice); workers
 * are filled in by post_config from the main server. */
ServerConfig fallback_ = {
    "fallback", UNSET, UNSET, DEFAULT_MAX_SESSION_STREAMS, DEFAULT_WINDOW_SIZE,
    1, 4, DEFAULT_MAX_WORKER_IDLE_SECS, DEFAULT_STREAM_MAX_MEM, 1,
    DEFAULT_TLS_WARMUP_SIZE, DEFAULT_TLS_COOLDOWN_SECS, 1, DEFAULT_PUSH_DIARY_SIZE,
    nullptr, 0, 0, 0, 1, -1, 0, 0, DEFAULT_MAX_STREAM_ERRORS, 0, 0, 1, 0, nullptr, 1};

int mpm_threads() noexcept
{
    int threads = 0;
    if (ap_mpm_query(AP_MPMQ_MAX_THREADS, &threads) != APR_SUCCESS || threads < 1) {
        threads = 1;
    }
    return threads;
}

/* mod_http2's worker rule, see h2x_config.h. */
void derive_workers(int set_min, int set_max, int *min_w, int *max_w) noexcept
{
    int min = set_min != UNSET ? set_min : mpm_threads();
    int max = set_max != UNSET ? set_max : std::max(4, 3 * min / 2);
    if (set_min == UNSET && min > max) {
        min = max;
    }
    *min_w = min;
    *max_w = max;
}

/* Fill every UNSET field with its default. Runs while the config is read or
 * in post_config, both single-threaded. */
void resolve(ServerConfig *c) noexcept
{
    if (c->resolved) {
        return;
    }
    auto dflt = [](int &v, int d) { if (v == UNSET) v = d; };
    auto dflt64 = [](apr_int64_t &v, apr_int64_t d) { if (v == UNSET) v = d; };
    dflt(c->max_session_streams, DEFAULT_MAX_SESSION_STREAMS);
    dflt(c->window_size, DEFAULT_WINDOW_SIZE);
    derive_workers(c->min_workers, c->max_workers, &c->min_workers, &c->max_workers);
    dflt(c->max_worker_idle_secs, DEFAULT_MAX_WORKER_IDLE_SECS);
    dflt64(c->stream_max_mem, DEFAULT_STREAM_MAX_MEM);
    dflt(c->modern_tls_only, 1);
    dflt64(c->tls_warmup_size, DEFAULT_TLS_WARMUP_SIZE);
    dflt(c->tls_cooldown_secs, DEFAULT_TLS_COOLDOWN_SECS);
    dflt(c->push, 1);
    dflt(c->push_diary_size, DEFAULT_PUSH_DIARY_SIZE);
    dflt(c->copy_files, 0);
    dflt(c->early_hints, 0);
    dflt(c->padding_bits, 0);
    dflt(c->output_buffering, 1);
    /* stream_timeout stays < 0: "use Timeout" */
    dflt(c->max_data_frame_len, 0);
    dflt(c->max_header_block_len, 0);
    dflt(c->max_stream_errors, DEFAULT_MAX_STREAM_ERRORS);
    dflt(c->proxy_requests, 0);
    dflt(c->websockets, 0);
    dflt(c->inline_requests, 1);
    dflt(c->event_loop, 1);
    c->resolved = 1;
}

/* ------------------------------------------------------------------ */
/* Directive handlers. The generic ones read what to set from cmd->info */
/* (the command_rec's cmd_data).                                        */

struct FlagSpec {
    int ServerConfig::*server_field;
    int DirConfig::*dir_field; /* nullptr: server context only */
};

struct IntSpec {
    int ServerConfig::*field;
    apr_int64_t lo, hi;
};

struct Int64Spec {
    apr_int64_t ServerConfig::*field;
    apr_int64_t lo, hi;
};

const char *set_flag(cmd_parms *cmd, void *dirconf, const char *arg) noexcept
{
    auto *spec = static_cast<const FlagSpec *>(cmd->info);
    int v = 0;
    if (const char *err = parse_flag(cmd, arg, &v)) {
        return err;
    }
    if (spec->dir_field && in_dir_context(cmd)) {
        static_cast<DirConfig *>(dirconf)->*(spec->dir_field) = v;
    }
    else {
        server_conf(cmd->server)->*(spec->server_field) = v;
    }
    return nullptr;
}

const char *set_int(cmd_parms *cmd, void *, const char *arg) noexcept
{
    auto *spec = static_cast<const IntSpec *>(cmd->info);
    apr_int64_t v = 0;
    if (const char *err = parse_int(cmd, arg, spec->lo, spec->hi, &v)) {
        return err;
    }
    server_conf(cmd->server)->*(spec->field) = static_cast<int>(v);
    return nullptr;
}

const char *set_int64(cmd_parms *cmd, void *, const char *arg) noexcept
{
    auto *spec = static_cast<const Int64Spec *>(cmd->info);
    apr_int64_t v = 0;
    if (const char *err = parse_int(cmd, arg, spec->lo, spec->hi, &v)) {
        return err;
    }
    server_conf(cmd->server)->*(spec->field) = v;
    return nullptr;
}

/* H2MinWorkers / H2MaxWorkers: a number >= 1; when both are set in the
 * same scope, max must not be below min (whichever comes second reports). */
const char *set_workers(cmd_parms *cmd, void *dirconf, const char *arg) noexcept
{
    if (const char *err = set_int(cmd, dirconf, arg)) {
        return err;
    }
    const ServerConfig *c = server_conf(cmd->server);
    if (c->min_workers != UNSET && c->max_workers != UNSET && c->max_workers < c->min_workers) {
        return apr_psprintf(cmd->pool, "%s: '%s' leaves H2MaxWorkers (%d) below "
                            "H2MinWorkers (%d)", cmd->cmd->name, arg, c->max_workers,
                            c->min_workers);
    }
    return nullptr;
}

const char *set_worker_idle(cmd_parms *cmd, void *, const char *arg) noexcept
{
    apr_interval_time_t t = 0;
    if (const char *err = parse_duration(cmd, arg, &t)) {
        return err;
    }
    /* As in mod_http2, 0 means the default. Sub-second values round up. */
    apr_int64_t secs = (t + APR_USEC_PER_SEC - 1) / APR_USEC_PER_SEC;
    server_conf(cmd->server)->max_worker_idle_secs =
        t == 0 ? UNSET : static_cast<int>(std::min<apr_int64_t>(secs, INT_MAX));
    return nullptr;
}

const char *set_stream_timeout(cmd_parms *cmd, void *, const char *arg) noexcept
{
    apr_interval_time_t t = 0;
    if (const char *err = parse_duration(cmd, arg, &t)) {
        return err;
    }
    server_conf(cmd->server)->stream_timeout = t;
    return nullptr;
}

const char *set_push_diary_size(cmd_parms *cmd, void *, const char *arg) noexcept
{
    apr_int64_t v = 0;
    if (parse_int(cmd, arg, 0, 32768, &v) || (v & (v - 1)) != 0) {
        return bad_value(cmd, arg, "0 or a power of 2 up to 32768");
    }
    server_conf(cmd->server)->push_diary_size = static_cast<int>(v);
    return nullptr;
}

/* H2ProxyRequests: decided per connection, so like mod_http2 it sets the
 * server's value even inside <Directory>/<Location>. In .htaccess, read
 * while requests are served, it is accepted and has no effect. */
const char *set_proxy_requests(cmd_parms *cmd, void *, const char *arg) noexcept
{
    int v = 0;
    if (const char *err = parse_flag(cmd, arg, &v)) {
        return err;
    }
    if (!in_htaccess(cmd)) {
        server_conf(cmd->server)->proxy_requests = v;
    }
    return nullptr;
}

/* H2PushPriority mime-type [After|Before|Interleaved] [weight] */
const char *add_push_priority(cmd_parms *cmd, void *, const char *ctype, const char *dep,
                              const char *weight) noexcept
{
    if (!*ctype) {
        return bad_value(cmd, ctype, "a content type like text/css or *");
    }
    if (!weight && apr_isdigit(*dep)) { /* "H2PushPriority type 32" */
        weight = dep;
        dep = "After";
    }
    const char *dependency = nullptr;
    const char *default_weight = "16";
    if (!strcasecmp(dep, "after")) {
        dependency = "After";
    }
    else if (!strcasecmp(dep, "before")) {
        dependency = "Before";
        default_weight = nullptr;
        if (weight) {
            return apr_psprintf(cmd->pool, "%s: weight '%s' not allowed with Before",
                                cmd->cmd->name, weight);
        }
    }
    else if (!strcasecmp(dep, "interleaved")) {
        dependency = "Interleaved";
        default_weight = "256";
    }
    else {
        return bad_value(cmd, dep, "After, Before or Interleaved");
    }
    if (weight) {
        apr_int64_t w = 0;
        if (const char *err = parse_int(cmd, weight, 1, 256, &w)) { /* RFC 9113 §5.3.2 */
            return err;
        }
        weight = apr_psprintf(cmd->pool, "%d", static_cast<int>(w));
    }
    ServerConfig *c = server_conf(cmd->server);
    if (!c->push_priorities) {
        c->push_priorities = apr_array_make(cmd->pool, 5, sizeof(const char *[3]));
    }
    auto *entry = static_cast<const char **>(apr_array_push(c->push_priorities));
    entry[0] = ctype;
    entry[1] = dependency;
    entry[2] = weight ? weight : default_weight;
    return nullptr;
}

/* H2PushResource [add] uri [critical] */
const char *add_push_resource(cmd_parms *cmd, void *dirconf, const char *a1, const char *a2,
                              const char *a3) noexcept
{
    const char *uri = a1;
    const char *last = a2;
    if (a2 && !strcasecmp(a1, "add")) {
        uri = a2;
        last = a3;
    }
    else if (a3) {
        return bad_value(cmd, a3, "expected here: use H2PushResource [add] uri [critical]");
    }
    if (!*uri) {
        return bad_value(cmd, uri, "a URI");
    }
    if (last && strcasecmp(last, "critical")) {
        return bad_value(cmd, last, "'critical'");
    }
    auto *d = static_cast<DirConfig *>(dirconf);
    if (!d->push_resources) {
        d->push_resources = apr_array_make(cmd->pool, 5, sizeof(PushResource));
    }
    auto *res = static_cast<PushResource *>(apr_array_push(d->push_resources));
    res->uri_ref = uri;
    res->critical = last != nullptr;
    return nullptr;
}

/* H2EarlyHint name value */
const char *add_early_hint(cmd_parms *cmd, void *dirconf, const char *name,
                           const char *value) noexcept
{
    if (!*name || *ap_scan_http_token(name)) {
        return bad_value(cmd, name, "a header field name");
    }
    const char *v = value;
    while (apr_isspace(*v)) {
        ++v;
    }
    if (!*v || *ap_scan_http_field_content(v)) {
        return apr_psprintf(cmd->pool, "%s: '%s' is not a valid value for header '%s'",
                            cmd->cmd->name, value, name);
    }
    auto *d = static_cast<DirConfig *>(dirconf);
    if (!d->early_hint_headers) {
        d->early_hint_headers = apr_array_make(cmd->pool, 5, sizeof(EarlyHint));
    }
    auto *hint = static_cast<EarlyHint *>(apr_array_push(d->early_hint_headers));
    hint->name = name;
    hint->value = v;
    return nullptr;
}

/* H2SerializeHeaders on|off and H2SessionExtraFiles n: obsolete in mod_http2
 * and here. The value is still checked, then ignored with a warning. */
void note_obsolete(cmd_parms *cmd) noexcept
{
    const ap_directive_t *d = cmd->directive;
    const char *where = d ? apr_psprintf(cmd->pool, "%s:%d", d->filename, d->line_num)
                          : "unknown";
    ServerConfig *c = server_conf(cmd->server);
    if (!c->obsolete) {
        c->obsolete = apr_array_make(cmd->pool, 2, sizeof(const char *));
    }
    APR_ARRAY_PUSH(c->obsolete, const char *) =
        apr_psprintf(cmd->pool, "%s (%s)", cmd->cmd->name, where);
    /* The first read of the config (also `apache2 -t`) shows the warning on
     * the console; later reads leave it to post_config, once per start. */
    if (ap_state_query(AP_SQ_MAIN_STATE) == AP_SQ_MS_CREATE_PRE_CONFIG) {
        ap_log_perror(APLOG_MARK, APLOG_WARNING, 0, cmd->temp_pool, H2XLOGNO(10100)
                      "%s at %s is obsolete and ignored by mod_h2x", cmd->cmd->name, where);
    }
}

const char *set_obsolete_flag(cmd_parms *cmd, void *, const char *arg) noexcept
{
    int v = 0;
    if (const char *err = parse_flag(cmd, arg, &v)) {
        return err;
    }
    note_obsolete(cmd);
    return nullptr;
}

const char *set_obsolete_number(cmd_parms *cmd, void *, const char *arg) noexcept
{
    apr_int64_t v = 0;
    if (const char *err = parse_int(cmd, arg, 0, INT_MAX64, &v)) {
        return err;
    }
    note_obsolete(cmd);
    return nullptr;
}

/* ------------------------------------------------------------------ */
/* The table's specs.                                                  */

constexpr FlagSpec DIRECT{&ServerConfig::h2_direct, nullptr};
constexpr FlagSpec UPGRADE{&ServerConfig::h2_upgrade, &DirConfig::upgrade};
constexpr FlagSpec MODERN_TLS{&ServerConfig::modern_tls_only, nullptr};
constexpr FlagSpec PUSH{&ServerConfig::push, &DirConfig::push};
constexpr FlagSpec COPY_FILES{&ServerConfig::copy_files, &DirConfig::copy_files};
constexpr FlagSpec EARLY_HINTS{&ServerConfig::early_hints, nullptr};
constexpr FlagSpec OUTPUT_BUFFERING{&ServerConfig::output_buffering, nullptr};
constexpr FlagSpec WEBSOCKETS{&ServerConfig::websockets, nullptr};
constexpr FlagSpec INLINE_REQUESTS{&ServerConfig::inline_requests, nullptr};
constexpr FlagSpec EVENT_LOOP{&ServerConfig::event_loop, nullptr};

constexpr IntSpec MAX_STREAMS{&ServerConfig::max_session_streams, 1, INT_MAX64};
constexpr IntSpec WINDOW_SIZE{&ServerConfig::window_size, 1, INT_MAX64}; /* RFC 9113 §6.9.2 */
constexpr IntSpec MIN_WORKERS{&ServerConfig::min_workers, 1, INT_MAX64};
constexpr IntSpec MAX_WORKERS{&ServerConfig::max_workers, 1, INT_MAX64};
constexpr IntSpec TLS_COOLDOWN{&ServerConfig::tls_cooldown_secs, 0, INT_MAX64};
constexpr IntSpec PADDING{&ServerConfig::padding_bits, 0, 8};
constexpr IntSpec MAX_DATA_FRAME{&ServerConfig::max_data_frame_len, 0, INT_MAX64};
constexpr IntSpec MAX_HEADER_BLOCK{&ServerConfig::max_header_block_len, 0, INT_MAX64};
constexpr IntSpec MAX_STREAM_ERRORS{&ServerConfig::max_stream_errors, 0, INT_MAX64};

constexpr Int64Spec STREAM_MAX_MEM{&ServerConfig::stream_max_mem, 1, INT_MAX64};
constexpr Int64Spec TLS_WARMUP{&ServerConfig::tls_warmup_size, 0, INT64_MAX};

/* command_rec wants a C-style cmd_func in C++ builds (http_config.h);
 * httpd calls it with the arguments its args_how implies. The detour over
 * void (*)() is the cast GCC's -Wcast-function-type documents as generic.
 * cmd_data is non-const. */
template <typename F>
cmd_func fn(F f) noexcept
{
    return reinterpret_cast<cmd_func>(reinterpret_cast<void (*)()>(f));
}

/* Every handler goes through Handler<&f>::call. httpd hands a directive to
 * each module that defines its name in turn, until one fails it. While
 * mod_http2 is loaded too (!active()), mod_h2x declines them all: they are
 * mod_http2's alone, and mod_h2x's stricter checks cannot fail a value
 * that mod_http2 accepts. */
template <typename Sig, Sig F>
struct Handler;

template <typename... Args, const char *(*F)(cmd_parms *, Args...) noexcept>
struct Handler<const char *(*)(cmd_parms *, Args...) noexcept, F> {
    static const char *call(cmd_parms *cmd, Args... args) noexcept
    {
        return active() ? F(cmd, args...) : DECLINE_CMD;
    }
};

template <auto F>
cmd_func handler() noexcept
{
    return fn(&Handler<decltype(F), F>::call);
}

void *spec(const void *p) noexcept { return const_cast<void *>(p); }

} // namespace

/* Contexts: as mod_http2 in httpd 2.4.71 (`apache2 -L` with it loaded). */
const command_rec directives[] = {
    AP_INIT_TAKE1("H2Direct", handler<set_flag>(), spec(&DIRECT), RSRC_CONF,
                  "on to accept HTTP/2 prior knowledge (direct mode)"),
    AP_INIT_TAKE1("H2Upgrade", handler<set_flag>(), spec(&UPGRADE), RSRC_CONF | OR_AUTHCFG,
                  "on to allow HTTP/1.1 Upgrade to h2c"),
    AP_INIT_TAKE1("H2MaxSessionStreams", handler<set_int>(), spec(&MAX_STREAMS), RSRC_CONF,
                  "maximum number of concurrent streams per connection"),
    AP_INIT_TAKE1("H2WindowSize", handler<set_int>(), spec(&WINDOW_SIZE), RSRC_CONF,
                  "initial flow-control window for client DATA, in bytes"),
    AP_INIT_TAKE1("H2MinWorkers", handler<set_workers>(), spec(&MIN_WORKERS), RSRC_CONF,
                  "minimum number of HTTP/2 worker threads per child"),
    AP_INIT_TAKE1("H2MaxWorkers", handler<set_workers>(), spec(&MAX_WORKERS), RSRC_CONF,
                  "maximum number of HTTP/2 worker threads per child"),
    AP_INIT_TAKE1("H2MaxWorkerIdleSeconds", handler<set_worker_idle>(), nullptr, RSRC_CONF,
                  "idle time after which a worker above the minimum exits"),
    AP_INIT_TAKE1("H2StreamMaxMemSize", handler<set_int64>(), spec(&STREAM_MAX_MEM), RSRC_CONF,
                  "maximum bytes of output buffered per stream"),
    AP_INIT_TAKE1("H2SerializeHeaders", handler<set_obsolete_flag>(), nullptr, RSRC_CONF,
                  "obsolete, ignored"),
    AP_INIT_TAKE1("H2SessionExtraFiles", handler<set_obsolete_number>(), nullptr, RSRC_CONF,
                  "obsolete, ignored"),
    AP_INIT_TAKE1("H2ModernTLSOnly", handler<set_flag>(), spec(&MODERN_TLS), RSRC_CONF,
                  "off to drop the RFC 9113 TLS requirements"),
    AP_INIT_TAKE1("H2TLSWarmUpSize", handler<set_int64>(), spec(&TLS_WARMUP), RSRC_CONF,
                  "bytes sent in small TLS records before using full-size ones"),
    AP_INIT_TAKE1("H2TLSCoolDownSecs", handler<set_int>(), spec(&TLS_COOLDOWN), RSRC_CONF,
                  "idle seconds after which TLS records become small again"),
    AP_INIT_TAKE1("H2Push", handler<set_flag>(), spec(&PUSH), RSRC_CONF | OR_AUTHCFG,
                  "off to disable HTTP/2 server push"),
    AP_INIT_TAKE23("H2PushPriority", handler<add_push_priority>(), nullptr, RSRC_CONF,
                   "priority of pushed resources by content type"),
    AP_INIT_TAKE1("H2PushDiarySize", handler<set_push_diary_size>(), nullptr, RSRC_CONF,
                  "number of pushed resources remembered per connection"),
    AP_INIT_TAKE123("H2PushResource", handler<add_push_resource>(), nullptr,
                    OR_FILEINFO | OR_AUTHCFG,
                    "a resource to push with responses here"),
    AP_INIT_TAKE1("H2CopyFiles", handler<set_flag>(), spec(&COPY_FILES), OR_FILEINFO,
                  "on to copy file data instead of passing file handles"),
    AP_INIT_TAKE1("H2EarlyHints", handler<set_flag>(), spec(&EARLY_HINTS), RSRC_CONF,
                  "on to send 103 Early Hints responses"),
    AP_INIT_TAKE2("H2EarlyHint", handler<add_early_hint>(), nullptr, OR_FILEINFO | OR_AUTHCFG,
                  "a header for the 103 Early Hints response"),
    AP_INIT_TAKE1("H2Padding", handler<set_int>(), spec(&PADDING), RSRC_CONF,
                  "bits of random padding added to frames (0..8)"),
    AP_INIT_TAKE1("H2OutputBuffering", handler<set_flag>(), spec(&OUTPUT_BUFFERING), RSRC_CONF,
                  "off to send response data as soon as it is produced"),
    AP_INIT_TAKE1("H2StreamTimeout", handler<set_stream_timeout>(), nullptr, RSRC_CONF,
                  "IO timeout for streams, instead of Timeout"),
    AP_INIT_TAKE1("H2MaxDataFrameLen", handler<set_int>(), spec(&MAX_DATA_FRAME), RSRC_CONF,
                  "maximum payload bytes per DATA frame, 0 for the frame size"),
    AP_INIT_TAKE1("H2MaxHeaderBlockLen", handler<set_int>(), spec(&MAX_HEADER_BLOCK), RSRC_CONF,
                  "maximum bytes of a response header block, 0 for the default"),
    AP_INIT_TAKE1("H2MaxStreamErrors", handler<set_int>(), spec(&MAX_STREAM_ERRORS), RSRC_CONF,
                  "client-caused stream errors tolerated per connection"),
    AP_INIT_TAKE1("H2ProxyRequests", handler<set_proxy_requests>(), nullptr, OR_FILEINFO,
                  "on to accept forward proxy requests over HTTP/2"),
    AP_INIT_TAKE1("H2WebSockets", handler<set_flag>(), spec(&WEBSOCKETS), RSRC_CONF,
                  "on to allow WebSockets over HTTP/2 (RFC 8441)"),
    /* mod_h2x's own: taken even while mod_http2 is loaded (it knows no
     * such directive), so that a config that sets it starts either way. */
    AP_INIT_TAKE1("H2xInlineRequests", fn(&set_flag), spec(&INLINE_REQUESTS), RSRC_CONF,
                  "off to run every request on a worker, never on the connection's thread"),
    AP_INIT_TAKE1("H2xEventLoop", fn(&set_flag), spec(&EVENT_LOOP), RSRC_CONF,
                  "on to keep idle connections in mod_h2x's event loop instead of the MPM"),
    {nullptr},
};

bool active() noexcept { return g_active; }

void set_active(bool on) noexcept { g_active = on; }

void *create_server_config(apr_pool_t *p, server_rec *s)
{
    auto *c = static_cast<ServerConfig *>(apr_pcalloc(p, sizeof(ServerConfig)));
    c->name = apr_pstrcat(p, "srv[", (s && s->defn_name) ? s->defn_name : "main", "]", nullptr);
    c->h2_direct = c->h2_upgrade = UNSET;
    c->max_session_streams = c->window_size = UNSET;
    c->min_workers = c->max_workers = c->max_worker_idle_secs = UNSET;
    c->stream_max_mem = UNSET;
    c->modern_tls_only = UNSET;
    c->tls_warmup_size = UNSET;
    c->tls_cooldown_secs = UNSET;
    c->push = c->push_diary_size = UNSET;
    c->copy_files = c->early_hints = c->padding_bits = c->output_buffering = UNSET;
    c->stream_timeout = UNSET;
    c->max_data_frame_len = c->max_header_block_len = c->max_stream_errors = UNSET;
    c->proxy_requests = c->websockets = UNSET;
    c->inline_requests = UNSET;
    c->event_loop = UNSET;
    return c;
}

void *merge_server_config(apr_pool_t *p, void *basev, void *addv)
{
    auto *base = static_cast<const ServerConfig *>(basev);
    auto *add = static_cast<const ServerConfig *>(addv);
    auto *n = static_cast<ServerConfig *>(apr_pcalloc(p, sizeof(ServerConfig)));
    n->name = apr_pstrcat(p, "merged[", add->name, ", ", base->name, "]", nullptr);
    n->h2_direct = pick(add->h2_direct, base->h2_direct);
    n->h2_upgrade = pick(add->h2_upgrade, base->h2_upgrade);
    n->max_session_streams = pick(add->max_session_streams, base->max_session_streams);
    n->window_size = pick(add->window_size, base->window_size);
    n->min_workers = pick(add->min_workers, base->min_workers);
    n->max_workers = pick(add->max_workers, base->max_workers);
    n->max_worker_idle_secs = pick(add->max_worker_idle_secs, base->max_worker_idle_secs);
    n->stream_max_mem = pick(add->stream_max_mem, base->stream_max_mem);
    n->modern_tls_only = pick(add->modern_tls_only, base->modern_tls_only);
    n->tls_warmup_size = pick(add->tls_warmup_size, base->tls_warmup_size);
    n->tls_cooldown_secs = pick(add->tls_cooldown_secs, base->tls_cooldown_secs);
    n->push = pick(add->push, base->push);
    n->push_diary_size = pick(add->push_diary_size, base->push_diary_size);
    n->push_priorities = concat(p, base->push_priorities, add->push_priorities);
    n->copy_files = pick(add->copy_files, base->copy_files);
    n->early_hints = pick(add->early_hints, base->early_hints);
    n->padding_bits = pick(add->padding_bits, base->padding_bits);
    n->output_buffering = pick(add->output_buffering, base->output_buffering);
    n->stream_timeout = pick(add->stream_timeout, base->stream_timeout);
    n->max_data_frame_len = pick(add->max_data_frame_len, base->max_data_frame_len);
    n->max_header_block_len = pick(add->max_header_block_len, base->max_header_block_len);
    n->max_stream_errors = pick(add->max_stream_errors, base->max_stream_errors);
    n->proxy_requests = pick(add->proxy_requests, base->proxy_requests);
    n->websockets = pick(add->websockets, base->websockets);
    n->inline_requests = pick(add->inline_requests, base->inline_requests);
    n->event_loop = pick(add->event_loop, base->event_loop);
    n->obsolete = add->obsolete; /* each scope reports only its own */
    n->resolved = 0;
    return n;
}

void *create_dir_config(apr_pool_t *p, char *dir)
{
    auto *d = static_cast<DirConfig *>(apr_palloc(p, sizeof(DirConfig)));
    *d = DIR_UNSET;
    d->name = apr_pstrcat(p, "dir[", dir ? dir : "server", "]", nullptr);
    return d;
}

void *merge_dir_config(apr_pool_t *p, void *basev, void *addv)
{
    auto *base = static_cast<const DirConfig *>(basev);
    auto *add = static_cast<const DirConfig *>(addv);
    auto *n = static_cast<DirConfig *>(apr_palloc(p, sizeof(DirConfig)));
    n->name = apr_pstrcat(p, "merged[", add->name, ", ", base->name, "]", nullptr);
    n->upgrade = pick(add->upgrade, base->upgrade);
    n->push = pick(add->push, base->push);
    n->early_hints = pick(add->early_hints, base->early_hints);
    n->copy_files = pick(add->copy_files, base->copy_files);
    n->stream_timeout = pick(add->stream_timeout, base->stream_timeout);
    n->output_buffering = pick(add->output_buffering, base->output_buffering);
    n->push_resources = concat(p, base->push_resources, add->push_resources);
    n->early_hint_headers = concat(p, base->early_hint_headers, add->early_hint_headers);
    return n;
}

const ServerConfig &server_config(const server_rec *s)
{
    ServerConfig *c = server_conf(s);
    if (!c) {
        return fallback_;
    }
    resolve(c); /* no-op after post_config */
    return *c;
}

const DirConfig &dir_config(const request_rec *r)
{
    const DirConfig *d = (r && r->per_dir_config)
        ? static_cast<const DirConfig *>(ap_get_module_config(r->per_dir_config, &h2x_module))
        : nullptr;
    return d ? *d : DIR_UNSET;
}

bool direct_enabled(const server_rec *s, bool tls)
{
    int v = server_config(s).h2_direct;
    return v != UNSET ? v != 0 : !tls; /* default: on for h2c, off for h2 */
}

namespace {

/* The per-dir value if set there, else the server's. */
int dir_or_server(const request_rec *r, int DirConfig::*dir_field,
                  int ServerConfig::*server_field) noexcept
{
    int v = dir_config(r).*dir_field;
    if (v != UNSET) {
        return v;
    }
    return server_config(r ? r->server : nullptr).*server_field;
}

} // namespace

bool upgrade_enabled(const request_rec *r)
{
    int v = dir_or_server(r, &DirConfig::upgrade, &ServerConfig::h2_upgrade);
    if (v != UNSET) {
        return v != 0;
    }
    /* default: on for cleartext (h2c), off on TLS where h2 comes via ALPN */
    return !(r && r->connection && ap_ssl_conn_is_ssl(r->connection));
}

bool push_enabled(const request_rec *r)
{
    return dir_or_server(r, &DirConfig::push, &ServerConfig::push) != 0;
}

bool early_hints_enabled(const request_rec *r)
{
    return dir_or_server(r, &DirConfig::early_hints, &ServerConfig::early_hints) != 0;
}

bool copy_files_enabled(const request_rec *r)
{
    return dir_or_server(r, &DirConfig::copy_files, &ServerConfig::copy_files) != 0;
}

bool output_buffering(const request_rec *r)
{
    return dir_or_server(r, &DirConfig::output_buffering, &ServerConfig::output_buffering) != 0;
}

apr_interval_time_t stream_timeout(const request_rec *r, const server_rec *s)
{
    apr_interval_time_t t = dir_config(r).stream_timeout;
    if (t >= 0) {
        return t;
    }
    if (!s && r) {
        s = r->server;
    }
    t = server_config(s).stream_timeout;
    if (t >= 0) {
        return t;
    }
    return s ? s->timeout : apr_time_from_sec(60);
}

int post_config(apr_pool_t *, apr_pool_t *, server_rec *s)
{
    ServerConfig *main_conf = server_conf(s);
    if (!main_conf) {
        return OK;
    }
    /* Workers exist once per child: the main server's settings count. */
    int set_min = main_conf->min_workers;
    int set_max = main_conf->max_workers;
    if (set_min != UNSET && set_max != UNSET && set_max < set_min) {
        /* Only reachable if a later scope changed one of them. */
        ap_log_error(APLOG_MARK, APLOG_EMERG, 0, s, H2XLOGNO(10101)
                     "H2MaxWorkers (%d) is below H2MinWorkers (%d)", set_max, set_min);
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    resolve(main_conf);
    if (set_max != UNSET && set_min == UNSET && main_conf->min_workers < mpm_threads()) {
        ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, s, H2XLOGNO(10102)
                     "H2MaxWorkers %d is below ThreadsPerChild %d: H2MinWorkers set to %d",
                     set_max, mpm_threads(), main_conf->min_workers);
    }
    fallback_.min_workers = main_conf->min_workers;
    fallback_.max_workers = main_conf->max_workers;
    fallback_.max_worker_idle_secs = main_conf->max_worker_idle_secs;

    bool log_obsolete = ap_state_query(AP_SQ_MAIN_STATE) != AP_SQ_MS_CREATE_PRE_CONFIG;
    for (server_rec *vs = s; vs; vs = vs->next) {
        ServerConfig *c = server_conf(vs);
        if (!c) {
            continue;
        }
        resolve(c);
        c->min_workers = main_conf->min_workers;
        c->max_workers = main_conf->max_workers;
        c->max_worker_idle_secs = main_conf->max_worker_idle_secs;
        if (log_obsolete && c->obsolete) {
            for (int i = 0; i < c->obsolete->nelts; ++i) {
                ap_log_error(APLOG_MARK, APLOG_WARNING, 0, vs, H2XLOGNO(10103)
                             "%s is obsolete and ignored by mod_h2x",
                             APR_ARRAY_IDX(c->obsolete, i, const char *));
            }
        }
    }
    if (log_obsolete) {
        ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, s, H2XLOGNO(10104)
                     "workers: min %d, max %d, idle %ds", main_conf->min_workers,
                     main_conf->max_workers, main_conf->max_worker_idle_secs);
    }
    return OK;
}

} // namespace h2x
