"""The agent's decisions, with no I/O: events in, instructions out.

The shell (:mod:`agent.shell`) feeds events (a new desired state from the
control plane, an artifact fetched, an instance started or failed) to
:meth:`AgentState.handle` and carries out the instructions it returns.
Tests assert exact instruction lists.

Order on a node: an instance starts once its artifact is on disk and every
exporter it is linked to *locally* is running here; remote links only need a
route, which is updated in place whenever the exporter moves.

Updates are make-before-break: when a running component's artifact (or
settings, or link shape) changes, the replacement is started beside it and the
shell swaps it in when it is ready; the old one finishes its in-flight calls.
A replacement that fails to start leaves the old version serving.
"""

from __future__ import annotations

import itertools
from collections import deque
from dataclasses import dataclass, field

from neon.model import Assignment, ComponentAssignment, InstanceReport

Key = tuple[str, str]  # (app, component)

_ids = itertools.count(1)


# ------------------------------------------------------------------ events --


@dataclass(frozen=True)
class DesiredChanged:
    assignments: tuple[Assignment, ...]
    id: int = field(default_factory=lambda: next(_ids))


@dataclass(frozen=True)
class ArtifactFetched:
    digest: str
    id: int = field(default_factory=lambda: next(_ids))


@dataclass(frozen=True)
class ArtifactFailed:
    digest: str
    reason: str
    id: int = field(default_factory=lambda: next(_ids))


@dataclass(frozen=True)
class InstanceStarted:
    key: Key
    spec: ComponentAssignment
    id: int = field(default_factory=lambda: next(_ids))


@dataclass(frozen=True)
class InstanceFailed:
    key: Key
    spec: ComponentAssignment
    reason: str
    id: int = field(default_factory=lambda: next(_ids))


@dataclass(frozen=True)
class InstanceStopped:
    key: Key
    id: int = field(default_factory=lambda: next(_ids))


@dataclass(frozen=True)
class Prepared:
    """A prefetched artifact is compiled (ready to start)."""

    digest: str
    id: int = field(default_factory=lambda: next(_ids))


@dataclass(frozen=True)
class PrepareFailed:
    digest: str
    reason: str
    id: int = field(default_factory=lambda: next(_ids))


Event = (
    DesiredChanged
    | ArtifactFetched
    | ArtifactFailed
    | InstanceStarted
    | InstanceFailed
    | InstanceStopped
    | Prepared
    | PrepareFailed
)


# ------------------------------------------------------------ instructions --


@dataclass(frozen=True)
class Fetch:
    digest: str
    source: str = ""  # the oci:// reference it may be pulled from


@dataclass(frozen=True)
class Start:
    key: Key
    spec: ComponentAssignment


@dataclass(frozen=True)
class Prepare:
    """Compile a prefetched artifact as ``spec`` would start (checked first, as a start checks it)."""

    spec: ComponentAssignment


@dataclass(frozen=True)
class Stop:
    key: Key


@dataclass(frozen=True)
class Route:
    """Send calls for (app, component) to these data-plane endpoints."""

    app: str
    component: str
    endpoints: tuple[str, ...]


@dataclass(frozen=True)
class Report:
    instances: tuple[InstanceReport, ...]
    prefetched: tuple[str, ...] = ()  # artifacts of the prefetch lists fetched and compiled
    prefetch_failed: tuple[tuple[str, str], ...] = ()  # (artifact, why) of those that could not be


Instruction = Fetch | Prepare | Start | Stop | Route | Report


# ------------------------------------------------------------------- state --


@dataclass
class _Instance:
    spec: ComponentAssignment
    phase: str  # Fetching, Waiting, Starting, Running, Failed, Stopping
    reason: str = ""
    cancel: bool = False  # Starting, but no longer wanted: stop it once it has started
    next: ComponentAssignment | None = None  # Running: the replacement being prepared
    next_phase: str = ""  # "", Fetching, Waiting or Starting
    update_error: str = ""  # the replacement failed; the current version keeps serving


