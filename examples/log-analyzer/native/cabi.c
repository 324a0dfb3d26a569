#include "cabi.h"

extern unsigned char __heap_base;
static uintptr_t top;

void *memcpy(void *dst, const void *src, size_t n) {
    unsigned char *d = dst;
    const unsigned char *s = src;
    while (n--) *d++ = *s++;
    return dst;
}

void *memset(void *dst, int c, size_t n) {
    unsigned char *d = dst;
    while (n--) *d++ = (unsigned char)c;
    return dst;
}

void arena_reset(void) { top = (uintptr_t)&__heap_base; }

void *arena_alloc(size_t size, size_t align) {
    if (!top) arena_reset();
    uintptr_t start = (top + align - 1) & ~(uintptr_t)(align - 1);
    uintptr_t end = start + size;
    uintptr_t have = (uintptr_t)__builtin_wasm_memory_size(0) * 65536u;
    if (end > have && __builtin_wasm_memory_grow(0, (end - have + 65535u) / 65536u) == (size_t)-1)
        __builtin_trap();
    top = end;
    return (void *)start;
}

EXPORT("cabi_realloc")
void *cabi_realloc(void *old, size_t old_size, size_t align, size_t new_size) {
    if (old && new_size <= old_size) return old;
    void *fresh = arena_alloc(new_size, align);
    if (old) memcpy(fresh, old, old_size);
    return fresh;
}

void buf_put(buf_t *b, const char *s, size_t n) {
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 64;
        while (cap < b->len + n) cap *= 2;
        b->ptr = cabi_realloc(b->ptr, b->cap, 1, cap);
        b->cap = cap;
    }
    memcpy(b->ptr + b->len, s, n);
    b->len += n;
}

void buf_puts(buf_t *b, const char *s) {
    size_t n = 0;
    while (s[n]) n++;
    buf_put(b, s, n);
}

void buf_put_u32(buf_t *b, uint32_t v) {
    char digits[10];
    size_t n = 0;
    do {
        digits[sizeof digits - ++n] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    buf_put(b, digits + sizeof digits - n, n);
}

void buf_put_repr(buf_t *b, str_t s) {
    int single = 0, dbl = 0;
    for (size_t i = 0; i < s.len; i++) {
        single |= s.ptr[i] == '\'';
        dbl |= s.ptr[i] == '"';
    }
    char quote = single && !dbl ? '"' : '\'';
    static const char hex[] = "0123456789abcdef";
    buf_put(b, &quote, 1);
    for (size_t i = 0; i < s.len; i++) {
        unsigned char c = (unsigned char)s.ptr[i];
        char esc[4] = {'\\', 0, 0, 0};
        if (c == '\\' || c == (unsigned char)quote) {
            esc[1] = (char)c;
            buf_put(b, esc, 2);
        } else if (c == '\n' || c == '\r' || c == '\t') {
            esc[1] = c == '\n' ? 'n' : c == '\r' ? 'r' : 't';
            buf_put(b, esc, 2);
        } else if (c < 0x20 || c == 0x7f) {
            esc[1] = 'x';
            esc[2] = hex[c >> 4];
            esc[3] = hex[c & 15];
            buf_put(b, esc, 4);
        } else {
            buf_put(b, (const char *)&c, 1);
        }
    }
    buf_put(b, &quote, 1);
}

str_t buf_str(const buf_t *b) { return (str_t){b->ptr, b->len}; }
