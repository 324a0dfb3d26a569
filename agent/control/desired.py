"""The agent's last desired state, kept on disk so the agent can run without its control plane.

KubeEdge's promise: an edge node cut off from the control plane keeps running
what it was last told, and an agent restarted while offline comes back with
it (its artifacts and compiled cache are on disk too). The file is replaced
atomically on every snapshot the control plane sends; when the control plane
answers again, its snapshot simply replaces this one, and the state machine
starts or stops only what differs.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from neon.model import Assignment


class DesiredStateFile:
    def __init__(self, path: Path) -> None:
        self.path = path

    def save(self, revision: int, assignments: tuple[Assignment, ...]) -> None:
        doc = {"revision": revision, "assignments": [a.to_dict() for a in assignments]}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".desired-")
        try:
            with os.fdopen(fd, "w") as out:
                json.dump(doc, out)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, self.path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def load(self) -> tuple[int, tuple[Assignment, ...]] | None:
        """The saved state, or None when there is none (or it is unreadable: then the control plane decides)."""
        try:
            doc = json.loads(self.path.read_text())
            return int(doc["revision"]), tuple(Assignment.from_dict(a) for a in doc["assignments"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
