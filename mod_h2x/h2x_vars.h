/* h2x_vars.h: the optional functions other modules look up by name, with
 * mod_http2's names and signatures (mod_http2.h): http2_is_h2 (used by
 * ap_expr's %{HTTP2} and mod_proxy_http2), http2_var_lookup and
 * http2_get_num_workers (mod_proxy sizes its pools with it).
 *
 * thread: any.
 */
#ifndef H2X_VARS_H
#define H2X_VARS_H

namespace h2x {

/* Called from pre_config, only while mod_h2x is active: with mod_http2
 * loaded too, its registration of the same names stands. */
void vars_register() noexcept;

} // namespace h2x

#endif
