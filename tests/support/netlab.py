"""Edge nodes with network stacks of their own, behind links with latency, loss and partitions.

Each edge is a Linux network namespace joined to the host by two TUN devices,
one on each side; a thread moves every IP packet across, holding it for the
link's one-way delay, dropping the link's share of packets, those of blocked
TCP ports (a partition from the control plane alone), or all of them while the
link is partitioned (``tc netem``, in user space: this machine's
kernel is built without netem). The host side has one hub address on ``lo``
where the control plane and cloud agents listen; an edge reaches it over its
link, and the hub reaches the edge's address back the same way.

Needs root, ``ip`` (iproute2) and ``/dev/net/tun``; :func:`unavailable` says
what is missing.
"""

from __future__ import annotations

import collections
import fcntl
import os
import random
import shutil
import struct
import subprocess
import threading
import time

HUB = "10.210.0.1"
_TUNSETIFF = 0x400454CA
_IFF_TUN = 0x0001
_IFF_NO_PI = 0x1000
_PREFIX = "neonlab"


def unavailable() -> str | None:
    """Why network namespaces cannot be made here, or None when they can."""
    if os.geteuid() != 0:
        return "chaos tests need root to make network namespaces (CI runs as root)"
    if shutil.which("ip") is None:
        return "chaos tests need `ip` from iproute2 (apt-get install iproute2)"
    if not os.path.exists("/dev/net/tun"):
        return "chaos tests need /dev/net/tun (a kernel with CONFIG_TUN)"
    return None


def _ip(*args: str) -> None:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if proc.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {proc.stderr.strip()}")


def _open_tun(name: str) -> int:
    fd = os.open("/dev/net/tun", os.O_RDWR)
    fcntl.ioctl(fd, _TUNSETIFF, struct.pack("16sH", name.encode(), _IFF_TUN | _IFF_NO_PI))
    return fd


class Link:
    """Both directions of one edge's link: one-way delay, loss per packet, or a partition."""

    def __init__(self, host_fd: int, edge_fd: int, seed: int) -> None:
        self.delay = 0.0
        self.loss = 0.0
        self.partitioned = False
        self.blocked_ports: set[int] = set()  # TCP ports cut off (either end), e.g. the control plane's
        self.stats = collections.Counter[str]()
        self._random = random.Random(seed)
        self._closed = threading.Event()
        self._threads = []
        for src, dst, way in ((host_fd, edge_fd, "down"), (edge_fd, host_fd, "up")):
            queue: collections.deque[tuple[float, bytes]] = collections.deque()
            ready = threading.Condition()
            self._threads += [
                threading.Thread(target=self._read, args=(src, queue, ready, way), daemon=True),
                threading.Thread(target=self._write, args=(dst, queue, ready), daemon=True),
            ]
        for thread in self._threads:
            thread.start()

    def impair(self, delay_ms: float, loss: float) -> None:
        """Hold each packet ``delay_ms`` each way (so the round trip gains twice that) and drop ``loss`` of them."""
        self.delay, self.loss = delay_ms / 1000.0, loss

    def _read(
        self, fd: int, queue: collections.deque[tuple[float, bytes]], ready: threading.Condition, way: str
    ) -> None:
        while not self._closed.is_set():
            try:
                packet = os.read(fd, 65535)
            except OSError:
                return
            if self.partitioned or self._blocked(packet) or self._random.random() < self.loss:
                self.stats[f"{way} dropped"] += 1
                continue
            self.stats[f"{way} passed"] += 1
            with ready:
                queue.append((time.monotonic() + self.delay, packet))
                ready.notify()

    def _blocked(self, packet: bytes) -> bool:
        """An IPv4 TCP packet to or from one of the blocked ports."""
        if not self.blocked_ports or len(packet) < 24 or packet[0] >> 4 != 4 or packet[9] != 6:
            return False
        header = (packet[0] & 0x0F) * 4
        src, dst = struct.unpack_from("!HH", packet, header)
        return src in self.blocked_ports or dst in self.blocked_ports

    def _write(self, fd: int, queue: collections.deque[tuple[float, bytes]], ready: threading.Condition) -> None:
        while not self._closed.is_set():
            with ready:
                while not queue and not self._closed.is_set():
                    ready.wait(0.5)
                if not queue:
                    continue
                due, packet = queue[0]
                wait = due - time.monotonic()
                if wait > 0:
                    ready.wait(wait)
                    continue
                queue.popleft()
            try:
                os.write(fd, packet)
            except OSError:
                return

    def close(self) -> None:
        self._closed.set()


