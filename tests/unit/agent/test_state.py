"""The agent's state machine: exact instruction lists for each event."""

from __future__ import annotations

from agent.state import (
    AgentState,
    ArtifactFailed,
    ArtifactFetched,
    DesiredChanged,
    Fetch,
    InstanceFailed,
    InstanceStarted,
    InstanceStopped,
    Prepare,
    Prepared,
    PrepareFailed,
    Report,
    Route,
    Start,
    Stop,
)
from neon.model import Assignment, ComponentAssignment, ImportBinding, InstanceReport

P = "sha256:" + "11" * 32
Q = "sha256:" + "22" * 32
PARSE = "cyber-systems:logs/parser@0.1.0"

parser = ComponentAssignment("parser", P)
processor_remote = ComponentAssignment("processor", Q, (ImportBinding(PARSE, "parser", False, ("10.0.0.1:1",)),))
processor_local = ComponentAssignment("processor", Q, (ImportBinding(PARSE, "parser", True),))


def _desired(*comps: ComponentAssignment, generation: int = 1) -> DesiredChanged:
    return DesiredChanged((Assignment("app", generation, comps),))


def _strip(out: list) -> list:  # type: ignore[type-arg]
    return [i for i in out if not isinstance(i, Report)]


def _report(state: AgentState) -> list[tuple[str, str]]:
    return [(r.component, r.state) for r in state.report()]


def test_remote_import_fetches_routes_and_starts() -> None:
    s = AgentState()
    out = s.handle(_desired(processor_remote))
    assert _strip(out) == [Route("app", "parser", ("10.0.0.1:1",)), Fetch(Q)]
    assert out[-1] == Report((InstanceReport("app", "processor", Q, "Starting", f"fetching {Q[:19]}", 1),))
    assert _strip(s.handle(ArtifactFetched(Q))) == [Start(("app", "processor"), processor_remote)]
    out = s.handle(InstanceStarted(("app", "processor"), processor_remote))
    assert _strip(out) == []
    assert out[-1] == Report((InstanceReport("app", "processor", Q, "Running", "", 1),))


def test_endpoint_change_only_reroutes() -> None:
    s = AgentState()
    s.handle(_desired(processor_remote))
    s.handle(ArtifactFetched(Q))
    s.handle(InstanceStarted(("app", "processor"), processor_remote))
    moved = ComponentAssignment("processor", Q, (ImportBinding(PARSE, "parser", False, ("10.0.0.2:1",)),))
    assert _strip(s.handle(_desired(moved, generation=2))) == [Route("app", "parser", ("10.0.0.2:1",))]
    assert _report(s) == [("processor", "Running")]


def test_local_import_waits_for_the_exporter() -> None:
    s = AgentState()
    out = _strip(s.handle(_desired(parser, processor_local)))
    assert out == [Fetch(P), Fetch(Q)]
    assert _strip(s.handle(ArtifactFetched(Q))) == []
    assert s.instances[("app", "processor")].reason == "waiting for local parser"
    assert _strip(s.handle(ArtifactFetched(P))) == [Start(("app", "parser"), parser)]
    assert _strip(s.handle(InstanceStarted(("app", "parser"), parser))) == [
        Start(("app", "processor"), processor_local)
    ]


def test_removal_stops_and_drops_routes() -> None:
    s = AgentState()
    s.handle(_desired(processor_remote))
    s.handle(ArtifactFetched(Q))
    s.handle(InstanceStarted(("app", "processor"), processor_remote))
    out = s.handle(DesiredChanged(()))
    assert _strip(out) == [Route("app", "parser", ()), Stop(("app", "processor"))]
    assert out[-1] == Report(())
    assert _strip(s.handle(InstanceStopped(("app", "processor")))) == []
    assert s.instances == {}


def _running_parser(s: AgentState) -> None:
    s.handle(_desired(parser))
    s.handle(ArtifactFetched(P))
    s.handle(InstanceStarted(("app", "parser"), parser))


