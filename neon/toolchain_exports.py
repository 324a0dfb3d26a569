"""Exports a guest toolchain adds for itself, not part of the component's API: neither listed nor invocable."""

from __future__ import annotations

# (interface, function): componentize-py's pre-initialization entry point (run once at build time; calling it
# again re-runs the guest's start-up).
TOOLCHAIN_EXPORTS = frozenset({("exports", "init")})
