/* h2x_config.cpp: placeholder, being replaced by the full directive table. */
#include "h2x_private.h"
#include "h2x_config.h"

namespace h2x {

const command_rec directives[] = {{nullptr}};

static ServerConfig defaults_ = {"default", UNSET, UNSET, 100, 65535, 1, 25, 600, 65536, 1,
                                 1048576, 1, 0, 256, nullptr, 0, 0, 0, 1, -1, 0, 0, 8, 0, 0};
static DirConfig dir_defaults_ = {"default", UNSET, UNSET, UNSET, UNSET, -1, UNSET, nullptr, nullptr};

void *create_server_config(apr_pool_t *p, server_rec *) { return apr_pmemdup(p, &defaults_, sizeof defaults_); }
void *merge_server_config(apr_pool_t *, void *, void *add) { return add; }
void *create_dir_config(apr_pool_t *p, char *) { return apr_pmemdup(p, &dir_defaults_, sizeof dir_defaults_); }
void *merge_dir_config(apr_pool_t *, void *, void *add) { return add; }
const ServerConfig &server_config(const server_rec *) { return defaults_; }
const DirConfig &dir_config(const request_rec *) { return dir_defaults_; }
bool direct_enabled(const server_rec *, bool tls) { return !tls; }
bool upgrade_enabled(const request_rec *) { return true; }
bool push_enabled(const request_rec *) { return false; }
bool early_hints_enabled(const request_rec *) { return false; }
bool copy_files_enabled(const request_rec *) { return false; }
bool output_buffering(const request_rec *) { return true; }
apr_interval_time_t stream_timeout(const request_rec *, const server_rec *s) { return s->timeout; }
int post_config(apr_pool_t *, apr_pool_t *, server_rec *) { return OK; }

} // namespace h2x
