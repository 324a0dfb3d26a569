/* The canonical ABI's side of a freestanding C guest (no libc, no WASI).
 *
 * Memory is one arena: the host (or a fused neighbour's adapter) allocates
 * arguments through cabi_realloc, the export works in the arena, and the
 * export's post-return function (called once the caller has copied the
 * results out) empties it. Nothing outlives a call, so nothing is freed.
 */
#ifndef NEON_CABI_H
#define NEON_CABI_H

#include <stddef.h>
#include <stdint.h>

#define EXPORT(name) __attribute__((export_name(name)))
#define IMPORT(module, name) __attribute__((import_module(module), import_name(name)))

/* A WIT string (UTF-8) or list: a pointer and a length, as lowered. */
typedef struct {
    const char *ptr;
    size_t len;
} str_t;

void *memcpy(void *dst, const void *src, size_t n);
void *memset(void *dst, int c, size_t n);

/* Memory from the arena, aligned; traps when wasm memory cannot grow. */
void *arena_alloc(size_t size, size_t align);
/* Empties the arena: every pointer it gave out is dead. */
void arena_reset(void);

/* A growable byte buffer in the arena, for building strings. */
typedef struct {
    char *ptr;
    size_t len, cap;
} buf_t;

void buf_put(buf_t *b, const char *s, size_t n);
void buf_puts(buf_t *b, const char *s);
void buf_put_u32(buf_t *b, uint32_t v);
/* `s` quoted as Python's repr() quotes a str (for ASCII text and UTF-8 passed through). */
void buf_put_repr(buf_t *b, str_t s);
str_t buf_str(const buf_t *b);

#endif
