"""The WIT codec against protobuf, in one run: a value encoded for the wire and decoded back, as the agents do
it, beside protobuf's serialize and parse of the same ``Value`` message (upb, in C).

The agents' path: the caller encodes a forwarded call's arguments with the writer compiled for their type
(``agent.values.writergen``: Python value to the wire's bytes, no message built) and reads the answer with the
reader compiled for it (``agent.values.readergen``); the generic path (``to_proto``, serialize, parse,
``from_proto``) is printed beside for comparison. Two types:

- the log analyzer's ``result<log-entry, string>``, the parser's answer, from the example's WIT (the C parser's
  component, which compiles in milliseconds);
- a kitchen sink: a record of strings, an enum, flags, a variant, an option and a list of records.

Target (issue 23): encode + decode within 5x protobuf's serialize + parse, for both.

    python bench/codec.py [--rounds 20000]
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
from pathlib import Path
from typing import Any

import wasmtime
from wasmtime import component as wc

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _results import per_call_us, save  # noqa: E402

from agent.runtime.engine import ComponentTemplate, FunctionRef, Runtime  # noqa: E402
from agent.values.readergen import compile_reader  # noqa: E402
from agent.values.signature import Signature, compile_type  # noqa: E402
from agent.values.writergen import compile_writer  # noqa: E402
from cli.devcluster.guests import build_log_analyzer_native  # noqa: E402
from neon._proto import values_pb2  # noqa: E402

PARSE = FunctionRef("cyber-systems:logs/parser@0.1.0", "parse")
LINE = "2026-11-24T08:00:02Z ERROR auth: login failed for user bob"
TARGET = 5.0

SINK = """
(component
  (import "bench:kitchen/sink" (instance
    (type $pair' (record (field "key" string) (field "count" s64)))
    (export "pair" (type $pair (eq $pair')))
    (type $level' (enum "debug" "info" "warn" "error"))
    (export "level" (type $level (eq $level')))
    (type $access' (flags "read" "write" "exec"))
    (export "access" (type $access (eq $access')))
    (type $payload' (variant (case "empty") (case "number" u64) (case "text" string)))
    (export "payload" (type $payload (eq $payload')))
    (type $sink' (record (field "name" string) (field "level" $level) (field "access" $access)
      (field "payload" $payload) (field "note" (option string)) (field "pairs" (list $pair))))
    (export "sink" (type $sink (eq $sink')))
    (export "take" (func (param "s" $sink)))
  ))
)
"""


def _record(**fields: Any) -> wc.Record:
    record = wc.Record()
    for name, value in fields.items():
        setattr(record, name, value)
    return record


def parser_result() -> tuple[Any, Any]:
    """The parser's result codec (from its own types) and one answer of it."""
    wasm = build_log_analyzer_native()["parser"]
    with tempfile.TemporaryDirectory() as tmp:
        runtime = Runtime(Path(tmp))
        component = runtime.load("sha256:" + hashlib.sha256(wasm.read_bytes()).hexdigest(), wasm)
        template = ComponentTemplate(runtime, component, "bench/parser", {})
        live = template.instantiate()
        store = live.store
        iface = live.instance.get_export_index(store, PARSE.interface)
        func = live.instance.get_func(store, live.instance.get_export_index(store, PARSE.name, iface))
        assert func is not None
        value = func(store, LINE)
        func.post_return(store)
        signature = Signature.of(template.exports[PARSE], str(PARSE))
        runtime.close()
    assert signature.result is not None
    return signature.result, value


def kitchen_sink() -> tuple[Any, Any]:
    engine = wasmtime.Engine()
    component = wc.Component(engine, SINK)
    (instance,) = (e.ty for e in component.type.imports(engine).values())
    take = dict(instance.exports(engine).items())["take"].ty
    codec = compile_type(take.params[0][1], "take(s)")
    value = _record(
        name="sensor-17/boiler-room",
        level="warn",
        access={"read", "write"},
        payload="pressure above 4.2 bar for 30 s",  # wasmtime-py: a bare payload where the classes differ
        note="calibrated 2026-11-02",
        pairs=[_record(key=f"reading-{i}", count=1000 * i - 7) for i in range(4)],
    )
    return codec, value


def measure(codec: Any, value: Any, rounds: int) -> dict[str, float]:
    read, write = compile_reader(codec), compile_writer(codec)
    message = codec.to_proto(value)
    wire = message.SerializeToString()
    assert write(value) == codec.to_wire(value) == wire, "the writers and to_proto disagree"
    decoded, end = read(wire, 0)
    assert end == len(wire) and codec.to_json(decoded) == codec.to_json(value), "the reader did not give it back"

    def agents() -> Any:
        return read(write(value), 0)

    def generic() -> Any:
        return codec.from_proto(values_pb2.Value.FromString(codec.to_proto(value).SerializeToString()))

    def protobuf() -> Any:
        return values_pb2.Value.FromString(message.SerializeToString())

    out = {
        "wit_codec_us": per_call_us(agents, rounds),
        "generic_path_us": per_call_us(generic, rounds // 4),
        "protobuf_us": per_call_us(protobuf, rounds),
        "wire_bytes": float(len(wire)),
    }
    out["ratio"] = out["wit_codec_us"] / out["protobuf_us"]
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20000)
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "codec.json")
    args = parser.parse_args()
    results: dict[str, Any] = {
        "log-entry": measure(*parser_result(), args.rounds),
        "kitchen-sink": measure(*kitchen_sink(), args.rounds),
    }
    for name, r in results.items():
        mark = "✓" if r["ratio"] <= TARGET else "✗"
        print(
            f"codec, {name:13} encode+decode {r['wit_codec_us']:5.2f} us   protobuf serialize+parse "
            f"{r['protobuf_us']:5.2f} us   = {r['ratio']:4.1f}x {mark} (target {TARGET:g}x)   "
            f"generic path {r['generic_path_us']:5.1f} us   {r['wire_bytes']:.0f} B"
        )
    results["pass"] = all(r["ratio"] <= TARGET for r in results.values() if isinstance(r, dict))
    save(args.json, results)
    return 0 if results["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
