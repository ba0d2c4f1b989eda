/* mod_h2x.cpp: the module struct, hook registration and directive table.
 * Nothing else lives here (STYLE.md §3.1). */
#include "h2x_private.h"

#include <http_protocol.h>
#include <apr_optional.h>

#include "h2x_c1.h"
#include "h2x_c2.h"
#include "h2x_config.h"
#include "h2x_status.h"
#include "h2x_vars.h"
#include "h2x_workers.h"

namespace {

/* mod_http2 and mod_h2x register the same directives, protocol ids and
 * optional functions: running both in one httpd cannot work. */
int h2x_pre_config(apr_pool_t *, apr_pool_t *, apr_pool_t *) noexcept
{
    if (ap_find_linked_module("mod_http2.c")) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, 0, nullptr, H2XLOGNO(10001)
                     "mod_h2x cannot be loaded together with mod_http2: "
                     "remove the LoadModule line for http2_module "
                     "(Debian: a2dismod http2)");
        return !OK;
    }
    return OK;
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
    if (mpm_is_prefork()) {
        ap_log_error(APLOG_MARK, APLOG_INFO, 0, s, H2XLOGNO(10022)
                     "mod_h2x: prefork MPM: HTTP/2 streams of a connection are "
                     "processed one at a time");
    }
    return h2x::post_config(pconf, ptemp, s);
}

void h2x_child_init(apr_pool_t *pchild, server_rec *s) noexcept
{
    const h2x::ServerConfig &cfg = h2x::server_config(s);
    h2x::c2_child_init(pchild, s);
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
    ap_hook_post_config(h2x_post_config, nullptr, nullptr, APR_HOOK_MIDDLE);
    ap_hook_child_init(h2x_child_init, nullptr, nullptr, APR_HOOK_MIDDLE);
    h2x::c1_register_hooks();
    h2x::c2_register_hooks();
    h2x::vars_register();
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
