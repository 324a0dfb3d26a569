"""Fixtures: built example components (cached), a shared compiled cache, real clusters."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import pytest

from cli.devcluster.guests import build_log_analyzer
from cli.devcluster.registry_launcher import RegistryServer
from tests.support.helpers import GUESTS, Cluster

_FAULT_REPORT: list[str] = []


@pytest.fixture(scope="session", autouse=True)
def cli_config(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The CLI's contexts file for the whole run (and every neon process it starts): never the user's own."""
    path = tmp_path_factory.mktemp("neon-config") / "config.yaml"
    before = os.environ.get("NEON_CONFIG")
    os.environ["NEON_CONFIG"] = str(path)
    yield path
    if before is None:
        os.environ.pop("NEON_CONFIG", None)
    else:
        os.environ["NEON_CONFIG"] = before


@pytest.fixture(scope="session")
def fault_report() -> list[str]:
    """Lines of measured fault figures (detection, failover, convergence), printed at the end of the run."""
    return _FAULT_REPORT


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _FAULT_REPORT:
        terminalreporter.section("fault report (measured in this run)")
        for line in _FAULT_REPORT:
            terminalreporter.write_line(f"- {line}")


@pytest.fixture(scope="session")
def log_analyzer() -> dict[str, Path]:
    """The example's parser and processor, built with componentize-py (cached by content)."""
    return build_log_analyzer()


@pytest.fixture(scope="session")
def compiled_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One compiled-artifact cache for every agent in the run (compiling takes seconds)."""
    return tmp_path_factory.mktemp("compiled")


@pytest.fixture
def cluster(tmp_path: Path, compiled_cache: Path, log_analyzer: dict[str, Path]) -> Iterator[Cluster]:
    """etcd + an in-process control plane + an edge and a cloud agent (separate processes)."""
    c = Cluster(tmp_path, compiled_cache)
    try:
        c.start()
        yield c
        c.check_invariants()
    except BaseException:
        print(c.logs())
        raise
    finally:
        codes = c.stop()
    bad = {name: code for name, code in codes.items() if code != 0}
    assert not bad, f"agents did not shut down cleanly: {bad}"


@pytest.fixture(scope="session")
def probe_wasm() -> Path:
    """tests/support/guests/probe built with componentize-py (cached by content)."""
    from cli.devcluster.guests import build_python_guest

    root = GUESTS / "probe"
    return build_python_guest(root / "wit", "probe", root / "app")


@pytest.fixture(scope="session")
def settings_guests() -> dict[str, Path]:
    """tests/support/guests/settings, reading wasi:config/store: Python (componentize-py) and JavaScript
    (componentize-js), built against the WIT Spin 3 ships."""
    from cli.devcluster.guests import build_js_guest, build_python_guest, cache_dir
    from cli.devcluster.wasi_wit import with_wasi

    root = GUESTS / "settings"
    wit = with_wasi(root / "wit", cache_dir())
    return {
        "python": build_python_guest(wit, "settings", root / "py"),
        "js": build_js_guest(wit, "settings", root / "settings.js"),
    }


@pytest.fixture(scope="session")
def kv_guest() -> Path:
    """tests/support/guests/kv-probe (Python, componentize-py): wasi:keyvalue store, atomics and batch."""
    from cli.devcluster.guests import build_python_guest, cache_dir
    from cli.devcluster.wasi_wit import with_wasi

    root = GUESTS / "kv-probe"
    return build_python_guest(with_wasi(root / "wit", cache_dir()), "kv-probe", root / "py")


@pytest.fixture(scope="session")
def kv_js_guest() -> Path:
    """tests/support/guests/kv-probe's kv-basic world in JavaScript (componentize-js): get, set, increment."""
    from cli.devcluster.guests import build_js_guest, cache_dir
    from cli.devcluster.wasi_wit import with_wasi

    root = GUESTS / "kv-probe"
    return build_js_guest(with_wasi(root / "wit", cache_dir()), "kv-basic", root / "kv.js")


@pytest.fixture(scope="session")
def sink_guests() -> dict[str, Path]:
    """The kitchen-sink exporter (JavaScript, componentize-js) and importer (Python, componentize-py)."""
    from cli.devcluster.guests import build_js_guest, build_python_guest

    root = GUESTS / "sink"
    return {
        "server": build_js_guest(root / "wit", "sink-server", root / "server-js" / "sink.js"),
        "client": build_python_guest(root / "wit", "sink-client", root / "client-py"),
    }


@pytest.fixture(scope="session")
def parser_v2() -> Path:
    """A second version of the example's parser (accepts FATAL), for hot swaps."""
    from cli.devcluster.guests import EXAMPLES, build_python_guest, log_analyzer_wit

    shared = EXAMPLES / "log-analyzer" / "shared"
    return build_python_guest(log_analyzer_wit(), "log-parser", GUESTS / "parser-v2", extra_paths=(shared,))


@pytest.fixture(scope="session")
def wallet_guests() -> dict[str, Path]:
    """tests/support/guests/wallet: a ledger and a teller whose exported interface uses the ledger's types."""
    from cli.devcluster.guests import build_python_guest

    root = GUESTS / "wallet"
    return {
        "ledger": build_python_guest(root / "wit", "ledger-world", root / "ledger"),
        "teller": build_python_guest(root / "wit", "teller-world", root / "teller"),
    }


@pytest.fixture(scope="session")
def native_guests() -> dict[str, Path]:
    """The example's parser, processor and monolith compiled from C (examples/log-analyzer/native)."""
    from cli.devcluster.guests import build_log_analyzer_native

    return build_log_analyzer_native()


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    """A real OCI registry on loopback (Debian's docker-registry): TLS from a CA of its own, one htpasswd account."""
    with RegistryServer(tmp_path_factory.mktemp("registry"), secure=True) as server:
        yield server