def test_new_artifact_is_swapped_in_make_before_break() -> None:
    s = AgentState()
    _running_parser(s)
    v2 = ComponentAssignment("parser", Q)
    assert _strip(s.handle(_desired(v2, generation=2))) == [Fetch(Q)]  # no Stop: v1 keeps serving
    assert _report(s) == [("parser", "Running")] and s.report()[0].artifact == P
    assert _strip(s.handle(ArtifactFetched(Q))) == [Start(("app", "parser"), v2)]
    out = s.handle(InstanceStarted(("app", "parser"), v2))  # the shell swapped the pools
    assert _strip(out) == []
    assert out[-1] == Report((InstanceReport("app", "parser", Q, "Running", "", 2),))


def test_a_failed_update_keeps_the_old_version_serving() -> None:
    s = AgentState()
    _running_parser(s)
    v2 = ComponentAssignment("parser", Q)
    s.handle(_desired(v2, generation=2))
    s.handle(ArtifactFetched(Q))
    out = s.handle(InstanceFailed(("app", "parser"), v2, "trap at start"))
    assert _strip(out) == []
    (report,) = out[-1].instances  # type: ignore[union-attr]
    assert (report.state, report.artifact) == ("Failed", Q)
    assert report.reason == f"update failed: trap at start; still serving {P[:19]}"
    assert s.instances[("app", "parser")].phase == "Running"
    assert _strip(s.handle(_desired(v2, generation=2))) == [Start(("app", "parser"), v2)]  # retried
    rollback = s.handle(_desired(parser, generation=3))  # back to what runs: nothing to do
    assert _strip(rollback) == [] and _report(s) == [("parser", "Running")]


def test_updates_overlapping_a_start_end_on_the_newest() -> None:
    s = AgentState()
    _running_parser(s)
    v2, v3 = ComponentAssignment("parser", Q), ComponentAssignment("parser", "sha256:" + "33" * 32)
    s.handle(ArtifactFetched(Q))
    assert _strip(s.handle(_desired(v2, generation=2))) == [Start(("app", "parser"), v2)]
    assert _strip(s.handle(_desired(v3, generation=3))) == []  # one replacement at a time
    assert _strip(s.handle(InstanceStarted(("app", "parser"), v2))) == [Fetch(v3.artifact)]
    assert _strip(s.handle(ArtifactFetched(v3.artifact))) == [Start(("app", "parser"), v3)]
    s.handle(InstanceStarted(("app", "parser"), v3))
    assert s.instances[("app", "parser")].spec == v3 and s.instances[("app", "parser")].next is None


def test_failures_are_reported_and_retried_on_the_next_desired_state() -> None:
    s = AgentState()
    s.handle(_desired(parser))
    out = s.handle(ArtifactFailed(P, "fetch failed: gone"))
    assert out[-1] == Report((InstanceReport("app", "parser", P, "Failed", "fetch failed: gone", 1),))
    assert _strip(s.handle(_desired(parser))) == [Fetch(P)]
    s.handle(ArtifactFetched(P))
    out = s.handle(InstanceFailed(("app", "parser"), parser, "trap"))
    assert out[-1] == Report((InstanceReport("app", "parser", P, "Failed", "trap", 1),))
    # Nothing runs after a failed start: the retry starts it directly.
    assert _strip(s.handle(_desired(parser))) == [Start(("app", "parser"), parser)]


def test_late_start_of_an_unwanted_instance_is_stopped() -> None:
    s = AgentState()
    s.handle(_desired(parser))
    s.handle(ArtifactFetched(P))
    assert _strip(s.handle(DesiredChanged(()))) == []  # removed while starting: wait for the start
    assert s.report() == ()
    assert _strip(s.handle(InstanceStarted(("app", "parser"), parser))) == [Stop(("app", "parser"))]
    assert _strip(s.handle(InstanceStopped(("app", "parser")))) == []
    assert s.instances == {}


