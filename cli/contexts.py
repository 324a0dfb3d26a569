"""CLI contexts, as kubectl's kubeconfig has them: named sets of (control-plane address, PKI directory, user),
one of them current, kept in ``~/.config/neon/config.yaml`` (or ``$NEON_CONFIG``).

What a command uses is, for each setting: the flag, else the environment variable, else the current
context's value, else the built-in default. ``./run dev`` writes and selects a ``dev`` context, so a second
terminal needs no flags.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from neon._validate import NAME as NAME_PATTERN
from neon.errors import InvalidArgument, NotFound

SETTINGS = ("control", "pki", "user")


@dataclass(frozen=True)
class Context:
    control: str = ""
    pki: str = ""
    user: str = ""


def config_path() -> Path:
    explicit = os.environ.get("NEON_CONFIG")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "neon" / "config.yaml"


@dataclass
class Config:
    current: str
    contexts: dict[str, Context]

    @classmethod
    def load(cls, path: Path | None = None) -> Config:
        path = path or config_path()
        if not path.exists():
            return cls("", {})
        try:
            doc = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as err:
            raise InvalidArgument(f"{path} is not YAML: {err}; fix or remove it", field="config") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("contexts", {}), dict):
            raise InvalidArgument(f"{path}: expected a mapping with `contexts:`; fix or remove it", field="config")
        contexts = {}
        for name, values in doc.get("contexts", {}).items():
            if not isinstance(values, dict) or set(values) - set(SETTINGS):
                raise InvalidArgument(
                    f"{path}: context {name!r} may hold only {', '.join(SETTINGS)}; fix or remove it", field="config"
                )
            contexts[str(name)] = Context(**{k: str(v) for k, v in values.items()})
        return cls(str(doc.get("current-context", "") or ""), contexts)

    def save(self, path: Path | None = None) -> Path:
        """Write the file atomically (a crash leaves the old one), readable by its owner only."""
        path = path or config_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        doc: dict[str, Any] = {
            "current-context": self.current,
            "contexts": {name: {k: v for k, v in asdict(c).items() if v} for name, c in sorted(self.contexts.items())},
        }
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        try:
            with os.fdopen(fd, "w") as out:
                yaml.safe_dump(doc, out, sort_keys=False)
            os.chmod(tmp, 0o600)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return path

    def set(self, name: str, **values: str) -> Context:
        """Create or update a context; values left empty keep what it had."""
        if not NAME_PATTERN.match(name):
            raise InvalidArgument(f"a context name is a lowercase DNS label, got {name!r}", field="name")
        old = self.contexts.get(name, Context())
        new = Context(**{k: values.get(k) or getattr(old, k) for k in SETTINGS})
        self.contexts[name] = new
        return new

    def use(self, name: str) -> None:
        if name not in self.contexts:
            known = ", ".join(sorted(self.contexts)) or "none"
            raise NotFound(
                f"no context {name!r} (known: {known}); make it with `neon config set-context {name} --control ...`",
                kind="context",
                name=name,
            )
        self.current = name

    def active(self) -> Context:
        """The current context, or an empty one (``NEON_CONTEXT`` names another for one command)."""
        name = os.environ.get("NEON_CONTEXT") or self.current
        if not name:
            return Context()
        if name not in self.contexts:
            raise NotFound(
                f"the current context {name!r} is not in {config_path()}; `neon config use-context NAME`",
                kind="context",
                name=name,
            )
        return self.contexts[name]
