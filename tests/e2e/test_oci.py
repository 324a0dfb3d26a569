"""Components from an OCI registry, end to end: `neon push` (a real CLI process) to a real registry (Debian's
docker-registry, TLS from a private CA, htpasswd), signed as an OCI referrer; a manifest naming them by
oci:// reference applied with `neon apply`; the control plane pulls each layer once (the agents fetch from it and
never see the registry) and pins the digest: a later push to the tag changes nothing until the next apply.
References that float, are missing or unsigned are refused at apply naming the component, nothing stored."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from cli.client import ControlClient
from cli.devcluster.guests import EXAMPLES
from cli.devcluster.registry_launcher import RegistryServer
from neon import manifest
from tests.support.helpers import Cluster, neon_cli, pair_manifest, wait_running

pytestmark = pytest.mark.e2e
FATAL = "2026-11-24T08:00:04Z FATAL kernel: oops"  # v2 of the parser takes it, v1 does not
INFO = (EXAMPLES / "log-analyzer" / "sample.log").read_text().splitlines()[0]


@pytest.fixture
def oci_cluster(
    tmp_path: Path, compiled_cache: Path, registry: RegistryServer, log_analyzer: dict[str, Path]
) -> Iterator[Cluster]:
    """The test cluster, its control plane given the registry's credentials and CA (and nothing else is)."""
    config = registry.docker_config(tmp_path / "cp-docker" / "config.json")
    cluster = Cluster(tmp_path / "cluster", compiled_cache, registry_config=config, registry_ca=registry.ca)
    try:
        cluster.start()
        yield cluster
    except BaseException:
        print(cluster.logs())
        raise
    finally:
        cluster.stop()


