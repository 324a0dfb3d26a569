/* Parsing one log line: the rules of shared/logline.py, in C. */
#ifndef NEON_LOGLINE_H
#define NEON_LOGLINE_H

#include "cabi.h"

/* `record log-entry` of cyber-systems:logs/types, laid out as the canonical ABI stores it (28 bytes). */
typedef struct {
    str_t timestamp;
    uint8_t level; /* enum level { debug, info, warn, error } */
    str_t source;
    str_t message;
} log_entry_t;

_Static_assert(sizeof(log_entry_t) == 28, "log-entry is 28 bytes in the canonical ABI");

/* `result<log-entry, string>` as stored: a case byte, then the payload at offset 4 (32 bytes). */
typedef struct {
    uint8_t is_err;
    union {
        log_entry_t ok;
        str_t err;
    } val;
} parse_result_t;

_Static_assert(sizeof(parse_result_t) == 32, "result<log-entry, string> is 32 bytes in the canonical ABI");

/* Parses `raw` into `out` (its strings point into `raw`); on a malformed line
 * `out->is_err` is set and `out->val.err` says why (in the arena). */
void parse_line(str_t raw, parse_result_t *out);

#endif
