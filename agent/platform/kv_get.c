/* wasi:keyvalue's bucket.get for node buckets, as a native wasmtime host function.

   A host function written in Python costs about 9 us a call however little it does (ctypes enters the
   interpreter, and every argument and result crosses as dynamically typed values); a get from a node bucket
   is a 2.5 us SQLite read. This function answers the get where the guest's call lands, without Python and
   without the GIL: the bucket's handle is a rep the agent reserved for it (NATIVE_REP | slot), the slot holds
   a read connection to the bucket's SQLite file (WAL: it sees every committed write of the agent's own
   connection) and a prepared statement.

   Anything else (a bucket of another backend, a key the Python host must refuse with its message, a SQLite
   error) is handed to the Python host function this one was registered over: the guest sees one
   implementation. Reading a borrow's rep releases the borrow (it cannot be read twice), so a call handed on
   after that has its first argument replaced by the rep, as a u32 (agent/runtime/cvalues.py reads it so).

   No headers: wasmtime's and SQLite's functions come in a table from the agent (agent/platform/kv_native.py),
   resolved in the libraries the process already loaded, and the value layout comes in as -D definitions read
   from wasmtime-py's declarations (VAL_SIZE, VAL_OF, RESULT_VAL, KIND_*). Built with the system's C compiler. */

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define NATIVE_REP 0x80000000u
#define SLOTS 1024 /* a rep: NATIVE_REP | generation << SLOT_BITS | slot */
#define SLOT_BITS 10
#define GENERATIONS 0x1FFFFFu
#define MAX_KEY 1024
#define SQLITE_OK 0
#define SQLITE_ROW 100
#define SQLITE_DONE 101
#define SQLITE_OPEN_READONLY 0x1
#define SQLITE_OPEN_NOMUTEX 0x8000

typedef void *(*callback_t)(void *env, void *ctx, const void *ty, uint8_t *args, size_t nargs,
                            uint8_t *results, size_t nresults);

struct api {
    /* wasmtime */
    void *(*val_new)(void *val);
    void (*vallist_new_uninit)(void *out, size_t n);
    void *(*any_to_host)(void *ctx, void *any, void **host);
    void (*any_delete)(void *any);
    uint32_t (*host_rep)(void *host);
    void (*host_delete)(void *host);
    void (*error_delete)(void *error);
    /* SQLite */
    int (*open_v2)(const char *path, void **db, int flags, const char *vfs);
    int (*prepare_v2)(void *db, const char *sql, int n, void **stmt, const char **tail);
    int (*bind_text)(void *stmt, int i, const char *text, int n, void (*destructor)(void *));
    int (*step)(void *stmt);
    const void *(*column_blob)(void *stmt, int i);
    int (*column_bytes)(void *stmt, int i);
    int (*reset)(void *stmt);
    int (*clear_bindings)(void *stmt);
    int (*finalize)(void *stmt);
    int (*close_v2)(void *db);
    int (*busy_timeout)(void *db, int ms);
};

struct slot {
    pthread_mutex_t lock;
    void *db;
    void *stmt;
    uint32_t generation; /* a slot used again has a new one: a stale handle never reads another bucket */
    int live;
};

struct fallback {
    callback_t call;
    void *env;
    void (*finalize)(void *env);
};

#define TEXT2(x) #x
#define TEXT(x) TEXT2(x)

/* The layout this library was compiled for, checked by the agent before it is used. */
const char *neon_kv_layout(void) {
    return "VAL_SIZE=" TEXT(VAL_SIZE) " VAL_OF=" TEXT(VAL_OF) " RESULT_VAL=" TEXT(RESULT_VAL)
           " KIND_U8=" TEXT(KIND_U8) " KIND_U32=" TEXT(KIND_U32) " KIND_STRING=" TEXT(KIND_STRING)
           " KIND_LIST=" TEXT(KIND_LIST) " KIND_OPTION=" TEXT(KIND_OPTION) " KIND_RESULT=" TEXT(KIND_RESULT)
           " KIND_RESOURCE=" TEXT(KIND_RESOURCE);
}

static struct api api;
static struct slot slots[SLOTS];
static uint64_t answered, handed;

static int started;

/* Take the function table (once: loading the library again gives the same copy, in use). */
int neon_kv_init(const struct api *given) {
    if (started) return SLOTS;
    started = 1;
    memcpy(&api, given, sizeof api);
    for (int i = 0; i < SLOTS; i++) {
        if (pthread_mutex_init(&slots[i].lock, NULL) != 0) return -1;
    }
    return SLOTS;
}

/* Open ``path`` for reading in ``slot``, its handles' reps of ``generation``: 0, or SQLite's error code. */
int neon_kv_open(int slot, uint32_t generation, const char *path, int busy_ms) {
    if (slot < 0 || slot >= SLOTS) return -1;
    struct slot *s = &slots[slot];
    void *db = NULL, *stmt = NULL;
    int rc = api.open_v2(path, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc == SQLITE_OK) {
        api.busy_timeout(db, busy_ms);
        rc = api.prepare_v2(db, "SELECT value FROM kv WHERE key = ?", -1, &stmt, NULL);
    }
    if (rc != SQLITE_OK) {
        if (db) api.close_v2(db);
        return rc;
    }
    pthread_mutex_lock(&s->lock);
    s->db = db;
    s->stmt = stmt;
    s->generation = generation & GENERATIONS;
    s->live = 1;
    pthread_mutex_unlock(&s->lock);
    return 0;
}

