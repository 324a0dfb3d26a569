"""An HTTP/1.1 exchange read byte by byte, trailers included (http.client and aiohttp's client drop them)."""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from typing import BinaryIO


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    trailers: dict[str, str] = field(default_factory=dict)
    chunked: bool = False


def exchange(
    port: int, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None, timeout: float = 60.0
) -> Answer:
    """Send one request to 127.0.0.1:``port`` (Content-Length framed) and read its whole response."""
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: close", f"Content-Length: {len(body)}"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        reader = sock.makefile("rb")
        status = int(reader.readline().split()[1])
        head = _fields(reader)
        if head.get("transfer-encoding", "").lower() == "chunked":
            data = bytearray()
            while True:
                size = int(reader.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    return Answer(status, head, bytes(data), _fields(reader), chunked=True)
                data += reader.read(size)
                assert reader.read(2) == b"\r\n", "a chunk not followed by CRLF"
        length = head.get("content-length")
        return Answer(status, head, reader.read(int(length)) if length is not None else reader.read())


def _fields(reader: BinaryIO) -> dict[str, str]:
    out: dict[str, str] = {}
    while (line := reader.readline().rstrip(b"\r\n")) != b"":
        name, _, value = line.decode("latin-1").partition(":")
        out[name.strip().lower()] = value.strip()
    return out
