/* h2x_private.h: included first by every mod_h2x source file.
 *
 * Declares the module for httpd's per-module logging (so that
 * `LogLevel h2x:traceN` works from C++ files, see http_log.h) and the
 * H2XLOGNO() message tag macro. Tags are unique per call site; the next free
 * number is kept in mod_h2x/next-lognumber. */
#ifndef H2X_PRIVATE_H
#define H2X_PRIVATE_H

#include <httpd.h>
#include <http_config.h>
#include <http_log.h>
#include <apr_strings.h>

extern "C" {
/* The only exported symbol: hidden visibility is the default for the rest. */
extern module AP_MODULE_DECLARE_DATA h2x_module __attribute__((visibility("default")));
}
APLOG_USE_MODULE(h2x);

/* "H2X01234: " message tag, in the spirit of httpd's APLOGNO. */
#define H2XLOGNO(n) "H2X" #n ": "

#endif