class AgentState:
    """What the agent wants and what it has."""

    def __init__(self, log_size: int = 1000) -> None:
        self.desired: dict[Key, ComponentAssignment] = {}
        self.generations: dict[str, int] = {}
        self.instances: dict[Key, _Instance] = {}
        self.artifacts: dict[str, str] = {}  # digest -> fetching | ready | failed
        self.artifact_errors: dict[str, str] = {}
        self.routes: dict[tuple[str, str], tuple[str, ...]] = {}
        self.ahead: dict[str, ComponentAssignment] = {}  # artifact -> how a rollout held for it will start it
        self.prepared: dict[str, str] = {}  # artifact -> preparing | ready | failed
        self.prepare_errors: dict[str, str] = {}
        self.log: deque[tuple[int, str, list[str]]] = deque(maxlen=log_size)

    def handle(self, event: Event) -> list[Instruction]:
        """Apply one event; return what the shell must do, in order."""
        out: list[Instruction] = []
        if isinstance(event, DesiredChanged):
            self._desired_changed(event, out)
        elif isinstance(event, ArtifactFetched):
            self.artifacts[event.digest] = "ready"
        elif isinstance(event, ArtifactFailed):
            self.artifacts[event.digest] = "failed"
            self.artifact_errors[event.digest] = event.reason
        elif isinstance(event, InstanceStarted):
            inst = self.instances.get(event.key)
            if inst is not None and inst.phase == "Running":  # a replacement was swapped in by the shell
                inst.spec, inst.next_phase = event.spec, ""
                if inst.next is not None and inst.next.shape() == event.spec.shape():
                    inst.next = None
            elif inst is not None and inst.phase == "Starting" and inst.spec.shape() == event.spec.shape():
                if inst.cancel:  # stopped being wanted while it started
                    inst.phase = "Stopping"
                    out.append(Stop(event.key))
                else:
                    inst.phase, inst.reason = "Running", ""
            elif inst is None or inst.phase != "Stopping":
                out.append(Stop(event.key))  # nobody expects this instance
        elif isinstance(event, InstanceFailed):
            inst = self.instances.get(event.key)
            if inst is not None and inst.phase == "Running":
                if inst.next is not None and inst.next.shape() == event.spec.shape():
                    inst.next_phase, inst.update_error = "", event.reason
            elif inst is not None and inst.phase == "Starting" and inst.spec.shape() == event.spec.shape():
                if inst.cancel:
                    del self.instances[event.key]
                else:
                    inst.phase, inst.reason = "Failed", event.reason
        elif isinstance(event, InstanceStopped):
            inst = self.instances.get(event.key)
            if inst is not None and inst.phase == "Stopping":
                del self.instances[event.key]
        elif isinstance(event, Prepared):
            self.prepared[event.digest] = "ready"
        elif isinstance(event, PrepareFailed):
            self.prepared[event.digest] = "failed"
            self.prepare_errors[event.digest] = event.reason
        self._converge(out)
        self._prefetch(out)
        ready, failed = self.prefetch_report()
        out.append(Report(self.report(), ready, failed))
        self.log.append((event.id, type(event).__name__, [type(i).__name__ for i in out]))
        return out

    def _desired_changed(self, event: DesiredChanged, out: list[Instruction]) -> None:
        for digest in [d for d, status in self.artifacts.items() if status == "failed"]:
            del self.artifacts[digest]  # a new desired state retries failed fetches
        self.desired = {}
        self.generations = {}
        self.ahead = {}
        for assignment in event.assignments:
            self.generations[assignment.app] = assignment.generation
            for comp in assignment.components:
                self.desired[(assignment.app, comp.name)] = comp
            for comp in assignment.prefetch:
                self.ahead.setdefault(comp.artifact, comp)
        for digest in [d for d, status in self.prepared.items() if status == "failed" or d not in self.ahead]:
            del self.prepared[digest]  # a new desired state retries, and forgets what is no longer ahead
            self.prepare_errors.pop(digest, None)
        wanted_routes: dict[tuple[str, str], tuple[str, ...]] = {}
        for (app, _), comp in sorted(self.desired.items()):
            for binding in comp.imports:
                if not binding.local:
                    wanted_routes[(app, binding.component)] = binding.endpoints
        for (app, exporter), endpoints in sorted(wanted_routes.items()):
            if self.routes.get((app, exporter)) != endpoints:
                out.append(Route(app, exporter, endpoints))
        for app, exporter in sorted(set(self.routes) - set(wanted_routes)):
            out.append(Route(app, exporter, ()))
        self.routes = wanted_routes
        for key, inst in sorted(self.instances.items()):
            want = self.desired.get(key)
            same = want is not None and want.shape() == inst.spec.shape()
            if inst.phase == "Stopping":
                continue
            if inst.phase == "Starting":  # decided when the start finishes
                inst.cancel = not same
                if same and want is not None:
                    inst.spec = want
                continue
            if same and want is not None and inst.phase != "Failed":
                inst.spec = want  # endpoints may differ; routes handle that
                inst.next, inst.update_error = None, ""
                continue
            if inst.phase == "Running" and want is not None:
                inst.update_error = ""  # a new desired state retries a failed update
                continue  # replaced make-before-break by _converge
            if inst.phase == "Running":
                inst.phase = "Stopping"
                out.append(Stop(key))
            else:  # Fetching, Waiting or Failed: nothing runs
                del self.instances[key]

    def _converge(self, out: list[Instruction]) -> None:
        for key, want in sorted(self.desired.items()):
            inst = self.instances.get(key)
            if inst is not None and inst.phase == "Running" and want.shape() != inst.spec.shape():
                self._replace(key, inst, want, out)
                continue
            if inst is not None and inst.phase in ("Starting", "Running", "Failed", "Stopping"):
                continue
            status = self.artifacts.get(want.artifact)
            if status is None:
                self.artifacts[want.artifact] = "fetching"
                out.append(Fetch(want.artifact, want.source))
                status = "fetching"
            if status == "fetching":
                self.instances[key] = _Instance(want, "Fetching", f"fetching {want.artifact[:19]}")
                continue
            if status == "failed":
                self.instances[key] = _Instance(want, "Failed", self.artifact_errors.get(want.artifact, "fetch failed"))
                continue
            blocked = [b.component for b in want.imports if b.local and not self._running((key[0], b.component))]
            if blocked:
                self.instances[key] = _Instance(want, "Waiting", f"waiting for local {', '.join(blocked)}")
                continue
            self.instances[key] = _Instance(want, "Starting")
            out.append(Start(key, want))

    def _replace(self, key: Key, inst: _Instance, want: ComponentAssignment, out: list[Instruction]) -> None:
        """Prepare ``want`` beside the running instance; the shell swaps it in once started."""
        if inst.next is None or inst.next.shape() != want.shape():
            if inst.next_phase == "Starting":
                return  # one replacement at a time; the newest is started after this one lands
            inst.next, inst.next_phase, inst.update_error = want, "", ""
        if inst.next_phase == "Starting" or inst.update_error:
            return
        status = self.artifacts.get(want.artifact)
        if status is None:
            self.artifacts[want.artifact] = "fetching"
            out.append(Fetch(want.artifact, want.source))
            status = "fetching"
        if status == "fetching":
            inst.next_phase = "Fetching"
            return
        if status == "failed":
            inst.next_phase, inst.update_error = "", self.artifact_errors.get(want.artifact, "fetch failed")
            return
        if any(b.local and not self._running((key[0], b.component)) for b in want.imports):
            inst.next_phase = "Waiting"
            return
        inst.next_phase = "Starting"
        out.append(Start(key, want))

    def _prefetch(self, out: list[Instruction]) -> None:
        """Fetch and compile what a held rollout will run here, without starting it."""
        running = self._running_artifacts()
        for digest, spec in sorted(self.ahead.items()):
            if digest in running or digest in self.prepared:
                continue
            status = self.artifacts.get(digest)
            if status is None:
                self.artifacts[digest] = "fetching"
                out.append(Fetch(digest, spec.source))
            elif status == "ready":
                self.prepared[digest] = "preparing"
                out.append(Prepare(spec))

    def prefetch_report(self) -> tuple[tuple[str, ...], tuple[tuple[str, str], ...]]:
        """The artifacts ahead that are ready here (running already counts), and those that failed, with why."""
        running = self._running_artifacts()
        ready, failed = [], []
        for digest in sorted(self.ahead):
            if digest in running or self.prepared.get(digest) == "ready":
                ready.append(digest)
            elif self.artifacts.get(digest) == "failed":
                failed.append((digest, self.artifact_errors.get(digest, "fetch failed")))
            elif self.prepared.get(digest) == "failed":
                failed.append((digest, self.prepare_errors.get(digest, "compile failed")))
        return tuple(ready), tuple(failed)

    def _running_artifacts(self) -> set[str]:
        return {inst.spec.artifact for inst in self.instances.values() if inst.phase == "Running"}

    def _running(self, key: Key) -> bool:
        inst = self.instances.get(key)
        return inst is not None and inst.phase == "Running"

    def report(self) -> tuple[InstanceReport, ...]:
        """The instances as the control plane should see them."""
        reports = []
        for (app, comp), inst in sorted(self.instances.items()):
            if (inst.phase == "Stopping" or inst.cancel) and (app, comp) not in self.desired:
                continue
            state = {"Running": "Running", "Failed": "Failed"}.get(inst.phase, "Starting")
            artifact, reason = inst.spec.artifact, inst.reason
            if inst.phase == "Starting" and not reason:
                reason = "compiling and instantiating"
            if inst.update_error and inst.next is not None:
                state, artifact = "Failed", inst.next.artifact
                reason = f"update failed: {inst.update_error}; still serving {inst.spec.artifact[:19]}"
            reports.append(
                InstanceReport(
                    app=app,
                    component=comp,
                    artifact=artifact,
                    state=state,
                    reason=reason,
                    generation=self.generations.get(app, 0),
                )
            )
        return tuple(reports)
