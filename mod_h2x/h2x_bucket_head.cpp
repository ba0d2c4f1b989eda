/* h2x_bucket_head.cpp: see h2x_bucket_head.h. */
#include "h2x_private.h"
#include "h2x_bucket_head.h"

#include <new>

namespace h2x {

namespace {

apr_status_t head_read(apr_bucket *, const char **str, apr_size_t *len,
                       apr_read_type_e) noexcept
{
    *str = nullptr;
    *len = 0;
    return APR_SUCCESS;
}

void head_destroy(void *data) noexcept
{
    static_cast<HeadBucketData *>(data)->~HeadBucketData();
    apr_bucket_free(data);
}

} // namespace

const apr_bucket_type_t bucket_type_head = {
    "H2X_HEAD", 5, apr_bucket_type_t::APR_BUCKET_METADATA,
    head_destroy,
    head_read,
    apr_bucket_setaside_noop,
    apr_bucket_split_notimpl,
    apr_bucket_copy_notimpl,
};

apr_bucket *bucket_head_create(apr_bucket_alloc_t *list, HeadKind kind, Head head) noexcept
{
    apr_bucket *b = static_cast<apr_bucket *>(apr_bucket_alloc(sizeof(*b), list));
    APR_BUCKET_INIT(b);
    b->free = apr_bucket_free;
    b->list = list;
    b->type = &bucket_type_head;
    b->length = 0;
    b->start = 0;
    /* From the bucket allocator, as the bucket itself: no malloc per head. */
    void *mem = apr_bucket_alloc(sizeof(HeadBucketData), list);
    b->data = new (mem) HeadBucketData{kind, std::move(head)};
    return b;
}

} // namespace h2x
