"""structlog set up once per entry point.

Console rendering on a TTY, JSON lines otherwise; context variables (node,
the RPC being served and the ids its request names) merged first; grpc's and
other stdlib loggers are rendered the same way.
"""

from __future__ import annotations

import logging
import sys
from contextvars import ContextVar
from typing import Any

import structlog

# The RPC being served in this context and its request: log lines name both (see :class:`serving`;
# a handler on every call's path may set and reset it itself).
SERVING: ContextVar[tuple[str, Any] | None] = ContextVar("neon_serving", default=None)
_ID_FIELDS = ("app", "component", "node", "caller")


class serving:  # noqa: N801 - used like a function: ``with log.serving("Call", request):``
    """Within: every log line carries the RPC's name and the ids its request names (app, component,
    node, caller). The ids are read when a line is written, so a call that logs nothing costs one
    context variable set and reset (this is on every forwarded call's path)."""

    __slots__ = ("_call", "_token")

    def __init__(self, rpc: str, request: Any) -> None:
        self._call = (rpc, request)

    def __enter__(self) -> None:
        self._token = SERVING.set(self._call)

    def __exit__(self, *exc: object) -> None:
        try:
            SERVING.reset(self._token)
        except ValueError:  # a streaming handler closed from another task (a cancelled stream): its context
            pass  # is not this one, and the context it set the variable in ends with it


def _merge_serving(_logger: Any, _method: str, event: dict[str, Any]) -> dict[str, Any]:
    call = SERVING.get()
    if call is not None:
        rpc, request = call
        event.setdefault("rpc", rpc)
        for field in _ID_FIELDS:
            value = getattr(request, field, None)
            if isinstance(value, str) and value:
                event.setdefault(field, value)
    return event


def configure(level: str = "info", json: bool | None = None, **bind: Any) -> None:
    """Configure structlog and stdlib logging for this process.

    Args:
        level: Minimum level name.
        json: Force JSON (True) or console (False); default: JSON unless stderr is a TTY.
        **bind: Context bound for the whole process, e.g. ``node="edge-1"``.
    """
    if json is None:
        json = not sys.stderr.isatty()
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        _merge_serving,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
    ]
    renderer: Any = structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared, processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer]
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(**bind)


def get(name: str) -> Any:
    """Return a structlog logger named ``name``."""
    return structlog.get_logger(name)
