/* h2x_bucket_head.h: a metadata bucket that carries a response head or
 * trailers down a c2 filter chain (httpd 2.4 has no response buckets).
 *
 * The response filter creates it from the request_rec; the c2 network
 * filter takes it out and hands the Head to the output beam in order with
 * the body bytes.
 *
 * owner: the bucket (the Head is deleted when the bucket is destroyed).
 * thread: the c2 worker.
 */
#ifndef H2X_BUCKET_HEAD_H
#define H2X_BUCKET_HEAD_H

#include <apr_buckets.h>

#include "h2x_beam.h"

namespace h2x {

enum class HeadKind { RESPONSE, TRAILERS };

struct HeadBucketData {
    HeadKind kind;
    Head head;
};

extern const apr_bucket_type_t bucket_type_head;

inline bool bucket_is_head(const apr_bucket *b) noexcept
{
    return b->type == &bucket_type_head;
}

apr_bucket *bucket_head_create(apr_bucket_alloc_t *list, HeadKind kind, Head head) noexcept;

inline HeadBucketData *bucket_head_data(apr_bucket *b) noexcept
{
    return static_cast<HeadBucketData *>(b->data);
}

} // namespace h2x

#endif
