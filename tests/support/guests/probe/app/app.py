"""The probe guest: each export tries one thing and reports what happened."""

import encodings.idna  # noqa: F401 - socket's address lookup needs the codec bundled
import os
import socket
import sys

import wit_world
from componentize_py_types import Err

_calls = 0
_held = []


class WitWorld(wit_world.WitWorld):
    def read_file(self, path: str) -> str:
        try:
            with open(path) as handle:
                return handle.read()
        except Exception as err:  # noqa: BLE001 - the error text is the answer
            raise Err(f"{type(err).__name__}: {err}") from None

    def write_file(self, path: str, contents: str) -> None:
        try:
            with open(path, "w") as handle:
                handle.write(contents)
        except Exception as err:  # noqa: BLE001
            raise Err(f"{type(err).__name__}: {err}") from None

    def get_env(self, name: str):
        return os.environ.get(name)

    def connect(self, host: str, port: int) -> None:
        try:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                sock.connect((host, port))
            finally:
                sock.close()
        except Exception as err:  # noqa: BLE001
            raise Err(f"{type(err).__name__}: {err}") from None

    def spin(self, iterations: int) -> int:
        total = 0
        for i in range(iterations):
            total = (total + i) % 1000003
        return total

    def allocate(self, megabytes: int) -> int:
        for _ in range(megabytes):
            _held.append(bytearray(1024 * 1024))
        return len(_held)

    def count(self) -> int:
        global _calls
        _calls += 1
        return _calls

    def say(self, text: str) -> None:
        print(f"out: {text}")
        print(f"err: {text}", file=sys.stderr)
