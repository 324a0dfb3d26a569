/* kv-loop: the benchmark's get and set loops on a wasi:keyvalue bucket, in freestanding C (no libc), so
 * that a loop's time is the platform's: the host's wasi:keyvalue and the canonical ABI, not a guest
 * runtime's. The canonical ABI is written by hand (../../../../../examples/log-analyzer/native/cabi.h);
 * a store error traps.
 */
#include "../../../../../examples/log-analyzer/native/cabi.h"

#define STORE "wasi:keyvalue/store@0.2.0-draft2"

/* Each import's result<T, error> comes back through a return pointer: a tag byte, then the payload at
 * offset 4 (a handle; an option's tag and its list; an error's case and its string), 16 bytes in all. */
IMPORT(STORE, "open") void store_open(const char *name, size_t len, void *ret);
IMPORT(STORE, "[method]bucket.get") void bucket_get(int32_t bucket, const char *key, size_t len, void *ret);
IMPORT(STORE, "[method]bucket.set")
void bucket_set(int32_t bucket, const char *key, size_t len, const char *value, size_t value_len, void *ret);
IMPORT(STORE, "[resource-drop]bucket") void drop_bucket(int32_t bucket);

static int32_t open_bucket(const char *name, size_t len) {
    struct {
        uint8_t tag;
        int32_t handle;
        uint8_t rest[8];
    } opened = {0};
    store_open(name, len, &opened);
    if (opened.tag != 0) __builtin_trap();
    return opened.handle;
}

EXPORT("get-loop")
uint32_t get_loop(const char *bucket, size_t bucket_len, const char *key, size_t key_len, uint32_t times) {
    int32_t opened = open_bucket(bucket, bucket_len);
    uint32_t found = 0;
    for (uint32_t i = 0; i < times; i++) {
        struct {
            uint8_t tag;
            uint8_t pad[3];
            uint8_t some;
            uint8_t pad2[3];
            const char *ptr;
            size_t len;
        } got = {0};
        bucket_get(opened, key, key_len, &got);
        if (got.tag != 0) __builtin_trap();
        found += got.some;
    }
    drop_bucket(opened);
    return found;
}

EXPORT("cabi_post_get-loop") void get_loop_post(uint32_t found) {
    (void)found;
    arena_reset();
}

EXPORT("set-loop")
void set_loop(const char *bucket, size_t bucket_len, const char *key, size_t key_len, const char *value,
              size_t value_len, uint32_t times) {
    int32_t opened = open_bucket(bucket, bucket_len);
    for (uint32_t i = 0; i < times; i++) {
        struct {
            uint8_t tag;
            uint8_t rest[15];
        } done = {0};
        bucket_set(opened, key, key_len, value, value_len, &done);
        if (done.tag != 0) __builtin_trap();
    }
    drop_bucket(opened);
    arena_reset();
}
