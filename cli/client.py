"""A synchronous client of the control API, used by the CLI and the tests.

Every gRPC failure comes back as the NeonGridError the server raised.
"""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

import grpc
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from neon import manifest
from neon._proto import calls_pb2, control_pb2, control_pb2_grpc, values_pb2
from neon.errors import InvalidManifest, from_rpc_error
from neon.manifest import AppSpec, ComponentSpec
from neon.oci.reference import is_oci
from neon.rpc.servers import CHANNEL_OPTIONS, channel_target
from neon.security import signing
from neon.security.pki import CONTROLPLANE_NAME
from neon.security.tls import Credentials, sync_channel

T = TypeVar("T")
CHUNK = 1 << 20


def _translate(fn: Callable[..., T]) -> Callable[..., T]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        try:
            return fn(*args, **kwargs)
        except grpc.RpcError as err:
            raise from_rpc_error(err) from None

    return wrapper


# Reads are safe to repeat: when the replica the channel used dies mid-call, ask the next one.
# Writes and invokes are not retried (a lost reply may hide one that happened).
_READ_RETRIES = json.dumps(
    {
        "methodConfig": [
            {
                "name": [
                    {"service": "neon.v1.Control", "method": m}
                    for m in (
                        "GetApplication",
                        "ListApplications",
                        "ListNodes",
                        "ListControlPlanes",
                        "ExplainPlacement",
                        "DescribeComponent",
                    )
                ],
                "retryPolicy": {
                    "maxAttempts": 5,
                    "initialBackoff": "0.1s",
                    "maxBackoff": "1s",
                    "backoffMultiplier": 2,
                    "retryableStatusCodes": ["UNAVAILABLE"],
                },
            }
        ]
    }
)


