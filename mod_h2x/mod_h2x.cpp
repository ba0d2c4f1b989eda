/* mod_h2x.cpp: the module struct, hook registration and directive table.
 * Nothing else lives here (STYLE.md §3.1). */
#include "h2x_private.h"

#include <dlfcn.h>

#include <http_core.h>
#include <http_protocol.h>
#include <apr_optional.h>

#include "h2x_c1.h"
#include "h2x_c2.h"
#include "h2x_config.h"
#include "h2x_conn_loop.h"
#include "h2x_idle_watch.h"
#include "h2x_status.h"
#include "h2x_vars.h"
#include "h2x_ws.h"
#include "h2x_workers.h"

namespace {

/* The file a module struct was loaded from (its LoadModule path). */
const char *module_file(const void *m) noexcept
{
    Dl_info info;
    return (m && dladdr(m, &info) && info.dli_fname) ? info.dli_fname : "?";
}

/* mod_http2 is loaded too: mod_h2x is inactive (see h2x::active()). Said
 * at error level, with both LoadModule lines and the way out, once per
 * start or restart (and on the console of `apache2 -t`). */
void log_inactive(server_rec *s) noexcept
{
    bool proxy = ap_find_linked_module("mod_proxy_http2.c") != nullptr;
    ap_log_error(APLOG_MARK, APLOG_ERR, 0, s, H2XLOGNO(10001)
                 "mod_h2x is inactive: mod_http2 is loaded too (LoadModule http2_module %s "
                 "beside LoadModule h2x_module %s). mod_http2 serves HTTP/2 and takes the H2* "
                 "directives. To use mod_h2x, remove the http2_module line (Debian: %s); to "
                 "keep mod_http2, remove the h2x_module line (Debian: %s)",
                 module_file(ap_find_linked_module("mod_http2.c")), module_file(&h2x_module),
                 proxy ? "a2dismod proxy_http2 http2 && a2enmod proxy_http2_h2x"
                       : "a2dismod http2",
                 proxy ? "a2dismod proxy_http2_h2x h2x && a2enmod proxy_http2" : "a2dismod h2x");
}

/* Runs before the directives are processed: decides whether mod_h2x serves
 * this configuration. mod_http2 registers the same directives, protocol ids
 * and optional functions; with both loaded, mod_http2 goes on serving as if
 * mod_h2x were not there, and httpd still starts, restarts and stops. */
int h2x_pre_config(apr_pool_t *, apr_pool_t *, apr_pool_t *) noexcept
{
    h2x::set_active(ap_find_linked_module("mod_http2.c") == nullptr);
    if (h2x::active()) {
        /* Only now: mod_http2's registration (at its LoadModule) stands
         * when mod_h2x is inactive. Users look them up in post_config. */
        h2x::vars_register();
        h2x::ws_register_optional_fns();
    }
    return OK;
}

void h2x_test_config(apr_pool_t *, server_rec *s) noexcept
{
    if (!h2x::active()) {
        log_inactive(s);
    }
}

/* Under prefork a process serves one connection and its modules may not be
 * thread-safe (the reason to run prefork): mod_h2x then runs one stream at
 * a time per connection, with a single worker thread. */
bool mpm_is_prefork() noexcept
{
    return ap_find_linked_module("prefork.c") != nullptr;
}

int h2x_post_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp,
                    server_rec *s) noexcept
{
    if (!h2x::active()) {
        /* At start-up, httpd reads the configuration twice: say it once. */
        if (ap_state_query(AP_SQ_MAIN_STATE) != AP_SQ_MS_CREATE_PRE_CONFIG) {
            log_inactive(s);
        }
        return OK;
    }
    if (mpm_is_prefork()) {
        ap_log_error(APLOG_MARK, APLOG_INFO, 0, s, H2XLOGNO(10022)
                     "mod_h2x: prefork MPM: HTTP/2 streams of a connection are "
                     "processed one at a time");
    }
    return h2x::post_config(pconf, ptemp, s);
}

void h2x_child_init(apr_pool_t *pchild, server_rec *s) noexcept
{
    if (!h2x::active()) {
        return;
    }
    const h2x::ServerConfig &cfg = h2x::server_config(s);
    h2x::c2_child_init(pchild, s);
    h2x::IdleWatch::child_init(pchild, s);
    h2x::ConnLoop::child_init(pchild, s);
    if (mpm_is_prefork()) {
        h2x::Workers::create(pchild, s, 1, 1, cfg.max_worker_idle_secs);
    }
    else {
        h2x::Workers::create(pchild, s, cfg.min_workers, cfg.max_workers,
                             cfg.max_worker_idle_secs);
    }
}

void h2x_register_hooks(apr_pool_t *) noexcept
{
    ap_hook_pre_config(h2x_pre_config, nullptr, nullptr, APR_HOOK_MIDDLE);
    ap_hook_test_config(h2x_test_config, nullptr, nullptr, APR_HOOK_MIDDLE);
    ap_hook_post_config(h2x_post_config, nullptr, nullptr, APR_HOOK_MIDDLE);
    ap_hook_child_init(h2x_child_init, nullptr, nullptr, APR_HOOK_MIDDLE);
    h2x::c1_register_hooks();
    h2x::c2_register_hooks();
    h2x::ws_register_hooks();
    h2x::status_register_hooks();
}

} // namespace

extern "C" {
/* Declared (with default visibility) in h2x_private.h, which also does
 * APLOG_USE_MODULE(h2x); AP_DECLARE_MODULE would repeat that. */
module AP_MODULE_DECLARE_DATA h2x_module = {
    STANDARD20_MODULE_STUFF,
    h2x::create_dir_config,
    h2x::merge_dir_config,
    h2x::create_server_config,
    h2x::merge_server_config,
    h2x::directives,
    h2x_register_hooks,
    AP_MODULE_FLAG_ALWAYS_MERGE,
};
}
