"""Node.js's gRPC client (@grpc/grpc-js with @grpc/proto-loader), installed from npm into the build cache on first
use, for tests that drive the control API as a client in another language would."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from cli.devcluster.guests import cache_dir

PACKAGES = ("@grpc/grpc-js@1.14.7", "@grpc/proto-loader@0.8.1")


def grpc_js() -> Path:
    """The ``node_modules`` folder holding the packages (for ``NODE_PATH``)."""
    prefix = cache_dir() / ("node-grpc-" + "-".join(p.rsplit("@", 1)[1] for p in PACKAGES))
    modules = prefix / "node_modules"
    if all((modules / p.rsplit("@", 1)[0]).is_dir() for p in PACKAGES):
        return modules
    npm = shutil.which("npm")
    assert npm is not None, "the Node.js client test needs node and npm (apt-get install nodejs npm)"
    prefix.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        [npm, "install", "--prefix", str(prefix), "--no-audit", "--no-fund", "--loglevel=error", *PACKAGES],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, f"npm could not install {', '.join(PACKAGES)}:\n{proc.stderr[-2000:]}"
    return modules
