"""Neon Grid: a cloud-edge orchestrator for WebAssembly components.

Shared pieces live here (manifest, errors, logging, the client and the CLI);
the servers are the ``controlplane`` and ``agent`` packages.
"""

__version__ = "0.1.0"
