"""The log analyzer's front door (a wasi:http/proxy component, componentize-py).

POST /logs   with raw log text: hands it to the ingestor and answers
             {"lines": N, "accepted": M} (M well-formed lines parsed and archived)
GET  /logs   a one-line usage note
"""

import json

from componentize_py_types import Err, Ok
from wit_world import exports
from wit_world.imports import ingestor
from wit_world.imports.streams import StreamError_Closed
from wit_world.imports.types import (
    Fields,
    IncomingBody,
    IncomingRequest,
    Method_Post,
    OutgoingBody,
    OutgoingResponse,
    ResponseOutparam,
)


def read_all(body: IncomingBody) -> bytes:
    stream = body.stream()
    chunks = []
    while True:
        try:
            chunks.append(stream.blocking_read(65536))
        except Err as err:
            if isinstance(err.value, StreamError_Closed):
                break
            raise
    stream.__exit__(None, None, None)
    return b"".join(chunks)


def respond(out: ResponseOutparam, status: int, body: bytes, content_type: bytes) -> None:
    response = OutgoingResponse(Fields.from_list([("content-type", content_type)]))
    response.set_status_code(status)
    outgoing = response.body()
    ResponseOutparam.set(out, Ok(response))
    stream = outgoing.write()
    for i in range(0, len(body), 4096):
        stream.blocking_write_and_flush(body[i : i + 4096])
    stream.__exit__(None, None, None)
    OutgoingBody.finish(outgoing, None)


class IncomingHandler(exports.IncomingHandler):
    def handle(self, request: IncomingRequest, response_out: ResponseOutparam) -> None:
        if not isinstance(request.method(), Method_Post):
            usage = b"POST raw log lines here, e.g. curl --data-binary @sample.log URL\n"
            respond(response_out, 405, usage, b"text/plain")
            return
        raw = read_all(request.consume())
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as err:
            respond(response_out, 400, f"the body is not UTF-8 text: {err}\n".encode(), b"text/plain")
            return
        lines = len([line for line in text.splitlines() if line.strip()])
        accepted = ingestor.ingest(text)
        answer = json.dumps({"lines": lines, "accepted": accepted}) + "\n"
        respond(response_out, 200, answer.encode(), b"application/json")
