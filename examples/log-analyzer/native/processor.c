/* The batch processor (world log-processor): parses every line through the linked parser. */
#include "logline.h"

#define PROCESSOR "cyber-systems:logs/processor@0.1.0#"

/* The import: the adapter (fused) or the host (split, host-linked) writes the result at `ret`,
 * with its strings allocated in this component's arena through cabi_realloc. */
IMPORT("cyber-systems:logs/parser@0.1.0", "parse")
void parser_parse(const char *ptr, size_t len, parse_result_t *ret);

/* `record parsed-batch { entries: list<log-entry>, errors: list<string> }`, as stored. */
typedef struct {
    log_entry_t *entries;
    size_t entries_len;
    str_t *errors;
    size_t errors_len;
} parsed_batch_t;

static parsed_batch_t batch;

EXPORT(PROCESSOR "parse-batch")
parsed_batch_t *parse_batch(const str_t *lines, size_t n) {
    batch = (parsed_batch_t){
        .entries = arena_alloc(n * sizeof(log_entry_t), 4),
        .errors = arena_alloc(n * sizeof(str_t), 4),
    };
    parse_result_t got;
    for (size_t i = 0; i < n; i++) {
        parser_parse(lines[i].ptr, lines[i].len, &got);
        if (!got.is_err) {
            batch.entries[batch.entries_len++] = got.val.ok;
            continue;
        }
        buf_t why = {0};
        buf_puts(&why, "line ");
        buf_put_u32(&why, (uint32_t)(i + 1));
        buf_puts(&why, ": ");
        buf_put(&why, got.val.err.ptr, got.val.err.len);
        batch.errors[batch.errors_len++] = buf_str(&why);
    }
    return &batch;
}

EXPORT("cabi_post_" PROCESSOR "parse-batch")
void parse_batch_post_return(parsed_batch_t *ret) {
    (void)ret;
    arena_reset();
}

EXPORT(PROCESSOR "process-batch")
uint32_t process_batch(const str_t *lines, size_t n) {
    uint32_t ok = 0;
    parse_result_t got;
    for (size_t i = 0; i < n; i++) {
        parser_parse(lines[i].ptr, lines[i].len, &got);
        ok += !got.is_err;
    }
    return ok;
}

EXPORT("cabi_post_" PROCESSOR "process-batch")
void process_batch_post_return(uint32_t ret) {
    (void)ret;
    arena_reset();
}
