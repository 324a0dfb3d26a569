"""Interfaces read from real component binaries, and links validated against them."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli.devcluster.guests import EXAMPLES
from controlplane.reconcile.plan import plan
from controlplane.state.world import AppRecord, World
from controlplane.wit.interfaces import capabilities, describe
from controlplane.wit.links import check_links
from neon import manifest
from neon.errors import InvalidArgument, InvalidManifest
from neon.model import NodeInfo
from tests.support.helpers import PAIR_TEXT

PARSE = "cyber-systems:logs/parser@0.1.0"
SIG = (
    "func(raw: string) -> result<record{timestamp: string, level: enum{debug, info, warn, error}, "
    "source: string, message: string}, string>"
)


@pytest.fixture(scope="module")
def summaries(log_analyzer: dict[str, Path]) -> dict[str, dict]:  # type: ignore[type-arg]
    return {name: describe(path) for name, path in log_analyzer.items()}


def _spec(links: list[dict[str, str]] | None = None) -> manifest.AppSpec:
    """The processor-parser pair, with digests ``a...`` (parser) and ``b...`` (processor)."""
    doc = manifest.load(PAIR_TEXT, require_digests=False).to_dict()
    doc["spec"]["components"][0]["artifact"] = "sha256:" + "a" * 64
    doc["spec"]["components"][1]["artifact"] = "sha256:" + "b" * 64
    if links is not None:
        doc["spec"]["links"] = links
    return manifest.parse(doc)


def _by_digest(summaries: dict[str, dict]) -> dict[str, dict]:  # type: ignore[type-arg]
    return {"sha256:" + "a" * 64: summaries["parser"], "sha256:" + "b" * 64: summaries["processor"]}


def test_the_example_describes_itself(summaries: dict[str, dict]) -> None:  # type: ignore[type-arg]
    types = "cyber-systems:logs/types@0.1.0"
    # `types` only holds types: it is imported (implicitly, through `use`) and needs no link.
    assert summaries["processor"]["imports"] == {PARSE: {"parse": SIG}, types: {}}
    assert summaries["parser"]["exports"][PARSE] == {"parse": SIG}
    assert summaries["processor"]["exports"]["cyber-systems:logs/processor@0.1.0"]["process-batch"] == (
        "func(raw-logs: list<string>) -> u32"
    )
    assert summaries["archiver"]["imports"] == {types: {}}
    assert sorted(summaries["ingestor"]["imports"]) == [
        "cyber-systems:logs/archiver@0.1.0",
        "cyber-systems:logs/processor@0.1.0",
        types,
    ]
    assert "wasi:filesystem/preopens@0.2.9" in summaries["parser"]["wasi"]
    assert capabilities(summaries["parser"]) == ("wasi-filesystem", "wasi-sockets")
    # The archiver reads its config and keeps its counts through the agent's own WASI hosts: a node must
    # offer both (agents of this version do).
    archiver = capabilities(summaries["archiver"])
    assert "wasi-config" in archiver and "wasi-keyvalue" in archiver, archiver


def test_links_are_checked_against_the_binaries(summaries: dict[str, dict]) -> None:  # type: ignore[type-arg]
    caps = check_links(_spec(), _by_digest(summaries))
    assert caps == {"parser": ("wasi-filesystem", "wasi-sockets"), "processor": ("wasi-filesystem", "wasi-sockets")}
    wrong_import = [{"importer": "processor", "import": "cyber-systems:logs/parsr@0.1.0", "exporter": "parser"}]
    with pytest.raises(InvalidManifest) as err:
        check_links(_spec(wrong_import), _by_digest(summaries))
    assert err.value.field == "spec.links[0].import" and f"(it imports: {PARSE})" in err.value.message
    backwards = [{"importer": "parser", "import": PARSE, "exporter": "processor"}]
    with pytest.raises(InvalidManifest, match="parser does not import"):
        check_links(_spec(backwards), _by_digest(summaries))
    with pytest.raises(InvalidManifest) as err:
        check_links(_spec([]), _by_digest(summaries))
    assert err.value.field == "spec.components[1]"
    assert f"processor imports {PARSE}, but no link satisfies it" in err.value.message


def test_idempotent_functions_must_be_the_imports_own(summaries: dict[str, dict]) -> None:  # type: ignore[type-arg]
    link = {"importer": "processor", "import": PARSE, "exporter": "parser"}
    for names in (["parse"], ["*"]):
        spec = _spec([link | {"idempotent": names}])
        check_links(spec, _by_digest(summaries))
        assert manifest.parse(spec.to_dict()) == spec and spec.links[0].idempotent == tuple(names)
    with pytest.raises(InvalidManifest) as err:
        check_links(_spec([link | {"idempotent": ["parse", "pars"]}]), _by_digest(summaries))
    assert err.value.field == "spec.links[0].idempotent"
    assert err.value.message == f"spec.links[0].idempotent: {PARSE} has no function pars (it has: parse)"


def test_the_whole_example_validates(summaries: dict[str, dict]) -> None:  # type: ignore[type-arg]
    spec = manifest.load((EXAMPLES / "log-analyzer" / "app.yaml").read_text(), require_digests=False)
    digests = {c.name: "sha256:" + str(i) * 64 for i, c in enumerate(spec.components, 1)}
    spec = spec.with_artifacts(lambda c: digests[c.name])
    by_digest = {digests[name]: summaries[name] for name in digests}
    caps = check_links(spec, by_digest)
    assert set(caps) == {"gateway", "ingestor", "processor", "parser", "archiver"}
    assert "wasi-http" in caps["gateway"]  # it imports wasi:http: a node must offer it
    unlinked = manifest.parse(
        {**spec.to_dict(), "spec": {**spec.to_dict()["spec"], "links": spec.to_dict()["spec"]["links"][:3]}}
    )
    with pytest.raises(InvalidManifest, match=f"processor imports {PARSE}, but no link satisfies it"):
        check_links(unlinked, by_digest)


def test_mismatched_signatures_name_both_sides(summaries: dict[str, dict]) -> None:  # type: ignore[type-arg]
    changed = {**summaries["parser"], "exports": {PARSE: {"parse": "func(raw: string) -> u32"}}}
    with pytest.raises(InvalidManifest) as err:
        check_links(_spec(), _by_digest({"parser": changed, "processor": summaries["processor"]}))
    assert err.value.field == "spec.links[0].exporter"
    assert err.value.message == (
        f"spec.links[0]: {PARSE}#parse does not match: processor imports {SIG}, parser exports func(raw: string) -> u32"
    )
    missing = {**summaries["parser"], "exports": {PARSE: {}}}
    with pytest.raises(InvalidManifest, match="needs cyber-systems:logs/parser@0.1.0#parse, which parser does not"):
        check_links(_spec(), _by_digest({"parser": missing, "processor": summaries["processor"]}))


def test_invalid_binaries_are_refused(tmp_path: Path) -> None:
    junk = tmp_path / "junk.wasm"
    junk.write_bytes(b"\x00asm\x01\x00\x00\x00garbage")
    with pytest.raises(InvalidArgument, match="not a valid WebAssembly component"):
        describe(junk)


def test_capabilities_from_imports_steer_placement() -> None:
    spec = _spec()
    record = AppRecord(
        spec=spec,
        generation=1,
        created_at=0,
        updated_at=0,
        capabilities={"parser": ("wasi-filesystem",), "processor": ("wasi-http",)},
    )
    nodes = {
        "edge-1": NodeInfo("edge-1", {"tier": "edge"}, "a:1", capabilities=("wasi-filesystem",)),
        "cloud-1": NodeInfo("cloud-1", {"tier": "cloud"}, "b:1", capabilities=("wasi-filesystem",)),
    }
    (app_plan,), _ = plan(World(apps={"log-analyzer": record}, nodes=nodes, placements={}))
    assert app_plan.placement.nodes_of("parser") == ("edge-1",)
    assert app_plan.placement.components["processor"].reason == (
        "0/2 nodes: 1 missing capability wasi-http, 1 tier!=cloud"
    )