def test_replacement_requested_while_starting_waits_then_replaces() -> None:
    s = AgentState()
    s.handle(_desired(parser))
    s.handle(ArtifactFetched(P))
    s.handle(ArtifactFetched(Q))
    v2 = ComponentAssignment("parser", Q)
    assert _strip(s.handle(_desired(v2, generation=2))) == []
    assert _strip(s.handle(InstanceStarted(("app", "parser"), parser))) == [Stop(("app", "parser"))]
    assert _strip(s.handle(InstanceStopped(("app", "parser")))) == [Start(("app", "parser"), v2)]


def test_event_log_is_bounded() -> None:
    s = AgentState(log_size=3)
    for _ in range(5):
        s.handle(DesiredChanged(()))
    assert len(s.log) == 3
    assert s.log[-1][1:] == ("DesiredChanged", ["Report"])


# --------------------------------------------------------------------------------------------- prefetch --

R = "sha256:" + "33" * 32
parser_v2 = ComponentAssignment("parser", R)


def _held(running: tuple[ComponentAssignment, ...], ahead: tuple[ComponentAssignment, ...]) -> DesiredChanged:
    """Generation 1 still running, generation 2's components to fetch and compile first."""
    return DesiredChanged((Assignment("app", 1, running, prefetch=ahead, prefetch_generation=2, prefetch_since=5.0),))


def _running(s: AgentState, *comps: ComponentAssignment) -> None:
    s.handle(_desired(*comps))
    for comp in comps:
        s.handle(ArtifactFetched(comp.artifact))
        s.handle(InstanceStarted(("app", comp.name), comp))


def test_a_held_rollout_is_fetched_and_compiled_without_starting_or_stopping_anything() -> None:
    s = AgentState()
    _running(s, parser)
    out = s.handle(_held((parser,), (parser_v2,)))
    assert _strip(out) == [Fetch(R)], "the next version is fetched, nothing is started or stopped"
    assert out[-1].prefetched == () and out[-1].prefetch_failed == ()
    out = s.handle(ArtifactFetched(R))
    assert _strip(out) == [Prepare(parser_v2)], "a fetched artifact is compiled, not started"
    out = s.handle(Prepared(R))
    assert _strip(out) == []
    assert out[-1].prefetched == (R,), "the compiled artifact is reported ready"
    assert _report(s) == [("parser", "Running")] and s.instances[("app", "parser")].spec == parser
    # The rollout goes ahead: the new version starts beside the old one, from what is already here.
    out = s.handle(_desired(parser_v2, generation=2))
    assert _strip(out) == [Start(("app", "parser"), parser_v2)]
    assert out[-1].prefetched == (), "nothing is ahead any more"


def test_what_runs_here_already_is_ready_and_a_failure_is_reported_with_why() -> None:
    s = AgentState()
    _running(s, parser)
    out = s.handle(_held((parser,), (parser, parser_v2)))
    assert _strip(out) == [Fetch(R)], "the running artifact is neither fetched nor compiled again"
    assert out[-1].prefetched == (P,)
    s.handle(ArtifactFetched(R))
    out = s.handle(PrepareFailed(R, "not signed by a trusted key"))
    assert out[-1].prefetched == (P,) and out[-1].prefetch_failed == ((R, "not signed by a trusted key"),)
    # A new desired state tries again.
    assert _strip(s.handle(_held((parser,), (parser, parser_v2)))) == [Prepare(parser_v2)]


def test_a_failed_fetch_of_a_prefetched_artifact_is_reported() -> None:
    s = AgentState()
    _running(s, parser)
    s.handle(_held((parser,), (parser_v2,)))
    out = s.handle(ArtifactFailed(R, "fetch failed: blob gone"))
    assert _strip(out) == [] and out[-1].prefetch_failed == ((R, "fetch failed: blob gone"),)