class ControlClient:
    """Talks to one control plane.

    Args:
        address: ``host:port`` of the control plane, or several replicas' as
            ``ip:port,ip:port`` (gRPC moves to another when one fails).
        creds: The user's certificate (an admin or viewer one from the PKI) and the CA;
            ``Credentials.insecure()`` for a control plane run with ``--insecure``.
        timeout: Default deadline of unary calls, in seconds.
        sign_with: An ed25519 key that signs every artifact as it is uploaded (``neon apply
            --sign-with``); otherwise only the signatures in ``ARTIFACT.sig`` go along.
        spread: For a long-lived client of several replicas: keep a connection to each and spread calls over
            them (gRPC's round_robin), so that a replica that restarts takes its share again; otherwise calls go
            to the first replica that answers (pick_first: one connection, what a one-shot command wants).
    """

    def __init__(
        self,
        address: str,
        creds: Credentials,
        timeout: float = 30.0,
        sign_with: Ed25519PrivateKey | None = None,
        spread: bool = False,
    ) -> None:
        self.address = address
        self.creds = creds
        self.timeout = timeout
        self.sign_with = sign_with
        self.channel = sync_channel(
            channel_target(address),
            creds,
            CONTROLPLANE_NAME,
            [
                *CHANNEL_OPTIONS,
                ("grpc.service_config", _READ_RETRIES),
                *([("grpc.lb_policy_name", "round_robin")] if spread else []),
            ],
        )
        self.stub = control_pb2_grpc.ControlStub(self.channel)
        self._secrets = control_pb2_grpc.SecretsStub(self.channel)

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> ControlClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @_translate
    def upload(self, path: Path, name: str = "", signatures: list[str] | None = None) -> control_pb2.ArtifactRef:
        """Stream a file (with its signatures: ``PATH.sig`` when not given) to the control plane;
        returns its content address."""
        path = Path(path)
        if signatures is None:
            signatures = signing.signatures_beside(path)
        hasher = hashlib.sha256()
        with path.open("rb") as handle:
            while data := handle.read(CHUNK):
                hasher.update(data)
        digest = f"sha256:{hasher.hexdigest()}"
        if self.sign_with is not None:
            signatures = signing.with_signature(signatures, signing.sign(self.sign_with, digest))

        def chunks() -> Iterator[control_pb2.ArtifactChunk]:
            with path.open("rb") as handle:
                first = True
                while data := handle.read(CHUNK):
                    if first:
                        yield control_pb2.ArtifactChunk(
                            name=name or path.name, digest=digest, data=data, signatures=signatures
                        )
                        first = False
                    else:
                        yield control_pb2.ArtifactChunk(data=data)

        return self.stub.UploadArtifact(chunks(), timeout=max(self.timeout, 300))

    def resolve_artifacts(self, spec: AppSpec, base: Path) -> AppSpec:
        """Upload every artifact named by path (relative to ``base``) and use its digest."""

        def resolve(comp: ComponentSpec) -> str:
            if manifest.is_digest(comp.artifact) or is_oci(comp.artifact):  # an oci:// one the control plane pulls
                return comp.artifact
            path = (base / comp.artifact).resolve()
            if not path.is_file():
                index = [c.name for c in spec.components].index(comp.name)
                raise InvalidManifest(
                    f"spec.components[{index}].artifact: no file {path} ({comp.name})",
                    field=f"spec.components[{index}].artifact",
                )
            return str(self.upload(path, name=f"{spec.name}/{comp.name}").digest)

        return spec.with_artifacts(resolve)

    def apply_file(self, path: Path, allow_latest: bool = False) -> control_pb2.Application:
        """Validate a manifest file, upload its artifacts and apply it."""
        path = Path(path)
        spec = manifest.load(path.read_text(), require_digests=False)
        return self.apply(self.resolve_artifacts(spec, path.parent), allow_latest)

    @_translate
    def apply(self, spec: AppSpec, allow_latest: bool = False) -> control_pb2.Application:
        request = control_pb2.ApplyApplicationRequest(manifest_yaml=spec.to_yaml(), allow_latest=allow_latest)
        return self.stub.ApplyApplication(request, timeout=max(self.timeout, 300.0))

    @_translate
    def put_secret(self, name: str, data: dict[str, str], replace: bool = False) -> control_pb2.SecretInfo:
        request = control_pb2.PutSecretRequest(name=name, data=data, replace=replace)
        return self._secrets.PutSecret(request, timeout=self.timeout)

    @_translate
    def list_secrets(self) -> list[control_pb2.SecretInfo]:
        return list(self._secrets.ListSecrets(control_pb2.ListSecretsRequest(), timeout=self.timeout).secrets)

    @_translate
    def delete_secret(self, name: str) -> None:
        self._secrets.DeleteSecret(control_pb2.DeleteSecretRequest(name=name), timeout=self.timeout)

    @_translate
    def rotate_secret_key(self) -> control_pb2.RotateSecretKeyResponse:
        return self._secrets.RotateSecretKey(control_pb2.RotateSecretKeyRequest(), timeout=self.timeout)

    @_translate
    def rollback(self, name: str, generation: int = 0) -> control_pb2.Application:
        request = control_pb2.RollbackApplicationRequest(name=name, generation=generation)
        return self.stub.RollbackApplication(request, timeout=self.timeout)

    @_translate
    def get_app(self, name: str) -> control_pb2.Application:
        return self.stub.GetApplication(control_pb2.GetApplicationRequest(name=name), timeout=self.timeout)

    @_translate
    def list_apps(self) -> list[control_pb2.Application]:
        return list(
            self.stub.ListApplications(control_pb2.ListApplicationsRequest(), timeout=self.timeout).applications
        )

    @_translate
    def delete_app(self, name: str) -> None:
        self.stub.DeleteApplication(control_pb2.DeleteApplicationRequest(name=name), timeout=self.timeout)

    @_translate
    def delete_node(self, name: str) -> None:
        self.stub.DeleteNode(control_pb2.DeleteNodeRequest(name=name), timeout=self.timeout)

    @_translate
    def create_join_token(self, ttl: float, node: str = "") -> control_pb2.JoinToken:
        request = control_pb2.CreateJoinTokenRequest(ttl_seconds=ttl, node=node)
        return self.stub.CreateJoinToken(request, timeout=self.timeout)

    @_translate
    def control_planes(self) -> control_pb2.ListControlPlanesResponse:
        return self.stub.ListControlPlanes(control_pb2.ListControlPlanesRequest(), timeout=self.timeout)

    @_translate
    def list_nodes(self) -> list[control_pb2.Node]:
        return list(self.stub.ListNodes(control_pb2.ListNodesRequest(), timeout=self.timeout).nodes)

    @_translate
    def events(
        self, history: int = 50, app: str = "", follow: bool = False, timeout: float | None = None
    ) -> Iterator[control_pb2.Event]:
        request = control_pb2.WatchEventsRequest(history=history, app=app, no_follow=not follow)
        yield from self.stub.WatchEvents(request, timeout=timeout)

    @_translate
    def explain(self, app: str, component: str = "") -> list[control_pb2.ComponentExplanation]:
        reply = self.stub.ExplainPlacement(
            control_pb2.ExplainPlacementRequest(app=app, component=component), timeout=self.timeout
        )
        return list(reply.components)

    @_translate
    def invoke(
        self, app: str, component: str, function: str, args: list[Any], timeout: float | None = None
    ) -> tuple[Any, str]:
        """Call an exported function; returns ``(result, node that served it)``."""
        reply = self.stub.Invoke(
            calls_pb2.InvokeRequest(app=app, component=component, function=function, args_json=json.dumps(args)),
            timeout=timeout or self.timeout,
        )
        return json.loads(reply.result_json), reply.node

    @_translate
    def invoke_values(
        self, app: str, component: str, function: str, args: list[values_pb2.Value], timeout: float | None = None
    ) -> tuple[values_pb2.Value | None, str]:
        """Call an exported function with typed values (one per parameter); returns ``(result, node)``,
        the result None for a function without one."""
        request = calls_pb2.InvokeRequest(
            app=app, component=component, function=function, args=values_pb2.ValueList(values=args)
        )
        reply = self.stub.Invoke(request, timeout=timeout or self.timeout)
        return (reply.result if reply.HasField("result") else None), reply.node

    @_translate
    def backup(self, timeout: float = 600.0) -> Iterator[control_pb2.BackupChunk]:
        """etcd's snapshot in pieces, then the manifest (admin)."""
        yield from self.stub.Backup(control_pb2.BackupRequest(), timeout=timeout)

    @_translate
    def describe_component(self, app: str, component: str) -> control_pb2.ComponentDescription:
        """What the component exports and imports, with every function's WIT signature and type tree."""
        request = control_pb2.DescribeComponentRequest(app=app, component=component)
        return self.stub.DescribeComponent(request, timeout=self.timeout)

    @_translate
    def metrics(self, app: str = "") -> control_pb2.GetMetricsResponse:
        """Per component replica and per link: calls, errors, latency over the agents' last window."""
        return self.stub.GetMetrics(control_pb2.GetMetricsRequest(app=app), timeout=self.timeout)

    @_translate
    def logs(
        self, app: str, component: str, tail: int = 0, follow: bool = False, timeout: float | None = None
    ) -> Iterator[calls_pb2.LogLine]:
        """A component's output from every node running it (tail: the last lines; 0: all kept)."""
        request = calls_pb2.LogsRequest(app=app, component=component, tail=tail, follow=follow)
        yield from self.stub.Logs(request, timeout=timeout if follow else (timeout or self.timeout))
