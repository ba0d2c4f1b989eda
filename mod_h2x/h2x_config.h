/* h2x_config.h: mod_http2's directives, parsed and merged for mod_h2x.
 *
 * Every mod_http2 directive is accepted with mod_http2's name, context and
 * default. A bad value fails `apache2 -t` with a message naming the
 * directive and the value.
 *
 * owner: httpd (per-server and per-dir config vectors, pconf pool)
 * thread: written while reading the config (single-threaded); read-only
 *         afterwards, from any thread.
 */
#ifndef H2X_CONFIG_H
#define H2X_CONFIG_H

#include <httpd.h>
#include <http_config.h>
#include <apr_tables.h>

namespace h2x {

/* A value not set in this scope; merge takes the parent's. */
constexpr int UNSET = -1;

/* One H2PushResource / H2EarlyHint entry. Entries given at server level are
 * kept in the server's default DirConfig (lookup_defaults), so that
 * dir_config(r) holds every entry that applies to r: server entries first,
 * then those of the matching <Directory>/<Location>/.htaccess sections. */
struct PushResource {
    const char *uri_ref; /* H2PushResource: the URI; H2EarlyHint: unused */
    int critical;        /* H2PushResource "critical" */
};
struct EarlyHint {
    const char *name;  /* header name, e.g. "Link" */
    const char *value; /* header value */
};

/* Per-server settings. Fields hold UNSET until merged; read them through
 * server_config(), which returns the effective (defaulted) values. */
struct ServerConfig {
    const char *name;
    int h2_direct;                /* H2Direct on|off; UNSET: on for h2c */
    int h2_upgrade;               /* H2Upgrade on|off; UNSET: on for h2c */
    int max_session_streams;      /* H2MaxSessionStreams, default 100 */
    int window_size;              /* H2WindowSize, default 65535 */
    int min_workers;              /* H2MinWorkers, default: MPM-derived (below) */
    int max_workers;              /* H2MaxWorkers, default: MPM-derived (below) */
    int max_worker_idle_secs;     /* H2MaxWorkerIdleSeconds, default 600 */
    apr_int64_t stream_max_mem;   /* H2StreamMaxMemSize, default 65536 */
    int modern_tls_only;          /* H2ModernTLSOnly, default on */
    apr_int64_t tls_warmup_size;  /* H2TLSWarmUpSize, default 1048576 */
    int tls_cooldown_secs;        /* H2TLSCoolDownSecs, default 1 */
    int push;                     /* H2Push (server or dir), default on (as mod_http2) */
    int push_diary_size;          /* H2PushDiarySize, default 256 */
    apr_array_header_t *push_priorities; /* H2PushPriority entries, each a
                                  * const char*[3]: {content type or "*",
                                  * "After"|"Before"|"Interleaved", weight as
                                  * decimal string ("16"/"256" if not given,
                                  * nullptr for Before)}. Base server's entries
                                  * first; the last match for a type wins. */
    int copy_files;               /* H2CopyFiles, default off */
    int early_hints;              /* H2EarlyHints, default off */
    int padding_bits;             /* H2Padding 0..8, default 0 */
    int output_buffering;         /* H2OutputBuffering, default on */
    apr_interval_time_t stream_timeout; /* H2StreamTimeout; <0: use Timeout */
    int max_data_frame_len;       /* H2MaxDataFrameLen, 0: peer's frame size */
    int max_header_block_len;     /* H2MaxHeaderBlockLen, 0: default (64 KB) */
    int max_stream_errors;        /* H2MaxStreamErrors, default 8 */
    int proxy_requests;           /* H2ProxyRequests, default off */
    int websockets;               /* H2WebSockets, default off */
    int inline_requests;          /* H2xInlineRequests (mod_h2x only), default on */
    int event_loop;               /* H2xEventLoop (mod_h2x only), default on */

