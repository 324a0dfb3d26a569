"""Commands that run a process in the foreground: ``neon controlplane``, ``neon agent``, ``neon dev``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from agent.config import AgentConfig
from agent.main import run as run_agent
from cli.devcluster.dev import run_dev
from cli.options import parse_duration
from controlplane.config import ControlPlaneConfig
from controlplane.main import run as run_cp
from controlplane.placement import DEFAULT_WEIGHTS
from neon.observe import log
from neon.policy import parse_taint


def controlplane(args: argparse.Namespace) -> int:
    weights = {}
    for item in args.placement_weight:
        name, sep, value = item.partition("=")
        try:
            weights[name] = float(value)
        except ValueError:
            sep = ""
        if not sep or name not in DEFAULT_WEIGHTS:
            print(
                f"error: --placement-weight must be SCORER=NUMBER with a scorer among "
                f"{', '.join(DEFAULT_WEIGHTS)}; got {item!r}",
                file=sys.stderr,
            )
            return 2
    log.configure(args.log_level, service="controlplane")
    run_cp(
        ControlPlaneConfig(
            etcd=args.etcd or f"{'http' if args.insecure else 'https'}://127.0.0.1:2379",
            listen=args.listen,
            data_dir=Path(args.data_dir),
            node_ttl=args.node_ttl,
            identity=args.identity,
            advertise=args.advertise,
            leader_ttl=args.leader_ttl,
            placement_weights=weights,
            pki_dir=args.pki,
            insecure=args.insecure,
            join_listen=args.join_listen,
            trusted_keys=tuple(args.trust_key),
            allow_unsigned=args.allow_unsigned,
            node_cert_ttl=parse_duration(args.node_cert_ttl),
            http_listen=args.http_listen,
            registry_config=args.registry_config,
            registry_ca=args.registry_ca,
        ),
        args.ready_file,
    )
    return 0


def agent(args: argparse.Namespace) -> int:
    labels = {}
    for item in args.label:
        key, sep, value = item.partition("=")
        if not sep or not key:
            print(f"error: --label must be KEY=VALUE, got {item!r}", file=sys.stderr)
            return 2
        labels[key] = value
    for taint in args.taint:
        try:
            parse_taint(taint)
        except ValueError as err:
            print(f"error: --taint: {err}", file=sys.stderr)
            return 2
    if (args.http_cert is None) != (args.http_key is None):
        print("error: --http-cert and --http-key go together (HTTPS needs both)", file=sys.stderr)
        return 2
    log.configure(args.log_level, service="agent", node=args.name)
    run_agent(
        AgentConfig(
            name=args.name,
            control=args.control,
            labels=labels,
            listen=args.listen,
            advertise=args.advertise,
            data_dir=Path(args.data_dir or f".neon/agent-{args.name}"),
            cache_dir=Path(args.cache_dir) if args.cache_dir else None,
            instance_slots=args.instance_slots,
            call_timeout=args.call_timeout,
            taints=tuple(args.taint),
            metrics_interval=args.metrics_interval,
            metrics_listen=args.metrics_listen,
            capabilities=tuple(args.capability) if args.capability is not None else AgentConfig.capabilities,
            join_token=args.join_token
            or (
                args.join_token_file.read_text().strip()
                if args.join_token_file is not None and args.join_token_file.is_file()
                else ""
            ),
            ca_file=args.ca,
            registry_config=args.registry_config,
            registry_ca=args.registry_ca,
            join=args.join,
            insecure=args.insecure,
            http_listen=args.http_listen,
            http_cert=args.http_cert,
            http_key=args.http_key,
            max_instances=args.max_instances,
            compiler=args.compiler,
            fetch_rate=args.fetch_rate,
            failback_after=args.failback_after,
        ),
        args.ready_file,
    )
    return 0


def dev(args: argparse.Namespace) -> int:
    return run_dev(args.dir, once=args.once)
