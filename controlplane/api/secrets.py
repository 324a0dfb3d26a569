"""The Secrets service (neon secret): create or replace, list (names, keys and users, never values), delete
what nothing uses, rotate the data key; and what apply checks of the secrets a manifest references."""

from __future__ import annotations

import json
from typing import Any

from controlplane.api.plane import Plane
from controlplane.reconcile.events import new_event
from controlplane.state.keys import SECRETS, etcd_key
from controlplane.state.secret_store import SecretInfo, SecretStore
from controlplane.state.store import Store
from neon._proto import control_pb2, control_pb2_grpc
from neon.errors import FailedPrecondition, InvalidManifest
from neon.manifest import AppSpec
from neon.observe import log
from neon.rpc.servers import Context, edge

_log = log.get("neon.controlplane.secrets")

PULL_KEY = ".dockerconfigjson"  # the key of a pull secret, as Kubernetes names it: a docker config.json


async def referenced_secrets(spec: AppSpec, secrets: SecretStore) -> dict[bytes, int]:
    """Every secret ``spec``'s config references, checked to exist with the keys it names; their keys' mod
    revisions, which the application's write is guarded by (a secret deleted meanwhile refuses it)."""
    guards: dict[bytes, int] = {}
    for i, comp in enumerate(spec.components):
        for ref in comp.config.secrets:
            field = f"spec.components[{i}].config.{ref.key}.valueFrom"
            info = await secrets.get(ref.secret)
            if info is None or info.deleting:
                raise InvalidManifest(
                    f"{field}.secret: secret {ref.secret!r} ({comp.name}) does not exist; create it with "
                    f"`neon secret create {ref.secret} --from-literal {ref.secret_key}=...`",
                    field=f"{field}.secret",
                )
            if ref.secret_key not in info.keys:
                raise InvalidManifest(
                    f"{field}.key: secret {ref.secret} has no key {ref.secret_key!r} (its keys: "
                    f"{', '.join(info.keys)}); add it with `neon secret create {ref.secret} --replace ...`",
                    field=f"{field}.key",
                )
            guards[etcd_key(SECRETS, ref.secret)] = info.revision
    return guards | await _pull_secrets(spec, secrets)


async def _pull_secrets(spec: AppSpec, secrets: SecretStore) -> dict[bytes, int]:
    """``spec.pullSecrets``, checked to exist with a docker config.json; their keys' mod revisions."""
    guards: dict[bytes, int] = {}
    for i, name in enumerate(spec.pull_secrets):
        info = await secrets.get(name)
        field = f"spec.pullSecrets[{i}]"
        if info is None or info.deleting:
            raise InvalidManifest(
                f"{field}: secret {name!r} does not exist; create it with "
                f"`neon secret create {name} --from-file {PULL_KEY}=$HOME/.docker/config.json`",
                field=field,
            )
        if PULL_KEY not in info.keys:
            raise InvalidManifest(
                f"{field}: secret {name} has no key {PULL_KEY} (a docker config.json with the registries' "
                f"credentials); its keys: {', '.join(info.keys)}",
                field=field,
            )
        guards[etcd_key(SECRETS, name)] = info.revision
    return guards


async def pull_credentials(spec: AppSpec, secrets: SecretStore) -> dict[str, Any]:
    """The registries' credentials of ``spec.pullSecrets``, merged (the first secret naming a registry wins):
    the ``auths`` of a docker config.json."""
    await _pull_secrets(spec, secrets)
    auths: dict[str, Any] = {}
    for i, name in enumerate(spec.pull_secrets):
        values, _ = await secrets.values(name)
        field = f"spec.pullSecrets[{i}]"
        try:
            found = json.loads(values.get(PULL_KEY, ""))["auths"]
            if not isinstance(found, dict):
                raise TypeError("auths is not a mapping")
        except (ValueError, KeyError, TypeError) as err:
            raise InvalidManifest(
                f"{field}: secret {name}'s {PULL_KEY} is not a docker config.json with an auths mapping ({err})",
                field=field,
            ) from None
        for registry, entry in found.items():
            auths.setdefault(registry, entry)
    return auths


async def users_of(store: Store) -> dict[str, list[str]]:
    """secret -> "app/component" of every component whose config references it."""
    out: dict[str, list[str]] = {}
    for record in await store.list_apps():
        for comp in record.spec.components:
            for name in comp.config.secret_names():
                out.setdefault(name, []).append(f"{record.spec.name}/{comp.name}")
        for name in record.spec.pull_secrets:
            out.setdefault(name, []).append(f"{record.spec.name} (pullSecrets)")
    return out


def info_to_proto(info: SecretInfo, users: list[str]) -> control_pb2.SecretInfo:
    return control_pb2.SecretInfo(
        name=info.name, keys=list(info.keys), version=info.version, updated_at=info.updated_at, used_by=sorted(users)
    )


class SecretsServicer(control_pb2_grpc.SecretsServicer):
    def __init__(self, cp: Plane) -> None:
        self.cp = cp

    @edge
    async def PutSecret(self, request: control_pb2.PutSecretRequest, context: Context) -> control_pb2.SecretInfo:
        info = await self.cp.store.secrets.put(request.name, dict(request.data), request.replace)
        users = (await users_of(self.cp.store)).get(info.name, [])
        what = "created" if info.version == 1 else f"replaced (version {info.version})"
        rollout = f"; rolling out to {', '.join(users)}" if users and info.version > 1 else ""
        await self.cp.store.events.record(
            new_event("SecretUpdated", f"secret {info.name} {what}, keys {', '.join(info.keys)}{rollout}")
        )
        _log.info("secret written", secret=info.name, version=info.version, keys=list(info.keys))
        return info_to_proto(info, users)

    @edge
    async def ListSecrets(
        self, request: control_pb2.ListSecretsRequest, context: Context
    ) -> control_pb2.ListSecretsResponse:
        users = await users_of(self.cp.store)
        infos = [i for i in await self.cp.store.secrets.list() if not i.deleting]
        return control_pb2.ListSecretsResponse(
            secrets=[info_to_proto(i, users.get(i.name, [])) for i in sorted(infos, key=lambda i: i.name)]
        )

    @edge
    async def DeleteSecret(
        self, request: control_pb2.DeleteSecretRequest, context: Context
    ) -> control_pb2.DeleteSecretResponse:
        # Marked first: an apply that read the secret before the mark fails its guarded write, and one after
        # it is refused; only then are the applications read.
        revision = await self.cp.store.secrets.mark_deleting(request.name)
        users = (await users_of(self.cp.store)).get(request.name, [])
        await self.cp.store.secrets.finish_delete(request.name, revision, keep=bool(users))
        if users:
            raise FailedPrecondition(
                f"secret {request.name} is used by {', '.join(users)}; change or delete those applications first",
                secret=request.name,
            )
        await self.cp.store.events.record(new_event("SecretDeleted", f"secret {request.name} deleted"))
        return control_pb2.DeleteSecretResponse()

    @edge
    async def RotateSecretKey(
        self, request: control_pb2.RotateSecretKeyRequest, context: Context
    ) -> control_pb2.RotateSecretKeyResponse:
        key_id, count = await self.cp.store.secrets.rotate()
        await self.cp.store.events.record(
            new_event("SecretKeyRotated", f"secrets' data key rotated to {key_id}; {count} secret(s) encrypted again")
        )
        return control_pb2.RotateSecretKeyResponse(key_id=key_id, reencrypted=count)
