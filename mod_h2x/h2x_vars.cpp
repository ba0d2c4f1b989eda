/* h2x_vars.cpp: see h2x_vars.h. */
#include "h2x_private.h"
#include "h2x_vars.h"

#include <cstring>

#include <apr_optional.h>
#include <http_core.h>
#include <mod_http2.h>

#include "h2x_c2.h"
#include "h2x_config.h"
#include "h2x_conn_ctx.h"
#include "h2x_workers.h"

namespace h2x {

namespace {

int http2_is_h2(conn_rec *c) noexcept
{
    return conn_is_h2(c) ? 1 : 0;
}

char *http2_var_lookup(apr_pool_t *p, server_rec *, conn_rec *c, request_rec *r, char *name) noexcept
{
    if (!c && r) {
        c = r->connection;
    }
    if (!name || !c) {
        return nullptr;
    }
    ConnCtx *ctx = conn_ctx(c);
    C2Task *task = (c->master && ctx) ? ctx->task : nullptr;
    if (!std::strcmp(name, "HTTP2")) {
        return apr_pstrdup(p, conn_is_h2(c) ? "on" : "off");
    }
    if (!std::strcmp(name, "H2PUSH") || !std::strcmp(name, "H2_PUSH")) {
        return apr_pstrdup(p, "off");
    }
    if (!std::strcmp(name, "H2_PUSHED") || !std::strcmp(name, "H2_PUSHED_ON")) {
        return apr_pstrdup(p, "");
    }
    if (!std::strcmp(name, "H2_STREAM_ID")) {
        return task ? apr_itoa(p, task->stream_id) : apr_pstrdup(p, "");
    }
    if (!std::strcmp(name, "H2_STREAM_TAG")) {
        return apr_pstrdup(p, task ? c->log_id : "");
    }
    return nullptr;
}

void http2_get_num_workers(server_rec *s, int *minw, int *maxw) noexcept
{
    const ServerConfig &cfg = server_config(s);
    *minw = cfg.min_workers;
    *maxw = cfg.max_workers;
}

} // namespace

void vars_register() noexcept
{
    /* The names are the lookup keys: the functions carry mod_http2's. */
    APR_REGISTER_OPTIONAL_FN(http2_is_h2);
    APR_REGISTER_OPTIONAL_FN(http2_var_lookup);
    APR_REGISTER_OPTIONAL_FN(http2_get_num_workers);
}

} // namespace h2x
