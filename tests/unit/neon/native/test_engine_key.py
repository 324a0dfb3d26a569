"""Engine keys (what native code runs on) and the compile the control plane runs for agents."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import wasmtime
from wasmtime import component as wc

from neon.errors import InvalidArgument
from neon.native.compile import main as compile_main
from neon.native.engine_key import WASMTIME_VERSION, EngineKey, cpu_features, local_key, make_config

SMALL = "(component (core module $m (memory 1)) (core instance (instantiate $m)))"
X86 = "processor\t: 0\nflags\t\t: fpu sse2 pni ssse3 sse4_1 sse4_2 avx avx2 bmi1 bmi2 sha_ni hypervisor\n"
ARM = "processor\t: 0\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics\n"


def test_an_engine_key_names_version_target_compiler_settings_and_features_and_parses_back() -> None:
    assert EngineKey.parse(str(local_key("cranelift-O0"))) == local_key("cranelift-O0")
    key = local_key("winch")
    text = str(key)
    assert text.startswith(f"wasmtime-{WASMTIME_VERSION}/") and "/winch+epoch/" in text
    assert EngineKey.parse(text) == key
    assert local_key("winch") == key and local_key("cranelift") != key


@pytest.mark.parametrize(
    "text",
    [
        "",
        "wasmtime-50.0.0/x86_64-linux/cranelift+epoch",
        "wasmtime-50.0.0/x86_64-linux/cranelift+epoch/XYZ",
        "wasmtime-50/x86_64-linux/turbo+epoch/0123456789ab",
    ],
)
def test_a_malformed_engine_key_is_refused_with_its_shape(text: str) -> None:
    with pytest.raises(InvalidArgument, match="engine key"):
        EngineKey.parse(text)


def test_only_the_cpu_features_the_compiler_uses_make_the_key_on_x86_and_every_flag_elsewhere() -> None:
    assert cpu_features(X86) == {"pni", "ssse3", "sse4_1", "sse4_2", "avx", "avx2", "bmi1", "bmi2"}
    assert cpu_features(X86.replace(" hypervisor", "")) == cpu_features(X86)  # a flag that changes no code
    assert "atomics" in cpu_features(ARM) and cpu_features("nothing here") == set()


def test_code_compiled_by_the_compile_process_loads_in_an_engine_of_the_same_key(tmp_path: Path) -> None:
    (tmp_path / "small.wat").write_text(SMALL)
    done = subprocess.run(
        [sys.executable, "-m", "neon.native.compile", "cranelift", str(tmp_path / "small.wat"), str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    engine = wasmtime.Engine(make_config("cranelift"))
    assert wc.Component.deserialize(engine, (tmp_path / "out").read_bytes()) is not None
    winch = wasmtime.Engine(make_config("winch"))
    with pytest.raises(wasmtime.WasmtimeError):  # another compiler's engine refuses it: the key must differ
        wc.Component.deserialize(winch, (tmp_path / "out").read_bytes())


def test_the_compile_process_says_why_an_artifact_does_not_compile(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "bad.wasm").write_bytes(b"\0asm\x0d\0\x01\0 not a component")
    assert compile_main(["cranelift", str(tmp_path / "bad.wasm"), str(tmp_path / "out")]) == 1
    assert capsys.readouterr().err.strip() and not (tmp_path / "out").exists()
    assert compile_main(["turbo", str(tmp_path / "bad.wasm"), str(tmp_path / "out")]) == 1
    assert "--compiler must be one of" in capsys.readouterr().err
