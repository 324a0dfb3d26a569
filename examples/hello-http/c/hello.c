/* hello-http in C: a wasi:http/proxy component with no language runtime inside (freestanding, no libc).
 *
 * Every request, whatever its method: 200 "hello, NAME (you asked for PATH)\n", NAME being the last path
 * segment ("world" when empty), the same bytes as the Python and JavaScript hello guests answer to a GET.
 * The canonical ABI is written out by hand (see ../../log-analyzer/native/cabi.h); the signatures below are
 * the ones `wasm-tools component embed --dummy-names legacy` gives for wasi:http/types@0.2.0.
 */
#include "../../log-analyzer/native/cabi.h"

#define HTTP "wasi:http/types@0.2.0"
#define STREAMS "wasi:io/streams@0.2.0"

IMPORT(HTTP, "[method]incoming-request.path-with-query") void path_with_query(int32_t req, void *ret);
IMPORT(HTTP, "[static]fields.from-list") void fields_from_list(const void *entries, size_t n, void *ret);
IMPORT(HTTP, "[constructor]outgoing-response") int32_t outgoing_response_new(int32_t headers);
IMPORT(HTTP, "[method]outgoing-response.body") void outgoing_response_body(int32_t resp, void *ret);
IMPORT(HTTP, "[static]response-outparam.set")
void response_outparam_set(int32_t out, int32_t is_err, int32_t resp, int32_t a, int64_t b, int32_t c, int32_t d,
                           int32_t e, int32_t f);
IMPORT(HTTP, "[method]outgoing-body.write") void outgoing_body_write(int32_t body, void *ret);
IMPORT(HTTP, "[static]outgoing-body.finish") void outgoing_body_finish(int32_t body, int32_t has, int32_t trailers,
                                                                       void *ret);
IMPORT(HTTP, "[resource-drop]incoming-request") void drop_incoming_request(int32_t req);
IMPORT(STREAMS, "[method]output-stream.blocking-write-and-flush")
void blocking_write_and_flush(int32_t stream, const void *data, size_t len, void *ret);
IMPORT(STREAMS, "[resource-drop]output-stream") void drop_output_stream(int32_t stream);

/* A result or option as lowered through a return pointer: a tag byte, then the payload at offset 4. */
typedef struct {
    uint8_t tag;
    int32_t value;
    size_t len;
} ret_t;

typedef struct {
    str_t name, value;
} header_t;

static const char CONTENT_TYPE[] = "content-type";
static const char TEXT_PLAIN[] = "text/plain; charset=utf-8";
#define WRITE_MAX 4096 /* blocking-write-and-flush takes at most 4096 bytes a call */

EXPORT("wasi:http/incoming-handler@0.2.0#handle")
void handle(int32_t request, int32_t response_out) {
    arena_reset(); /* nothing outlives a request */
    ret_t got = {0};
    path_with_query(request, &got);
    str_t path = {"/", 1};
    if (got.tag == 1) path = (str_t){(const char *)(uintptr_t)got.value, got.len};
    drop_incoming_request(request);

    size_t end = 0, start = 0;
    while (end < path.len && path.ptr[end] != '?') end++;
    for (size_t i = 0; i < end; i++)
        if (path.ptr[i] == '/') start = i + 1;
    buf_t text = {0};
    buf_puts(&text, "hello, ");
    if (start < end) buf_put(&text, path.ptr + start, end - start);
    else buf_puts(&text, "world");
    buf_puts(&text, " (you asked for ");
    buf_put(&text, path.ptr, path.len);
    buf_puts(&text, ")\n");

    header_t header = {{CONTENT_TYPE, sizeof CONTENT_TYPE - 1}, {TEXT_PLAIN, sizeof TEXT_PLAIN - 1}};
    ret_t fields = {0};
    fields_from_list(&header, 1, &fields);
    if (fields.tag != 0) __builtin_trap();
    int32_t response = outgoing_response_new(fields.value);
    ret_t body = {0};
    outgoing_response_body(response, &body);
    if (body.tag != 0) __builtin_trap();
    response_outparam_set(response_out, 0, response, 0, 0, 0, 0, 0, 0);

    ret_t stream = {0};
    outgoing_body_write(body.value, &stream);
    if (stream.tag != 0) __builtin_trap();
    for (size_t sent = 0; sent < text.len;) {
        size_t n = text.len - sent < WRITE_MAX ? text.len - sent : WRITE_MAX;
        ret_t wrote = {0};
        blocking_write_and_flush(stream.value, text.ptr + sent, n, &wrote);
        if (wrote.tag != 0) break; /* the client went away: finish what can be finished */
        sent += n;
    }
    drop_output_stream(stream.value); /* a child of the body: dropped before the body is finished */
    ret_t finished = {0};
    outgoing_body_finish(body.value, 0, 0, &finished);
}