void neon_kv_close(int slot) {
    if (slot < 0 || slot >= SLOTS) return;
    struct slot *s = &slots[slot];
    pthread_mutex_lock(&s->lock);
    if (s->live) {
        api.finalize(s->stmt);
        api.close_v2(s->db);
        s->db = s->stmt = NULL;
        s->live = 0;
    }
    pthread_mutex_unlock(&s->lock);
}

/* How many gets this library answered, and how many it handed to the Python host. */
void neon_kv_counts(uint64_t *out) {
    out[0] = __atomic_load_n(&answered, __ATOMIC_RELAXED);
    out[1] = __atomic_load_n(&handed, __ATOMIC_RELAXED);
}

void *neon_kv_fallback_new(callback_t call, void *env, void (*finalize)(void *)) {
    struct fallback *f = malloc(sizeof *f);
    if (f) {
        f->call = call;
        f->env = env;
        f->finalize = finalize;
    }
    return f;
}

void neon_kv_fallback_free(void *env) {
    struct fallback *f = env;
    f->finalize(f->env);
    free(f);
}

#define KIND(v) (*(uint8_t *)(v))
#define PAYLOAD(v) ((uint8_t *)(v) + VAL_OF)

static void *hand_over(struct fallback *f, void *ctx, const void *ty, uint8_t *args, size_t nargs,
                       uint8_t *results, size_t nresults) {
    __atomic_add_fetch(&handed, 1, __ATOMIC_RELAXED);
    return f->call(f->env, ctx, ty, args, nargs, results, nresults);
}

/* The borrow in ``arg`` released, and its rep left there as a u32. */
static void take_borrow(uint8_t *arg, void *any, uint32_t rep) {
    api.any_delete(any);
    memset(PAYLOAD(arg), 0, VAL_SIZE - VAL_OF);
    *(uint32_t *)PAYLOAD(arg) = rep;
    KIND(arg) = KIND_U32;
}

/* The value as a new heap value (a list of u8 values, in an option, in an ok result) written to ``result``. */
static void write_found(uint8_t *result, const uint8_t *bytes, size_t n, int present) {
    uint8_t zero[VAL_SIZE];
    memset(zero, 0, sizeof zero);
    uint8_t *option = api.val_new(zero);
    if (present) {
        uint8_t *list = api.val_new(zero);
        api.vallist_new_uninit(PAYLOAD(list), n);
        uint8_t *items = *(uint8_t **)(PAYLOAD(list) + sizeof(size_t));
        for (size_t i = 0; i < n; i++) {
            uint8_t *item = items + i * VAL_SIZE;
            memset(item, 0, VAL_SIZE);
            *PAYLOAD(item) = bytes[i];
            KIND(item) = KIND_U8;
        }
        KIND(list) = KIND_LIST;
        *(uint8_t **)PAYLOAD(option) = list;
    } else {
        *(uint8_t **)PAYLOAD(option) = NULL;
    }
    KIND(option) = KIND_OPTION;
    *PAYLOAD(result) = 1; /* is_ok */
    *(uint8_t **)(PAYLOAD(result) + RESULT_VAL) = option;
    KIND(result) = KIND_RESULT;
}

/* [method]bucket.get: func(self: borrow<bucket>, key: string) -> result<option<list<u8>>, error> */
void *neon_kv_get(void *env, void *ctx, const void *ty, uint8_t *args, size_t nargs, uint8_t *results,
                  size_t nresults) {
    struct fallback *f = env;
    if (nargs != 2 || nresults != 1 || KIND(args) != KIND_RESOURCE || KIND(args + VAL_SIZE) != KIND_STRING)
        return hand_over(f, ctx, ty, args, nargs, results, nresults);
    void *any = *(void **)PAYLOAD(args);
    void *host = NULL;
    void *error = api.any_to_host(ctx, any, &host);
    if (error) {
        api.error_delete(error);
        return hand_over(f, ctx, ty, args, nargs, results, nresults);
    }
    uint32_t rep = api.host_rep(host);
    api.host_delete(host);
    take_borrow(args, any, rep); /* reading the rep took the borrow: from here on, args[0] is the rep */
    uint32_t index = rep & (SLOTS - 1), generation = (rep & ~NATIVE_REP) >> SLOT_BITS;
    size_t key_size = *(size_t *)PAYLOAD(args + VAL_SIZE);
    const char *key = *(const char **)(PAYLOAD(args + VAL_SIZE) + sizeof(size_t));
    if (!(rep & NATIVE_REP) || key_size == 0 || key_size > MAX_KEY)
        return hand_over(f, ctx, ty, args, nargs, results, nresults);

    struct slot *s = &slots[index];
    pthread_mutex_lock(&s->lock);
    if (!s->live || s->generation != generation || api.bind_text(s->stmt, 1, key, (int)key_size, NULL) != SQLITE_OK) {
        pthread_mutex_unlock(&s->lock);
        return hand_over(f, ctx, ty, args, nargs, results, nresults);
    }
    int rc = api.step(s->stmt);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        api.reset(s->stmt);
        api.clear_bindings(s->stmt);
        pthread_mutex_unlock(&s->lock);
        return hand_over(f, ctx, ty, args, nargs, results, nresults);
    }
    if (rc == SQLITE_ROW) {
        const uint8_t *bytes = api.column_blob(s->stmt, 0);
        write_found(results, bytes, (size_t)api.column_bytes(s->stmt, 0), 1);
    } else {
        write_found(results, NULL, 0, 0);
    }
    api.reset(s->stmt);
    api.clear_bindings(s->stmt);
    pthread_mutex_unlock(&s->lock);
    __atomic_add_fetch(&answered, 1, __ATOMIC_RELAXED);
    return NULL;
}
