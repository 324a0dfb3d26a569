"""What the API servicers and the web surface need of the control plane, as a Protocol: its parts, not
the process object (:class:`controlplane.process.ControlPlane` provides them)."""

from __future__ import annotations

from typing import Protocol

from controlplane.api.beats import Beats
from controlplane.api.queries import Queries
from controlplane.api.relay import Relay
from controlplane.compile.code_maker import CodeMaker
from controlplane.config import ControlPlaneConfig
from controlplane.placement import Placer
from controlplane.reconcile.intake import ReportIntake
from controlplane.reconcile.loop import ReconcileLoop
from controlplane.registry.pull import Puller
from controlplane.security.admission import Admission
from controlplane.security.identity import Security
from controlplane.state.assignments import AssignmentHub
from controlplane.state.blobs import BlobStore
from controlplane.state.replication import BlobReplicator
from controlplane.state.store import Store


class Plane(Protocol):
    """The control plane's parts a servicer may use."""

    config: ControlPlaneConfig
    security: Security
    store: Store
    blobs: BlobStore
    admission: Admission
    placer: Placer
    replicator: BlobReplicator
    assignments: AssignmentHub
    reconciler: ReconcileLoop
    intake: ReportIntake
    reads: Queries
    beats: Beats
    relay: Relay
    puller: Puller
    code: CodeMaker

    @property
    def identity(self) -> str: ...

    @property
    def join_address(self) -> str: ...
