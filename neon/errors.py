"""The one exception tree of Neon Grid, and its mapping to gRPC status codes.

Every error a user can see is a :class:`NeonGridError` subclass with keyword
attributes. Servers turn them into a gRPC status whose trailing metadata
carries the class name, the status code and the attributes (``neon-error-bin``,
JSON); the client turns that back into the same exception, so callers catch
domain errors on both sides of the wire. A process that relays an error whose
class it has not loaded (the control plane relaying an agent's ``CodecError``)
rebuilds it as the base class of its status code, keeping the code, the name
(:attr:`NeonGridError.type_name`) and the details, so the next hop sees what the first sent.
"""

from __future__ import annotations

import json
from typing import Any

import grpc

ERROR_METADATA_KEY = "neon-error-bin"


class NeonGridError(Exception):
    """Root of all Neon Grid errors.

    Args:
        message: One line saying what went wrong and, where possible, the fix.
        **attrs: Structured details (field names, component names, ...).
    """

    code: grpc.StatusCode = grpc.StatusCode.UNKNOWN
    _type_name = ""  # the class name a relayed error had where it was raised, when this process lacks that class

    def __init__(self, message: str, **attrs: Any) -> None:
        super().__init__(message)
        self.message = message
        self.attrs = attrs
        for key, value in attrs.items():
            setattr(self, key, value)

    @property
    def type_name(self) -> str:
        """The error's class name, as the process that raised it knew it."""
        return self._type_name or type(self).__name__

    def to_json(self) -> bytes:
        payload = {"type": self.type_name, "code": self.code.value[0], "message": self.message, "attrs": self.attrs}
        return json.dumps(payload).encode()


class InvalidArgument(NeonGridError):
    """A request is malformed."""

    code = grpc.StatusCode.INVALID_ARGUMENT


class InvalidManifest(InvalidArgument):
    """A manifest field is wrong; ``field`` is its dotted path."""


class NotFound(NeonGridError):
    """A named object does not exist; ``kind`` and ``name`` say which."""

    code = grpc.StatusCode.NOT_FOUND


class ArtifactNotFound(NotFound):
    """No artifact with that digest has been uploaded."""


class IntegrityError(NeonGridError):
    """Content does not match its digest."""

    code = grpc.StatusCode.DATA_LOSS


class Conflict(NeonGridError):
    """Somebody else changed the object first; retry with fresh state."""

    code = grpc.StatusCode.ABORTED


class AlreadyExists(NeonGridError):
    """An object of that name exists; the message says how to replace it, if that is what was meant."""

    code = grpc.StatusCode.ALREADY_EXISTS


class FailedPrecondition(NeonGridError):
    """The object is in a state that does not allow this; the message says what to change first."""

    code = grpc.StatusCode.FAILED_PRECONDITION


class Unschedulable(NeonGridError):
    """No node satisfies a component's placement; ``reasons`` says why."""

    code = grpc.StatusCode.FAILED_PRECONDITION


class NotRunning(NeonGridError):
    """The component has no running replica to serve a call."""

    code = grpc.StatusCode.UNAVAILABLE


class ResourceExhausted(NeonGridError):
    """Every instance is busy and the queue is full; retry later."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class Unavailable(NeonGridError):
    """A peer could not be reached."""

    code = grpc.StatusCode.UNAVAILABLE


class ComponentError(NeonGridError):
    """A component failed to compile, link or instantiate."""

    code = grpc.StatusCode.FAILED_PRECONDITION


class CallFailed(NeonGridError):
    """A call into a component trapped or could not be encoded."""

    code = grpc.StatusCode.INTERNAL


class DeadlineExceeded(NeonGridError):
    """A call ran past its deadline."""

    code = grpc.StatusCode.DEADLINE_EXCEEDED


class Unauthenticated(NeonGridError):
    """The caller did not prove who it is (no client certificate, a bad or used join token)."""

    code = grpc.StatusCode.UNAUTHENTICATED


class PermissionDenied(NeonGridError):
    """The caller is known but its role or identity does not allow this; ``role`` says which it has."""

    code = grpc.StatusCode.PERMISSION_DENIED


class CapabilityDenied(PermissionDenied):
    """A component used a capability it was not granted; its instance was killed. ``capability`` says which."""


class Untrusted(PermissionDenied):
    """An artifact is unsigned, tampered with, or signed by a key nobody trusts; ``artifact`` names it."""


def _all_subclasses(cls: type[NeonGridError]) -> dict[str, type[NeonGridError]]:
    found = {cls.__name__: cls}
    for sub in cls.__subclasses__():
        found.update(_all_subclasses(sub))
    return found


def from_rpc_error(err: grpc.RpcError) -> NeonGridError:
    """Turn a gRPC error back into the NeonGridError the server raised."""
    # grpc.RpcError itself declares nothing; the concrete errors are also grpc.Call objects.
    call: Any = err
    code = call.code() if hasattr(call, "code") else grpc.StatusCode.UNKNOWN
    details = call.details() if hasattr(call, "details") else str(err)
    metadata: Any = call.trailing_metadata() if hasattr(call, "trailing_metadata") else None
    found = next((value for key, value in metadata or () if key == ERROR_METADATA_KEY), None)
    return from_status(code, details, found)


_CODES = {code.value[0]: code for code in grpc.StatusCode}


def status_code(number: int) -> grpc.StatusCode:
    """The status code with this number (UNKNOWN for one gRPC does not define)."""
    return _CODES.get(number, grpc.StatusCode.UNKNOWN)


def from_status(code: grpc.StatusCode, details: str, error_json: bytes | None) -> NeonGridError:
    """The NeonGridError a server sent as a status ``code``, its ``details`` and its error trailer
    (``error_json``, the JSON of :meth:`NeonGridError.to_json`), or the closest class to the code."""
    if error_json:
        try:
            payload = json.loads(error_json)
            name, message, attrs = str(payload["type"]), str(payload["message"]), dict(payload.get("attrs", {}))
            sent = status_code(int(payload.get("code", code.value[0])))
        except (ValueError, KeyError, TypeError, AttributeError):
            pass
        else:
            known = _all_subclasses(NeonGridError).get(name)
            error = (known or _base_for(sent))(message, **attrs)
            if known is None:
                error._type_name = name
            if error.code != sent:
                error.code = sent
            return error
    error = _base_for(code)(details or code.name)
    if error.code != code:
        error.code = code
    return error


def _base_for(code: grpc.StatusCode) -> type[NeonGridError]:
    """The class this module defines for a status code (the most general one), or the root."""
    candidates: list[type[NeonGridError]] = [Unavailable, FailedPrecondition, *NeonGridError.__subclasses__()]
    return next((cls for cls in candidates if cls.code == code), NeonGridError)
