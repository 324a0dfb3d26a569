"""A Node.js client written from docs/api.md alone (its connection snippet, field names as in the .proto files)
lists, reads, describes a component, invokes with JSON and with typed values, streams events and gets the right
status code, with details, for each bad request."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from cli.devcluster.guests import EXAMPLES
from tests.support.helpers import Cluster, wait_running
from tests.support.node_client import grpc_js

ROOT = Path(__file__).resolve().parents[2]

CLIENT = r"""
const fs = require("fs"), path = require("path");
const grpc = require("@grpc/grpc-js"), loader = require("@grpc/proto-loader");
const [protoDir, pkiDir, address] = process.argv.slice(2);
// As docs/api.md connects:
const options = {includeDirs: [protoDir], keepCase: true, longs: String, enums: String, defaults: true};
const neon = grpc.loadPackageDefinition(loader.loadSync("neon/v1/control.proto", options)).neon.v1;
const read = (name) => fs.readFileSync(path.join(pkiDir, name));
const serverName = {"grpc.ssl_target_name_override": "controlplane.neon-grid"};
const connect = (who) => {
  const creds = grpc.credentials.createSsl(read("ca.pem"), read(`${who}.key`), read(`${who}.pem`));
  return new neon.Control(address, creds, serverName);
};
const admin = connect("admin"), viewer = connect("viewer");
const call = (client, method, request) =>
  new Promise((resolve) => {
    client[method](request, {deadline: Date.now() + 30000}, (err, reply) => resolve({err, reply}));
  });
const failure = ({err}) => [err.code, JSON.parse(err.metadata.get("neon-error-bin")[0].toString())];
const LINE = "2026-11-24T08:00:00Z INFO auth: ok";
(async () => {
  const out = {};
  out.nodes = (await call(viewer, "ListNodes", {})).reply.nodes.map((n) => n.name).sort();
  out.phase = (await call(viewer, "GetApplication", {name: "log-analyzer"})).reply.phase;
  const ingest = {app: "log-analyzer", component: "ingestor", function: "ingest"};
  const ok = await call(admin, "Invoke", {...ingest, args_json: JSON.stringify([LINE])});
  out.invoked = ok.err ? `error ${ok.err.code} ${ok.err.details}` : [ok.reply.result_json, ok.reply.node];
  out.bad_value = failure(await call(admin, "Invoke", {...ingest, args_json: "[42]"}));
  const parse = {app: "log-analyzer", component: "parser", function: "parse", args_json: JSON.stringify([LINE])};
  out.fused = failure(await call(admin, "Invoke", parse));
  out.not_found = failure(await call(viewer, "GetApplication", {name: "nope"}));
  // Self-description, then typed values built from it: the archiver's `counts` returns a record of u64s.
  const described = (await call(viewer, "DescribeComponent", {app: "log-analyzer", component: "archiver"})).reply;
  const counts = described.exports.flatMap((i) => i.functions).find((f) => f.name === "counts");
  out.counts_wit = [counts.wit, counts.invoke_as, counts.result.fields.map((f) => `${f.name}:${f.type.kind}`)];
  const archiver = {app: "log-analyzer", component: "archiver", function: counts.invoke_as};
  out.counts_json = JSON.parse((await call(admin, "Invoke", {...archiver, args_json: "[]"})).reply.result_json);
  const typed = (await call(admin, "Invoke", {...archiver, args: {values: []}})).reply;
  out.counts_typed = typed.result.list.values.map((v) => v.u64);
  const ingested = (await call(admin, "Invoke", {...ingest, args: {values: [{string: LINE}]}})).reply;
  out.ingest_typed = [ingested.result.u64, ingested.result_json];
  out.bad_typed = failure(await call(admin, "Invoke", {...ingest, args: {values: [{u64: "7"}]}}));
  out.denied = failure(await call(viewer, "DeleteApplication", {name: "log-analyzer"}));
  const events = viewer.WatchEvents({history: 20, no_follow: true});
  out.events = await new Promise((resolve) => {
    const kinds = [];
    events.on("data", (e) => kinds.push(e.kind));
    events.on("end", () => resolve(kinds));
    events.on("error", (e) => resolve([`error ${e.code} ${e.details}`]));
  });
  console.log(JSON.stringify(out));
  process.exit(0);
})();
"""


@pytest.mark.e2e
def test_a_nodejs_client_from_the_reference_gets_answers_and_status_codes(cluster: Cluster, tmp_path: Path) -> None:
    node = shutil.which("node")
    assert node is not None, "the Node.js client test needs node (apt-get install nodejs)"
    modules = grpc_js()
    client = cluster.client
    assert client is not None
    client.apply_file(EXAMPLES / "log-analyzer" / "app.yaml")
    wait_running(client, "log-analyzer")
    script = tmp_path / "client.js"
    script.write_text(CLIENT)
    proc = subprocess.run(
        [node, str(script), str(ROOT / "proto"), str(cluster.pki), cluster.control],
        env={**os.environ, "NODE_PATH": str(modules)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["nodes"] == ["cloud-1", "edge-1"] and out["phase"] == "Running", out
    assert out["invoked"] == ["1", "edge-1"], out["invoked"]  # the ingestor counted one line, on the edge
    code, details = out["bad_value"]
    assert code == 3 and details["type"] == "CodecError", out["bad_value"]  # INVALID_ARGUMENT, across the relay
    code, details = out["fused"]
    assert code == 9 and details["attrs"]["root"] == "gateway", out["fused"]  # FAILED_PRECONDITION, with the root
    code, details = out["not_found"]
    assert code == 5 and details["attrs"] == {"kind": "application", "name": "nope"}, out["not_found"]
    code, details = out["denied"]
    assert code == 7 and details["type"] == "PermissionDenied", out["denied"]
    assert "InstanceRunning" in out["events"], out["events"]
    # DescribeComponent gives the signature as WIT and as a tree; 64-bit integers travel as strings in JSON and
    # in typed values alike (JavaScript would round numbers above 2^53); the one line ingested above is an info
    assert out["counts_wit"] == [
        "counts: func() -> level-counts",
        "cyber-systems:logs/archiver@0.1.0#counts",
        ["debug:u64", "info:u64", "warn:u64", "error:u64"],
    ], out["counts_wit"]
    assert out["counts_json"] == {"debug": "0", "info": "1", "warn": "0", "error": "0"}, out["counts_json"]
    assert out["counts_typed"] == ["0", "1", "0", "0"], out["counts_typed"]
    assert out["ingest_typed"] == ["1", ""], "a typed call answers typed only"
    code, details = out["bad_typed"]
    assert code == 3 and details["type"] == "CodecError", out["bad_typed"]
