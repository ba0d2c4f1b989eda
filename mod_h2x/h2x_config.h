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

/* One H2PushResource / H2EarlyHint entry. */
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
    int min_workers;              /* H2MinWorkers, default: MPM-derived */
    int max_workers;              /* H2MaxWorkers, default: MPM-derived */
    int max_worker_idle_secs;     /* H2MaxWorkerIdleSeconds, default 600 */
    apr_int64_t stream_max_mem;   /* H2StreamMaxMemSize, default 65536 */
    int modern_tls_only;          /* H2ModernTLSOnly, default on */
    apr_int64_t tls_warmup_size;  /* H2TLSWarmUpSize, default 1048576 */
    int tls_cooldown_secs;        /* H2TLSCoolDownSecs, default 1 */
    int push;                     /* H2Push (server or dir), default off */
    int push_diary_size;          /* H2PushDiarySize, default 256 */
    apr_array_header_t *push_priorities; /* H2PushPriority entries (const char*[3]) */
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
};

/* Per-directory settings (<Directory>, <Location>, .htaccess). */
struct DirConfig {
    const char *name;
    int upgrade;                  /* H2Upgrade in dir context, UNSET */
    int push;                     /* H2Push in dir context, UNSET */
    int early_hints;              /* H2EarlyHints, UNSET */
    int copy_files;               /* H2CopyFiles in dir context, UNSET */
    apr_interval_time_t stream_timeout; /* H2StreamTimeout in dir, <0 unset */
    int output_buffering;         /* H2OutputBuffering in dir, UNSET */
    apr_array_header_t *push_resources; /* PushResource */
    apr_array_header_t *early_hint_headers; /* EarlyHint */
};

/* The directive table, for the module struct. */
extern const command_rec directives[];

void *create_server_config(apr_pool_t *p, server_rec *s);
void *merge_server_config(apr_pool_t *p, void *base, void *add);
void *create_dir_config(apr_pool_t *p, char *dir);
void *merge_dir_config(apr_pool_t *p, void *base, void *add);

/* Effective server settings with defaults applied (never UNSET, except
 * h2_direct/h2_upgrade whose default depends on the protocol: use the
 * helpers below). */
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

} // namespace h2x

#endif
