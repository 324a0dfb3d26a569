#include "logline.h"

static const char *const LEVELS[] = {"DEBUG", "INFO", "WARN", "ERROR"};

static int is_space(char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }
static int is_digit(char c) { return c >= '0' && c <= '9'; }

static int equals(str_t s, const char *word) {
    size_t i = 0;
    for (; i < s.len; i++)
        if (!word[i] || s.ptr[i] != word[i]) return 0;
    return !word[i];
}

/* 2026-11-24T08:00:00Z, or with an offset or a fraction: checked by shape. */
static int looks_like_timestamp(str_t t) {
    const char *p = t.ptr;
    return t.len >= 20 && p[4] == '-' && p[7] == '-' && p[10] == 'T' && p[13] == ':' && p[16] == ':' &&
           is_digit(p[0]) && is_digit(p[1]) && is_digit(p[2]) && is_digit(p[3]);
}

/* The index of the first `c` in `s` at or after `from`, or s.len. */
static size_t find(str_t s, size_t from, char c) {
    while (from < s.len && s.ptr[from] != c) from++;
    return from;
}

static void fail(parse_result_t *out, const char *what, str_t quoted, const char *after) {
    buf_t why = {0};
    buf_puts(&why, what);
    buf_put_repr(&why, quoted);
    buf_puts(&why, after);
    out->is_err = 1;
    out->val.err = buf_str(&why);
}

void parse_line(str_t raw, parse_result_t *out) {
    str_t line = raw;
    while (line.len && is_space(line.ptr[0])) line.ptr++, line.len--;
    while (line.len && is_space(line.ptr[line.len - 1])) line.len--;

    size_t first = find(line, 0, ' ');
    size_t second = first < line.len ? find(line, first + 1, ' ') : line.len;
    if (second >= line.len) {
        fail(out, "expected '<timestamp> <LEVEL> <source>: <message>', got ", raw, "");
        return;
    }
    str_t timestamp = {line.ptr, first};
    str_t level_name = {line.ptr + first + 1, second - first - 1};
    str_t rest = {line.ptr + second + 1, line.len - second - 1};
    if (!looks_like_timestamp(timestamp)) {
        fail(out, "bad timestamp ", timestamp, "");
        return;
    }

    char upper[8];
    int level = -1;
    if (level_name.len < sizeof upper) {
        for (size_t i = 0; i < level_name.len; i++) {
            char c = level_name.ptr[i];
            upper[i] = c >= 'a' && c <= 'z' ? (char)(c - 32) : c;
        }
        str_t name = {upper, level_name.len};
        if (equals(name, "WARNING")) name.len = 4; /* the alias WARNING -> WARN */
        for (int i = 0; i < 4 && level < 0; i++)
            if (equals(name, LEVELS[i])) level = i;
    }
    if (level < 0) {
        fail(out, "unknown level ", level_name, "");
        return;
    }

    size_t colon = 0;
    while (colon + 1 < rest.len && !(rest.ptr[colon] == ':' && rest.ptr[colon + 1] == ' ')) colon++;
    int found = colon + 1 < rest.len;
    str_t source = {rest.ptr, colon};
    if (!found || !source.len || find(source, 0, ' ') < source.len) {
        fail(out, "missing '<source>: ' in ", rest, "");
        return;
    }
    out->is_err = 0;
    out->val.ok = (log_entry_t){
        .timestamp = timestamp,
        .level = (uint8_t)level,
        .source = source,
        .message = {rest.ptr + colon + 2, rest.len - colon - 2},
    };
}
