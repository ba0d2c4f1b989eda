/* h2x_private.h: included first by every mod_h2x source file.
 *
 * Declares the module for httpd's per-module logging (so that
 * `LogLevel h2x:traceN` works from C++ files, see http_log.h) and the
 * H2XLOGNO() message tag macro. Tags are unique per call site; the next free
 * number is kept in mod_h2x/next-lognumber. */
#ifndef H2X_PRIVATE_H
#define H2X_PRIVATE_H

/* configure's probes (HAVE_NGHTTP2_*, H2X_DEBUG). Its PACKAGE_* macros
 * would clash with httpd's own. */
#include "h2x_config_auto.h"
#undef PACKAGE_BUGREPORT
#undef PACKAGE_NAME
#undef PACKAGE_STRING
#undef PACKAGE_TARNAME
#undef PACKAGE_URL
#undef PACKAGE_VERSION

#include <httpd.h>
#include <http_config.h>
#include <http_log.h>
#include <apr_strings.h>
#include <cstdlib>

extern "C" {
/* The only exported symbol: hidden visibility is the default for the rest. */
extern module AP_MODULE_DECLARE_DATA h2x_module __attribute__((visibility("default")));
}
APLOG_USE_MODULE(h2x);

/* An internal inconsistency: logged by the caller; with --enable-debug it
 * also aborts, so that tests catch it. */
#ifdef H2X_DEBUG
#define H2X_BUG_ABORT() abort()
#else
#define H2X_BUG_ABORT() ((void)0)
#endif

/* "H2X01234: " message tag, in the spirit of httpd's APLOGNO. */
#define H2XLOGNO(n) "H2X" #n ": "

#endif