class Edge:
    """One edge node's namespace, its address, and its link to the hub."""

    def __init__(self, name: str, index: int, tag: str) -> None:
        self.name = name
        self.namespace = f"{_PREFIX}-{tag}-{name}"
        self.address = f"10.210.{index}.2"
        self.gateway = f"10.210.{index}.1"
        self.host_dev = f"nlh{tag}{index}"[:15]
        edge_dev = f"nle{tag}{index}"[:15]
        _ip("netns", "add", self.namespace)
        _ip("tuntap", "add", "dev", self.host_dev, "mode", "tun")
        _ip("tuntap", "add", "dev", edge_dev, "mode", "tun")
        host_fd, edge_fd = _open_tun(self.host_dev), _open_tun(edge_dev)
        _ip("link", "set", edge_dev, "netns", self.namespace)
        _ip("addr", "add", self.gateway, "peer", self.address, "dev", self.host_dev)
        _ip("link", "set", self.host_dev, "up")
        _ip("-n", self.namespace, "link", "set", "lo", "up")
        _ip("-n", self.namespace, "addr", "add", self.address, "peer", self.gateway, "dev", edge_dev)
        _ip("-n", self.namespace, "link", "set", edge_dev, "up")
        _ip("-n", self.namespace, "route", "add", "default", "dev", edge_dev)
        self._fds = (host_fd, edge_fd)
        self.link = Link(host_fd, edge_fd, seed=index)

    @property
    def prefix(self) -> list[str]:
        """Run a command inside this edge's namespace."""
        return ["ip", "netns", "exec", self.namespace]

    def close(self) -> None:
        self.link.close()
        for fd in self._fds:
            os.close(fd)
        subprocess.run(["ip", "netns", "del", self.namespace], capture_output=True, timeout=30)
        subprocess.run(["ip", "link", "del", self.host_dev], capture_output=True, timeout=30)


class NetLab:
    """The hub address and the edges made for one test; a context manager that removes them all."""

    def __init__(self) -> None:
        self.tag = f"{os.getpid() % 10000:04d}"
        self.edges: dict[str, Edge] = {}

    def __enter__(self) -> NetLab:
        _sweep()
        _ip("addr", "add", f"{HUB}/32", "dev", "lo")
        return self

    def add_edge(self, name: str) -> Edge:
        edge = Edge(name, len(self.edges) + 1, self.tag)
        self.edges[name] = edge
        return edge

    def __exit__(self, *exc: object) -> None:
        for edge in self.edges.values():
            edge.close()
        subprocess.run(["ip", "addr", "del", f"{HUB}/32", "dev", "lo"], capture_output=True, timeout=30)


def _sweep() -> None:
    """Remove what an earlier, killed run left: its namespaces, links and the hub address."""
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=30).stdout
    for line in listed.splitlines():
        if line.startswith(f"{_PREFIX}-"):
            subprocess.run(["ip", "netns", "del", line.split()[0]], capture_output=True, timeout=30)
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True, timeout=30).stdout
    for line in links.splitlines():
        name = line.split(":")[1].strip().split("@")[0]
        if name.startswith("nlh"):
            subprocess.run(["ip", "link", "del", name], capture_output=True, timeout=30)
    subprocess.run(["ip", "addr", "del", f"{HUB}/32", "dev", "lo"], capture_output=True, timeout=30)
