/* Parser and processor in one component (world log-monolith): the pair's work without the boundary.
 * Each line becomes the same entry the parser returns, and a malformed line the same reason. */
#include "logline.h"

EXPORT("process-batch")
uint32_t process_batch(const str_t *lines, size_t n) {
    uint32_t ok = 0;
    parse_result_t got;
    for (size_t i = 0; i < n; i++) {
        parse_line(lines[i], &got);
        ok += !got.is_err;
    }
    return ok;
}

EXPORT("cabi_post_process-batch")
void process_batch_post_return(uint32_t ret) {
    (void)ret;
    arena_reset();
}
