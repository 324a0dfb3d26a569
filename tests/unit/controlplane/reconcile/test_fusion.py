"""Fusion groups and fused assignments, pure."""

from __future__ import annotations

from typing import Any

from controlplane.placement import ComponentDecision, Placement
from controlplane.reconcile.fusion import groups
from controlplane.reconcile.plan import resolve_groups, slice_graph
from controlplane.state.world import Composition
from neon import manifest
from neon.model import NodeInfo

D = {name: "sha256:" + str(i) * 64 for i, name in enumerate("abcdefg", start=1)}


def app(
    links: list[tuple[str, str]], names: str = "abcd", unfused: tuple[tuple[str, str], ...] = ()
) -> manifest.AppSpec:
    return manifest.parse(
        {
            "apiVersion": manifest.API_VERSION,
            "kind": "Application",
            "metadata": {"name": "demo"},
            "spec": {
                "components": [{"name": n, "artifact": D[n]} for n in names],
                "links": [
                    {"importer": i, "import": f"x:y/{e}", "exporter": e}
                    | ({"fuse": False} if (i, e) in unfused else {})
                    for i, e in links
                ],
            },
        }
    )


def placed(**where: str) -> Placement:
    return Placement(
        {name: ComponentDecision(nodes=tuple(nodes.split(",")), desired=1) for name, nodes in where.items()}
    )


NODES = {n: NodeInfo(n, {}, f"{n}:1") for n in ("n1", "n2")}


def test_a_chain_on_one_node_is_one_group_with_its_root() -> None:
    spec = app([("a", "b"), ("b", "c")])
    (group,) = groups(spec, placed(a="n1", b="n1", c="n1", d="n2"))
    assert (group.node, group.members, group.root, group.reason, group.standalone) == (
        "n1",
        ("a", "b", "c"),
        "a",
        "",
        (),
    )
    assert group.definitions() == ("b", "c")


def test_two_roots_are_not_fused_and_say_why() -> None:
    spec = app([("a", "c"), ("b", "c")])
    (group,) = groups(spec, placed(a="n1", b="n1", c="n1", d="n1"))
    assert group.root == "" and group.reason == "2 roots (a, b); only a group with one root is fused"


def test_members_called_from_elsewhere_also_run_alone_with_what_they_need() -> None:
    spec = app([("a", "b"), ("b", "c"), ("d", "b")])
    (group,) = groups(spec, placed(a="n1", b="n1", c="n1", d="n2"))
    assert group.root == "a" and group.standalone == ("b", "c")


def test_an_unfused_link_keeps_a_colocated_pair_apart() -> None:
    spec = app([("a", "b")], unfused=(("a", "b"),))
    assert spec.links[0].fuse is False
    assert manifest.parse(spec.to_dict()).links[0].fuse is False  # survives the round trip through etcd
    assert groups(spec, placed(a="n1", b="n1", c="n2", d="n2")) == []


def test_a_member_called_over_an_unfused_link_on_its_node_also_runs_alone() -> None:
    spec = app([("a", "b"), ("c", "b")], unfused=(("c", "b"),))
    (group,) = groups(spec, placed(a="n1", b="n1", c="n1", d="n2"))
    assert (group.members, group.root, group.standalone) == (("a", "b"), "a", ("b",))


def test_split_links_make_no_group() -> None:
    assert groups(app([("a", "b")]), placed(a="n1", b="n2", c="n1", d="n2")) == []


def test_fused_assignments() -> None:
    spec = app([("a", "b"), ("b", "c"), ("c", "d")])
    where = placed(a="n1", b="n1", c="n1", d="n2")
    compositions: dict[Any, Composition] = {("n1", ("a", "b", "c")): Composition("sha256:" + "f" * 64)}
    grouped = resolve_groups(spec, where, compositions)
    slices = slice_graph(spec, 1, where, NODES, grouped, compositions)
    (fused,) = slices["n1"].components
    assert (fused.name, fused.artifact, fused.fused_members) == ("a", "sha256:" + "f" * 64, ("a", "b", "c"))
    (binding,) = fused.imports  # only the link leaving the group remains, forwarded
    assert (binding.import_name, binding.component, binding.local, binding.endpoints) == (
        "x:y/d",
        "d",
        False,
        ("n2:1",),
    )
    assert [c.name for c in slices["n2"].components] == ["d"]
    # Without a composition (refused, or not yet composed), the same group runs host-linked and says why.
    refused = {("n1", ("a", "b", "c")): Composition(error="wasm-tools compose refused it: ...")}
    plain = resolve_groups(spec, where, refused)
    assert plain[0].reason == "wasm-tools compose refused it: ..."
    names = [c.name for c in slice_graph(spec, 1, where, NODES, plain, refused)["n1"].components]
    assert names == ["a", "b", "c"]


def test_changing_one_member_changes_only_its_group() -> None:
    from controlplane.wit.composer import Composer

    spec = app([("a", "b"), ("c", "d")])
    where = placed(a="n1", b="n1", c="n2", d="n2")
    first, second = groups(spec, where)
    composer = Composer.__new__(Composer)
    composer.version = "test"
    swapped = manifest.parse(
        {
            **spec.to_dict(),
            "spec": {
                **spec.to_dict()["spec"],
                "components": [{"name": n, "artifact": D["g"] if n == "b" else D[n]} for n in "abcd"],
            },
        }
    )
    assert composer.key(spec, first) != composer.key(swapped, first)  # the group with b is composed again
    assert composer.key(spec, second) == composer.key(swapped, second)  # the other one is reused


def _configured(configs: dict[str, dict[str, Any]], persist: str = "") -> manifest.AppSpec:
    doc = app([("a", "b")], names="ab").to_dict()
    for comp in doc["spec"]["components"]:
        comp["config"] = configs.get(comp["name"], {})
        if comp["name"] in persist:
            comp["secrets"] = {"persist": True}
    return manifest.parse(doc)


def test_a_fused_component_has_its_members_config_and_secret_versions() -> None:
    token = {"valueFrom": {"secret": "creds", "key": "token"}}
    spec = _configured({"a": {"level": "info", "token": token}, "b": {"level": "info", "limit": "5"}}, persist="a")
    where = placed(a="n1", b="n1")
    compositions: dict[Any, Composition] = {("n1", ("a", "b")): Composition("sha256:" + "f" * 64)}
    grouped = resolve_groups(spec, where, compositions)
    (fused,) = slice_graph(spec, 1, where, NODES, grouped, compositions, {"creds": 3})["n1"].components
    assert fused.config.values == (("level", "info"), ("limit", "5"))
    assert [(r.key, r.secret, r.secret_key) for r in fused.config.secrets] == [("token", "creds", "token")]
    assert fused.config.persist_secrets and fused.secret_versions == (("creds", 3),)
    # A new version of the secret changes the assignment's shape: the agent swaps it in.
    (newer,) = slice_graph(spec, 1, where, NODES, grouped, compositions, {"creds": 4})["n1"].components
    assert newer.shape() != fused.shape()


def test_members_that_configure_a_key_differently_are_not_fused() -> None:
    spec = _configured({"a": {"level": "info"}, "b": {"level": "debug"}})
    (group,) = groups(spec, placed(a="n1", b="n1"))
    assert "config key 'level' differs between a and b" in group.reason
    slices = slice_graph(spec, 1, placed(a="n1", b="n1"), NODES, [group], {})
    assert {c.name: c.config.values for c in slices["n1"].components} == {
        "a": (("level", "info"),),
        "b": (("level", "debug"),),
    }
