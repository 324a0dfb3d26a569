"""`neon new` and `neon build` as a newcomer runs them: each language's template is written, built with its
real toolchain (componentize-py, componentize-js, Zig's clang), applied with `neon apply` and answers
`neon invoke`, all through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.helpers import Cluster, neon_cli

pytestmark = pytest.mark.e2e

CALC_WIT = """package acme:calc@0.1.0;

interface ops {
  add: func(a: u32, b: s64) -> s64;
  greet: func(name: string) -> string;
  shout: func(text: string, loud: bool);
}

world calc {
  export ops;
  export version: func() -> string;
}
"""

SHOP_WIT = """package acme:shop@0.1.0;

interface cart {
  record item { sku: string, count: u32 }
  variant problem { unknown-sku(string), empty }
  add: func(cart-id: string, it: item) -> result<item, problem>;
  total: func(cart-id: string) -> option<u64>;
  count: func() -> u32;
}

world shop {
  export cart;
  export ping: func() -> string;
}
"""


def test_each_template_builds_applies_and_answers(cluster: Cluster, tmp_path: Path, fault_report: list[str]) -> None:
    built = {}
    for lang in ("python", "js", "c"):
        name = f"hello-{lang}"
        root = tmp_path / name
        made = neon_cli(cluster, "new", name, "--lang", lang, "--dir", str(root))
        assert made.returncode == 0, made.stderr
        assert {"wit/world.wit", "neon.yaml", "app.yaml", "README.md"} <= {
            str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()
        }
        done = neon_cli(cluster, "build", str(root), timeout=600)
        assert done.returncode == 0, done.stderr
        built[lang] = (root / "build" / f"{name}.wasm").stat().st_size
        key = str(cluster.pki / "publisher.key")
        applied = neon_cli(
            cluster,
            "apply",
            "-f",
            str(root / "app.yaml"),
            "--sign-with",
            key,
            "--wait",
            "--timeout",
            "300",
            timeout=330,
        )
        assert applied.returncode == 0, applied.stdout + applied.stderr
        answer = neon_cli(cluster, "invoke", name, name, "greet", json.dumps(f"from {lang}"))
        assert answer.returncode == 0, answer.stderr
        assert json.loads(answer.stdout.splitlines()[0]) == f"hello, from {lang}!", answer.stdout

    # A project from your own WIT: every exported function written out, answering its zero value.
    wit = tmp_path / "shop-wit"
    wit.mkdir()
    (wit / "world.wit").write_text(SHOP_WIT)
    calc = tmp_path / "calc-wit"
    calc.mkdir()
    (calc / "world.wit").write_text(CALC_WIT)
    made = neon_cli(cluster, "new", "calc-c", "--lang", "c", "--wit", str(calc), "--dir", str(tmp_path / "calc-c"))
    assert made.returncode == 0, made.stderr
    done = neon_cli(cluster, "build", str(tmp_path / "calc-c"), timeout=600)
    assert done.returncode == 0, done.stderr
    key = str(cluster.pki / "publisher.key")
    manifest = str(tmp_path / "calc-c" / "app.yaml")
    applied = neon_cli(cluster, "apply", "-f", manifest, "--sign-with", key, "--wait", timeout=330)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    for function, args, expected in (
        ("version", (), ""),
        ("ops.add", ("2", "3"), "0"),  # a 64-bit integer is a JSON string, as protobuf writes it
        ("ops.greet", ('"you"',), ""),
        ("ops.shout", ('"hey"', "true"), None),
    ):
        answer = neon_cli(cluster, "invoke", "calc-c", "calc-c", function, *args)
        assert answer.returncode == 0, (function, answer.stderr)
        assert json.loads(answer.stdout.splitlines()[0]) == expected, (function, answer.stdout)
    for lang in ("python", "js"):
        name = f"shop-{lang}"
        root = tmp_path / name
        made = neon_cli(cluster, "new", name, "--lang", lang, "--wit", str(wit), "--world", "shop", "--dir", str(root))
        assert made.returncode == 0, made.stderr
        assert f"neon invoke {name} {name} ping" in made.stdout, made.stdout
        assert (root / "wit" / "world.wit").read_text() == SHOP_WIT
        done = neon_cli(cluster, "build", str(root), timeout=600)
        assert done.returncode == 0, done.stderr
        applied = neon_cli(cluster, "apply", "-f", str(root / "app.yaml"), "--sign-with", key, "--wait", timeout=330)
        assert applied.returncode == 0, applied.stdout + applied.stderr
        for function, args, expected in (("ping", (), ""), ("cart.total", ('"c-1"',), None), ("cart.count", (), 0)):
            answer = neon_cli(cluster, "invoke", name, name, function, *args)
            assert answer.returncode == 0, (function, answer.stderr)
            assert json.loads(answer.stdout.splitlines()[0]) == expected, (function, answer.stdout)
        refused = neon_cli(cluster, "invoke", name, name, "cart.add", '"c-1"', '{"sku": "a", "count": 1}')
        assert refused.returncode != 0, "a function without a zero value answered"
    for bad, why in (
        (["--lang", "c", "--wit", str(wit)], "--lang c writes out functions of scalars and strings only"),
        (["--lang", "python", "--wit", str(wit), "--world", "mall"], "no such world (its worlds: shop)"),
        (["--lang", "python", "--world", "shop"], "--world shop needs --wit DIR"),
        (["--lang", "python", "--wit", str(tmp_path / "hello-c" / "src")], "wasm-tools cannot read it"),
    ):
        out = neon_cli(cluster, "new", "other", *bad, "--dir", str(tmp_path / "other"))
        assert out.returncode != 0 and why in out.stderr, (bad, out.stderr)

    again = neon_cli(cluster, "new", "hello-c", "--lang", "c", "--dir", str(tmp_path / "hello-c"))
    assert again.returncode != 0 and "is not empty" in again.stderr
    bad = neon_cli(cluster, "new", "Hello_World", "--lang", "python", "--dir", str(tmp_path / "x"))
    assert bad.returncode != 0 and "lowercase words joined by '-'" in bad.stderr
    nothing = neon_cli(cluster, "build", str(tmp_path))
    assert nothing.returncode != 0 and "no neon.yaml" in nothing.stderr
    fault_report.append(
        "scaffolds: "
        + ", ".join(f"{lang} {size / 1e3:,.0f} kB" for lang, size in built.items())
        + "; each built, applied and invoked through the CLI"
    )
