/* The log parser (world log-parser): one line in, one structured entry (or a reason) out. */
#include "logline.h"

#define PARSE "cyber-systems:logs/parser@0.1.0#parse"

static parse_result_t result;

/* The entry's strings point into `raw`: the caller's adapter copies them out before post-return. */
EXPORT(PARSE)
parse_result_t *parse(const char *ptr, size_t len) {
    parse_line((str_t){ptr, len}, &result);
    return &result;
}

EXPORT("cabi_post_" PARSE)
void parse_post_return(parse_result_t *ret) {
    (void)ret;
    arena_reset();
}
