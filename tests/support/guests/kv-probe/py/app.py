"""The kv-probe guest (Python): each export does one wasi:keyvalue thing and says what happened."""

import wit_world
from componentize_py_types import Err
from wit_world.imports import atomics, batch, store


def _why(err: Err) -> str:
    value = err.value
    if isinstance(value, store.Error_AccessDenied):
        return "access-denied"
    if isinstance(value, store.Error_NoSuchStore):
        return "no-such-store"
    if isinstance(value, store.Error_Other):
        return f"other: {value.value}"
    if isinstance(value, atomics.CasError_StoreError):
        return _why(Err(value.value))
    return repr(value)


def _open(name: str) -> store.Bucket:
    try:
        return store.open(name)
    except Err as err:
        raise Err(_why(err)) from None


def _text(value: bytes | None) -> str | None:
    return None if value is None else value.decode()


class WitWorld(wit_world.WitWorld):
    def get(self, bucket: str, key: str) -> str | None:
        try:
            return _text(_open(bucket).get(key))
        except Err as err:
            raise Err(err.value if isinstance(err.value, str) else _why(err)) from None

    def set(self, bucket: str, key: str, value: str) -> None:
        try:
            _open(bucket).set(key, value.encode())
        except Err as err:
            raise Err(err.value if isinstance(err.value, str) else _why(err)) from None

    def delete(self, bucket: str, key: str) -> None:
        try:
            _open(bucket).delete(key)
        except Err as err:
            raise Err(err.value if isinstance(err.value, str) else _why(err)) from None

    def exists(self, bucket: str, key: str) -> bool:
        try:
            return _open(bucket).exists(key)
        except Err as err:
            raise Err(err.value if isinstance(err.value, str) else _why(err)) from None

    def keys(self, bucket: str) -> list[str]:
        try:
            opened, found, cursor = _open(bucket), [], None
            while True:
                page = opened.list_keys(cursor)
                found += page.keys
                cursor = page.cursor
                if cursor is None:
                    return found
        except Err as err:
            raise Err(err.value if isinstance(err.value, str) else _why(err)) from None

    def increment(self, bucket: str, key: str, delta: int) -> int:
        try:
            return atomics.increment(_open(bucket), key, delta)
        except Err as err:
            raise Err(err.value if isinstance(err.value, str) else _why(err)) from None

    def set_many(self, bucket: str, pairs: list[tuple[str, str]]) -> None:
        try:
            batch.set_many(_open(bucket), [(k, v.encode()) for k, v in pairs])
        except Err as err:
            raise Err(err.value if isinstance(err.value, str) else _why(err)) from None

    def get_many(self, bucket: str, keys: list[str]) -> list[tuple[str, str | None]]:
        try:
            return [(k, _text(v)) for k, v in batch.get_many(_open(bucket), keys)]
        except Err as err:
            raise Err(err.value if isinstance(err.value, str) else _why(err)) from None

    def delete_many(self, bucket: str, keys: list[str]) -> None:
        try:
            batch.delete_many(_open(bucket), keys)
        except Err as err:
            raise Err(err.value if isinstance(err.value, str) else _why(err)) from None

    def swap(self, bucket: str, key: str, expected: str | None, value: str) -> bool:
        try:
            cas = atomics.Cas.new(_open(bucket), key)
            if _text(cas.current()) != expected:
                return False
            atomics.swap(cas, value.encode())
            return True
        except Err as err:
            if isinstance(err.value, atomics.CasError_CasFailed):
                return False
            raise Err(err.value if isinstance(err.value, str) else _why(err)) from None

    def get_loop(self, bucket: str, key: str, times: int) -> int:
        try:
            opened = _open(bucket)
            return sum(1 for _ in range(times) if opened.get(key) is not None)
        except Err as err:
            raise Err(err.value if isinstance(err.value, str) else _why(err)) from None

    def set_loop(self, bucket: str, key: str, value: str, times: int) -> None:
        try:
            opened, data = _open(bucket), value.encode()
            for _ in range(times):
                opened.set(key, data)
        except Err as err:
            raise Err(err.value if isinstance(err.value, str) else _why(err)) from None

    def fill(self, bucket: str, key: str, size: int) -> None:
        try:
            _open(bucket).set(key, b"x" * size)
        except Err as err:
            raise Err(err.value if isinstance(err.value, str) else _why(err)) from None