def _push(cluster: Cluster, registry: RegistryServer, tmp_path: Path, wasm: Path, ref: str, *extra: str) -> str:
    config = registry.docker_config(tmp_path / "me" / "config.json")
    done = neon_cli(
        cluster, "push", str(wasm), ref, "--registry-config", str(config), "--registry-ca", str(registry.ca), *extra
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_push_sign_apply_by_tag_and_pin_the_digest(
    oci_cluster: Cluster,
    registry: RegistryServer,
    tmp_path: Path,
    log_analyzer: dict[str, Path],
    parser_v2: Path,
    fault_report: list[str],
) -> None:
    cluster, client, key = oci_cluster, oci_cluster.client, str(oci_cluster.pki / "publisher.key")
    assert client is not None
    base = f"oci://{registry.host}/e2e"
    for name in ("parser", "processor"):
        shown = _push(cluster, registry, tmp_path, log_analyzer[name], f"{base}/{name}:0.1.0", "--sign-with", key)
        assert "signed by ed25519:" in shown and f"{base}/{name}:0.1.0@sha256:" in shown, shown
    manifest = pair_manifest(
        tmp_path,
        ("name: log-analyzer", "name: pair"),
        ("build/parser.wasm", f"{base}/parser:0.1.0"),
        ("build/processor.wasm", f"{base}/processor:0.1.0"),
    )
    applied = neon_cli(cluster, "apply", "-f", str(manifest))
    assert applied.returncode == 0, applied.stderr
    wait_running(client, "pair")
    assert client.invoke("pair", "processor", "process-batch", [[INFO, FATAL]])[0] == 1  # v1: FATAL is no level
    first = client.get_app("pair")
    parser_digest = _artifact(client, "parser")
    assert parser_digest.startswith("sha256:") and (cluster.workdir / "cp" / "blobs" / "sha256").is_dir()
    note = next(e.message for e in client.events(history=50, app="pair") if e.kind == "Applied")
    assert f"{base}/parser:0.1.0 is manifest sha256:" in note and f"layer {parser_digest}" in note, note

    # A new push to the same tag changes nothing until the next apply, which pins the new digest.
    _push(cluster, registry, tmp_path, parser_v2, f"{base}/parser:0.1.0", "--sign-with", key)
    assert client.get_app("pair").generation == first.generation and _artifact(client, "parser") == parser_digest
    assert client.invoke("pair", "processor", "process-batch", [[INFO, FATAL]])[0] == 1
    again = neon_cli(cluster, "apply", "-f", str(manifest), "--wait")
    assert again.returncode == 0, again.stderr
    assert client.get_app("pair").generation == first.generation + 1
    assert _artifact(client, "parser") != parser_digest
    assert client.invoke("pair", "processor", "process-batch", [[INFO, FATAL]])[0] == 2  # v2 runs now

    # Refused at apply, naming the component; the application stays as it was.
    unsigned = tmp_path / "unsigned.wasm"  # the parser with a custom section: bytes no key has signed
    unsigned.write_bytes(log_analyzer["parser"].read_bytes() + _custom_section(b"neon-test", b"unsigned"))
    _push(cluster, registry, tmp_path, unsigned, f"{base}/unsigned:1")
    _push(cluster, registry, tmp_path, log_analyzer["parser"], f"{base}/parser:latest", "--allow-latest")
    refusals = {
        "a floating tag": (f"{base}/parser:latest", "--allow-latest"),
        "a bare repository": (f"{base}/parser", "names whatever was pushed last"),
        "a missing tag": (f"{base}/parser:9.9.9", "not in"),
        "a missing repository": (f"{base}/nothing:1", "not in"),
        "an unsigned artifact": (f"{base}/unsigned:1", "it is not signed"),
        "a digest the registry lacks": (f"{base}/parser@sha256:" + "0" * 64, "not in"),
    }
    for what, (ref, words) in refusals.items():
        bad = pair_manifest(
            tmp_path,
            ("name: log-analyzer", "name: pair"),
            ("build/parser.wasm", ref),
            ("build/processor.wasm", f"{base}/processor:0.1.0"),
            name=f"bad-{len(ref)}.yaml",
        )
        refused = neon_cli(cluster, "apply", "-f", str(bad))
        assert refused.returncode != 0, (what, refused.stdout)
        assert words in refused.stderr and "spec.components[0]" in refused.stderr, (what, refused.stderr)
    assert client.get_app("pair").generation == first.generation + 1
    allowed = pair_manifest(
        tmp_path,
        ("name: log-analyzer", "name: latest"),
        ("build/parser.wasm", f"{base}/parser:latest"),
        ("build/processor.wasm", f"{base}/processor:0.1.0"),
        name="latest.yaml",
    )
    latest = neon_cli(cluster, "apply", "-f", str(allowed), "--allow-latest")
    assert latest.returncode == 0, latest.stderr
    assert _artifact(client, "parser", "latest") == parser_digest  # pinned to what latest was at apply

    # A node labelled to pull fetches oci:// artifacts from the registry itself, checked against the digest.
    config = registry.docker_config(tmp_path / "edge-2-docker" / "config.json")
    labels = {"tier": "edge", "zone": "pulls", "neon-grid.dev/pull": "registry"}
    extra = ["--registry-config", str(config), "--registry-ca", str(registry.ca)]
    puller = cluster.add_agent("edge-2", labels, extra=extra)
    direct = pair_manifest(
        tmp_path,
        ("name: log-analyzer", "name: direct"),
        ("tier: edge", "zone: pulls"),
        ("build/parser.wasm", f"{base}/parser:0.1.0"),
        ("build/processor.wasm", f"{base}/processor:0.1.0"),
        name="direct.yaml",
    )
    assert neon_cli(cluster, "apply", "-f", str(direct), "--wait").returncode == 0
    assert client.invoke("direct", "processor", "process-batch", [[INFO, FATAL]])[0] == 2
    pulled = _artifact(client, "parser", "direct")
    lines = [line for line in puller.log_path.read_text().splitlines() if pulled in line]
    assert any("artifact pulled from its registry" in line for line in lines), puller.tail(40)
    assert not any("artifact fetched" in line or "registry pull failed" in line for line in lines), lines

    fault_report.append(
        f"OCI: pushed, signed as referrers, applied by tag and pinned; {len(refusals)} bad references refused at "
        "apply naming the component, the application unchanged"
    )


def _artifact(client: ControlClient, component: str, app: str = "pair") -> str:
    """The digest the application's current generation pins for ``component``."""
    return manifest.load(client.get_app(app).manifest_yaml).component(component).artifact


def _custom_section(name: bytes, payload: bytes) -> bytes:
    body = bytes([len(name)]) + name + payload
    return b"\x00" + bytes([len(body)]) + body


def test_registry_credentials_from_a_pull_secret(
    tmp_path: Path, compiled_cache: Path, registry: RegistryServer, log_analyzer: dict[str, Path]
) -> None:
    """A control plane with no registry credentials of its own (only the registry's CA) pulls with the ones an
    application names in spec.pullSecrets: a secret holding a docker config.json, never the manifest."""
    cluster = Cluster(tmp_path / "cluster", compiled_cache, registry_ca=registry.ca)
    try:
        cluster.start()
        client, key = cluster.client, str(cluster.pki / "publisher.key")
        assert client is not None
        base = f"oci://{registry.host}/secret-pull"
        for name in ("parser", "processor"):
            _push(cluster, registry, tmp_path, log_analyzer[name], f"{base}/{name}:0.1.0", "--sign-with", key)
        replace = [
            ("name: log-analyzer", "name: pulled"),
            ("build/parser.wasm", f"{base}/parser:0.1.0"),
            ("build/processor.wasm", f"{base}/processor:0.1.0"),
        ]
        plain = pair_manifest(tmp_path, *replace, name="plain.yaml")
        refused = neon_cli(cluster, "apply", "-f", str(plain))
        assert refused.returncode != 0 and "we have no credentials for it" in refused.stderr, refused.stderr

        with_secret = pair_manifest(
            tmp_path, *replace, ("spec:\n", "spec:\n  pullSecrets: [registry]\n"), name="s.yaml"
        )
        missing = neon_cli(cluster, "apply", "-f", str(with_secret))
        assert missing.returncode != 0 and "spec.pullSecrets[0]: secret 'registry' does not exist" in missing.stderr
        wrong = registry.docker_config(tmp_path / "wrong" / "config.json", password="not-the-password")
        made = neon_cli(cluster, "secret", "create", "registry", "--from-file", f".dockerconfigjson={wrong}")
        assert made.returncode == 0, made.stderr
        denied = neon_cli(cluster, "apply", "-f", str(with_secret))
        assert denied.returncode != 0 and "spec.components[0]" in denied.stderr and "401" in denied.stderr, (
            denied.stderr
        )

        right = registry.docker_config(tmp_path / "right" / "config.json")
        made = neon_cli(
            cluster, "secret", "create", "registry", "--replace", "--from-file", f".dockerconfigjson={right}"
        )
        assert made.returncode == 0, made.stderr
        applied = neon_cli(cluster, "apply", "-f", str(with_secret), "--wait")
        assert applied.returncode == 0, applied.stderr
        assert client.invoke("pulled", "processor", "process-batch", [[INFO, FATAL]])[0] == 1
        in_use = neon_cli(cluster, "secret", "delete", "registry")
        assert in_use.returncode != 0 and "pulled (pullSecrets)" in in_use.stderr, in_use.stderr
        stored = client.get_app("pulled").manifest_yaml
        assert "pullSecrets" in stored and registry.password not in stored and "auths" not in stored
    except BaseException:
        print(cluster.logs())
        raise
    finally:
        cluster.stop()
