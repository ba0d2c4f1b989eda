/* h2x_conn_ctx.cpp: see h2x_conn_ctx.h. */
#include "h2x_private.h"
#include "h2x_conn_ctx.h"

namespace h2x {

ConnCtx *conn_ctx(const conn_rec *c) noexcept
{
    return static_cast<ConnCtx *>(ap_get_module_config(c->conn_config, &h2x_module));
}

ConnCtx *conn_ctx_ensure(conn_rec *c) noexcept
{
    ConnCtx *ctx = conn_ctx(c);
    if (!ctx) {
        ctx = static_cast<ConnCtx *>(apr_pcalloc(c->pool, sizeof(ConnCtx)));
        ap_set_module_config(c->conn_config, &h2x_module, ctx);
    }
    return ctx;
}

bool conn_is_h2(const conn_rec *c) noexcept
{
    if (c->master) {
        ConnCtx *ctx = conn_ctx(c);
        return ctx && ctx->task;
    }
    ConnCtx *ctx = conn_ctx(c);
    return ctx && ctx->protocol;
}

} // namespace h2x