    /* Added by h2x_config (not mod_http2 fields): */
    apr_array_header_t *obsolete; /* const char*: "H2SerializeHeaders (file:line)"
                                   * seen in this server's own scope; post_config
                                   * logs each once. Not inherited by merge. */
    int resolved;                 /* 1 once defaults were filled in */
};

/* Per-directory settings (<Directory>, <Location>, .htaccess). */
struct DirConfig {
    const char *name;
    int upgrade;                  /* H2Upgrade in dir context, UNSET */
    int push;                     /* H2Push in dir context, UNSET */
    int early_hints;              /* UNSET: H2EarlyHints is server-only, as in
                                   * mod_http2; kept for a future dir context */
    int copy_files;               /* H2CopyFiles in dir context, UNSET */
    apr_interval_time_t stream_timeout; /* <0: H2StreamTimeout is server-only,
                                   * as in mod_http2; kept for the same reason */
    int output_buffering;         /* UNSET: H2OutputBuffering is server-only */
    apr_array_header_t *push_resources; /* PushResource */
    apr_array_header_t *early_hint_headers; /* EarlyHint */
};

/* False while mod_http2 is loaded too (set by pre_config for each reading
 * of the configuration, before the directives are processed). mod_h2x then
 * stays out of the way: it proposes and accepts no protocol, takes over no
 * connection, registers no optional function, adds nothing to
 * server-status, starts no workers, and passes every H2* directive on to
 * mod_http2 (DECLINE_CMD), whichever of the two was loaded first. */
bool active() noexcept;
void set_active(bool on) noexcept;

/* The directive table, for the module struct. */
extern const command_rec directives[];

void *create_server_config(apr_pool_t *p, server_rec *s);
void *merge_server_config(apr_pool_t *p, void *base, void *add);
void *create_dir_config(apr_pool_t *p, char *dir);
void *merge_dir_config(apr_pool_t *p, void *base, void *add);

/* Effective server settings with defaults applied (never UNSET, except
 * h2_direct/h2_upgrade whose default depends on the protocol: use the
 * helpers below; stream_timeout stays < 0 when H2StreamTimeout is not set,
 * meaning "use Timeout").
 *
 * Workers are per child process, so min_workers/max_workers are the main
 * server's values in every server_rec. Unset, they follow mod_http2's rule:
 *   threads = ap_mpm_query(AP_MPMQ_MAX_THREADS) (ThreadsPerChild; 1 if the
 *             MPM reports less)
 *   H2MinWorkers unset: min = threads
 *   H2MaxWorkers unset: max = max(4, 3 * min / 2)
 *   only H2MaxWorkers set and below the derived min: min = max.
 * Both set with H2MaxWorkers < H2MinWorkers is a configuration error. */
const ServerConfig &server_config(const server_rec *s);
/* Effective per-request settings: dir config over server config. */
const DirConfig &dir_config(const request_rec *r);

bool direct_enabled(const server_rec *s, bool tls);   /* H2Direct */
bool upgrade_enabled(const request_rec *r);           /* H2Upgrade for r */
bool push_enabled(const request_rec *r);              /* H2Push for r */
bool early_hints_enabled(const request_rec *r);       /* H2EarlyHints for r */
bool copy_files_enabled(const request_rec *r);        /* H2CopyFiles for r */
bool output_buffering(const request_rec *r);          /* H2OutputBuffering */
apr_interval_time_t stream_timeout(const request_rec *r, const server_rec *s);

/* Called from post_config: fills MPM-derived worker defaults and logs the
 * obsolete-directive warnings once. Returns OK or an httpd error code. */
int post_config(apr_pool_t *pconf, apr_pool_t *ptemp, server_rec *s);

/* Built-in defaults, for docs and tests (mod_http2's values, see
 * docs/directives/README.md for the sources). */
constexpr int DEFAULT_MAX_SESSION_STREAMS = 100;
constexpr int DEFAULT_WINDOW_SIZE = 65535;
constexpr int DEFAULT_MAX_WORKER_IDLE_SECS = 600;
constexpr apr_int64_t DEFAULT_STREAM_MAX_MEM = 65536;
constexpr apr_int64_t DEFAULT_TLS_WARMUP_SIZE = 1048576;
constexpr int DEFAULT_TLS_COOLDOWN_SECS = 1;
constexpr int DEFAULT_PUSH_DIARY_SIZE = 256;
constexpr int DEFAULT_MAX_STREAM_ERRORS = 8;

} // namespace h2x

#endif
