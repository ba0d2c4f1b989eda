/* h2x_child_thread.cpp: see h2x_child_thread.h. */
#include "h2x_private.h"

#include <httpd.h>
#include <http_log.h>
#include <ap_mpm.h>

#include "h2x_child_thread.h"

namespace h2x {

apr_thread_t *start_child_thread(apr_pool_t *pchild, server_rec *s, apr_thread_start_t fn,
                                 void *data, const char *failure) noexcept
{
    apr_threadattr_t *attr = nullptr;
    apr_thread_t *thread = nullptr;
    apr_status_t rv = apr_threadattr_create(&attr, pchild);
    if (rv == APR_SUCCESS) {
        rv = ap_thread_create(&thread, attr, fn, data, pchild);
    }
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, rv, s, "%s", failure);
        return nullptr;
    }
    return thread;
}

} // namespace h2x
