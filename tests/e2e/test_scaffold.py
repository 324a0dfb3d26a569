"""`neon new` and `neon build` as a newcomer runs them: each language's template is written, built with its
real toolchain (componentize-py, componentize-js, Zig's clang), applied with `neon apply` and answers
`neon invoke`, all through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.helpers import Cluster, neon_cli

pytestmark = pytest.mark.e2e


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

    again = neon_cli(cluster, "new", "hello-c", "--lang", "c", "--dir", str(tmp_path / "hello-c"))
    assert again.returncode != 0 and "is not empty" in again.stderr
    bad = neon_cli(cluster, "new", "Hello_World", "--lang", "python", "--dir", str(tmp_path / "x"))
    assert bad.returncode != 0 and "lowercase words joined by '-'" in bad.stderr
    nothing = neon_cli(cluster, "build", str(tmp_path))
    assert nothing.returncode != 0 and "no neon.yaml" in nothing.stderr
    fault_report.append(
        "templates: "
        + ", ".join(f"{lang} {size / 1e3:,.0f} kB" for lang, size in built.items())
        + "; each built, applied and invoked through the CLI"
    )
