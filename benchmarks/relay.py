"""Relay benchmark: `swergio-al serve` against a bare aiohttp relay, on 127.0.0.1.

    python benchmarks/relay.py [--seconds 3] [--rounds 2] [--connections 1000]
    python benchmarks/relay.py --nodes 2 --broker redis://127.0.0.1:6379/0


Each server runs in its own process; the load comes from this process, over
raw sockets with pre-built frames, so the client costs as little CPU as
possible (on a 2-core machine the server gets one core, the load the other).

  A  1 sender -> 1 receiver, ~200-byte messages: deliveries/s
  B  1 sender -> 10 receivers in one room: deliveries/s
  C  latency at a fixed 500 msg/s, 1 -> 1: p50 / p99
  D  server RSS per idle connection (connected, registered, in a room), 1000 connections
  E  (--nodes N --broker URL) scenario B with the sender on node 1 and the
     receivers spread over N swergio-al processes sharing the broker, beside
     B on one process

The bare relay (`--bare-server`, below) does what any relay must (parse the
frame, join, fan out to the room) and nothing else: no validation, no SENT_BY,
no outbox, no slow-consumer policy. Throughput runs are windowed (at most a
few hundred messages in flight) so neither server is pushed into queueing
without bound; the best of `--rounds` rounds is reported, since other work on
the machine can only make a round slower.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from common import free_port, raise_fd_limit  # benchmarks/common.py

ROOM = "bench"
MESSAGE_SIZE = 200  # bytes of JSON per message, before the server stamps SENT_BY
WINDOW = 768  # messages in flight per receiver (below the server's 1024-frame outbox)
BATCH = 32  # frames per write from the sender


# -- servers ------------------------------------------------------------------


@dataclass
class ServerProcess:
    """A relay in a child process; `kind` is "swergio-al" or "bare"."""

    kind: str
    port: int
    proc: subprocess.Popen[bytes]
    workdir: Path | None = None  # the server's store lives here; removed on stop

    @property
    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError(f"no VmRSS for pid {self.proc.pid}")

    @property
    def cpu_seconds(self) -> float:
        """User + system CPU time the server has used so far."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)


def start_server(kind: str, *, port: int | None = None, broker: str | None = None,
                 extra_args: Sequence[str] = (), timeout: float = 20.0) -> ServerProcess:
    """Start one relay process and wait until it accepts connections.

    `broker` (swergio-al only) is passed as `--broker`, so several servers can
    be started on one Redis for a multi-node run.
    """
    port = port or free_port()
    workdir = None
    if kind == "swergio-al":
        # Its feedback store goes to a scratch directory, not the current one.
        workdir = Path(tempfile.mkdtemp(prefix="relay-bench-"))
        args = [sys.executable, "-m", "swergio_al.cli", "serve", "--port", str(port),
                "--log-level", "WARNING", "--store", f"sqlite:///{workdir / 'store.db'}"]
        if broker:
            args += ["--broker", broker]
    elif kind == "bare":
        args = [sys.executable, __file__, "--bare-server", "--port", str(port)]
    else:
        raise ValueError(f"unknown server kind {kind!r}")
    proc = subprocess.Popen([*args, *extra_args], preexec_fn=raise_fd_limit,
                            stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            if workdir is not None:
                shutil.rmtree(workdir, ignore_errors=True)
            raise RuntimeError(f"{kind} server exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return ServerProcess(kind, port, proc, workdir)
        except OSError:
            time.sleep(0.05)
    proc.kill()
    if workdir is not None:
        shutil.rmtree(workdir, ignore_errors=True)
    raise TimeoutError(f"{kind} server on port {port} did not start within {timeout}s")


def run_bare_server(port: int) -> None:
    """The reference: an aiohttp relay with join and room fan-out and nothing else."""
    from aiohttp import WSMsgType, web

    rooms: dict[str, set[web.WebSocketResponse]] = {}

    async def relay(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(compress=False)
        await ws.prepare(request)
        joined: list[str] = []
        try:
            async for frame in ws:
                if frame.type is not WSMsgType.TEXT:
                    continue
                message = json.loads(frame.data)
                if message.get("TYPE") == "COMMAND/JOINROOM":
                    rooms.setdefault(message["ROOM"], set()).add(ws)
                    joined.append(message["ROOM"])
                elif "TO_ROOM" in message:
                    for member in tuple(rooms.get(message["TO_ROOM"], ())):
                        if member is not ws:
                            try:
                                await member.send_str(frame.data)
                            except ConnectionError:
                                pass  # that member is going away; its own handler cleans up
        finally:
            for room in joined:
                rooms[room].discard(ws)
        return ws

    app = web.Application()
    app.router.add_get("/ws", relay)
    web.run_app(app, host="127.0.0.1", port=port, print=None)


# -- load: a minimal WebSocket client on asyncio.Protocol -------------------------


def text_frame(text: str) -> bytes:
    """A masked client text frame. The mask key is zero (masking is then the
    identity), which keeps the load generator cheap; the server unmasks as usual."""
    payload = text.encode()
    size = len(payload)
    if size < 126:
        header = struct.pack("!BB", 0x81, 0x80 | size)
    elif size < 1 << 16:
        header = struct.pack("!BBH", 0x81, 0x80 | 126, size)
    else:
        header = struct.pack("!BBQ", 0x81, 0x80 | 127, size)
    return header + b"\0\0\0\0" + payload


def message(kind: str, **fields: object) -> str:
    return json.dumps({"TYPE": kind, **fields}, separators=(",", ":"))


def padded(seq: int, *, extra: dict[str, object] | None = None, tag: str = "m",
           room: str = ROOM) -> str:
    """A DATA/TEXT to `room`, padded to MESSAGE_SIZE bytes."""
    base = {"ID": f"{tag}{seq:031d}", "TYPE": "DATA/TEXT", "TO_ROOM": room, **(extra or {})}
    text = json.dumps({**base, "DATA": ""}, separators=(",", ":"))
    return json.dumps({**base, "DATA": "x" * max(0, MESSAGE_SIZE - len(text))},
                      separators=(",", ":"))


class Peer(asyncio.Protocol):
    """One WebSocket connection. Receives either by counting bytes (throughput:
    every frame of a run has the same size) or by parsing frames (latency, setup)."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.handshake: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.buffer = bytearray()
        self.counting = False
        self.received_bytes = 0
        self.on_frame: Callable[[bytes], None] | None = None
        self.on_progress: Callable[[], None] | None = None
        self.closed = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self.counting:
            self.received_bytes += len(data)
            if self.on_progress is not None:
                self.on_progress()
            return
        self.buffer += data
        if not self.handshake.done():
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            if not self.buffer.startswith(b"HTTP/1.1 101"):
                self.handshake.set_exception(RuntimeError(bytes(self.buffer[:200]).decode()))
                return
            del self.buffer[:end + 4]
            self.handshake.set_result(None)
        self._parse()

    def _parse(self) -> None:
        buffer = self.buffer
        while len(buffer) >= 2:
            size, start = buffer[1] & 0x7F, 2
            if size == 126:
                if len(buffer) < 4:
                    return
                size, start = struct.unpack_from("!H", buffer, 2)[0], 4
            elif size == 127:
                if len(buffer) < 10:
                    return
                size, start = struct.unpack_from("!Q", buffer, 2)[0], 10
            if len(buffer) < start + size:
                return
            payload = bytes(buffer[start:start + size])
            del buffer[:start + size]
            if self.on_frame is not None:
                self.on_frame(payload)

    def count_from_now(self) -> None:
        """Switch to byte counting; nothing may be in flight to this peer."""
        assert not self.buffer, "frames still buffered"
        self.counting = True
        self.received_bytes = 0

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)
        if not self.handshake.done():
            self.handshake.set_exception(ConnectionError("closed during handshake"))

    def send(self, text: str) -> None:
        assert self.transport is not None
        self.transport.write(text_frame(text))

    def close(self) -> None:
        if self.transport is not None:
            self.transport.abort()


async def connect(port: int) -> Peer:
    loop = asyncio.get_running_loop()
    _, peer = await loop.create_connection(Peer, "127.0.0.1", port)
    key = base64.b64encode(os.urandom(16)).decode()
    assert peer.transport is not None
    peer.transport.write(
        (f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
         f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
         "Sec-WebSocket-Version: 13\r\n\r\n").encode())
    await asyncio.wait_for(peer.handshake, 10)
    return peer


async def join(port: int, name: str, room: str = ROOM) -> Peer:
    peer = await connect(port)
    peer.send(message("COMMAND/REGISTER", NAME=name, TO_ROOM="_command"))
    peer.send(message("COMMAND/JOINROOM", ROOM=room, TO_ROOM="_command"))
    return peer


async def probe(sender: Peer, receivers: list[Peer], room: str = ROOM) -> int:
    """Wait until every receiver is in the room and nothing is in flight to it.

    Joins on different connections are handled in no set order, so the sender
    probes the room until each receiver has had a probe, then sends a fence:
    once a receiver has the fence, no earlier probe can still reach it.
    Returns the size of a delivered frame (bench messages have this size too).
    """
    loop = asyncio.get_running_loop()
    reached = [asyncio.Event() for _ in receivers]
    fences: list[asyncio.Future[int]] = [loop.create_future() for _ in receivers]
    for peer, event, fence in zip(receivers, reached, fences, strict=True):

        def on_frame(payload: bytes, event: asyncio.Event = event,
                     fence: asyncio.Future[int] = fence) -> None:
            event.set()
            if payload.startswith(b'{"ID":"f') and not fence.done():
                fence.set_result(len(text_frame(payload.decode())) - 4)  # no mask key

        peer.on_frame = on_frame
    deadline = loop.time() + 10
    while not all(event.is_set() for event in reached):
        if loop.time() > deadline:
            raise TimeoutError("receivers did not join the room within 10 s")
        sender.send(padded(0, tag="p", room=room))
        await asyncio.sleep(0.02)
    sender.send(padded(0, tag="f", room=room))
    frame_sizes = await asyncio.wait_for(asyncio.gather(*fences), 10)
    for peer in receivers:
        peer.on_frame = None
    return frame_sizes[0]


# -- scenarios ----------------------------------------------------------------


async def throughput(server: ServerProcess | Sequence[ServerProcess], receivers_count: int,
                     seconds: float) -> tuple[float, float]:
    """Deliveries per second from one sender to `receivers_count` room members,
    and server CPU microseconds per delivery (the figure that other load on the
    machine disturbs least). Given several servers (nodes), the sender is on
    the first and the receivers take turns over all; CPU is summed."""
    servers = [server] if isinstance(server, ServerProcess) else list(server)
    sender = await join(servers[0].port, "sender")
    receivers = [await join(servers[i % len(servers)].port, f"receiver{i}")
                 for i in range(receivers_count)]

    def cpu_seconds() -> float:
        return sum(node.cpu_seconds for node in servers)

    try:
        frame_size = await probe(sender, receivers)
        for peer in (sender, *receivers):
            peer.count_from_now()
        progress = asyncio.Event()
        for peer in receivers:
            peer.on_progress = progress.set
        blob = b"".join(text_frame(padded(i)) for i in range(BATCH))
        loop = asyncio.get_running_loop()

        def delivered() -> int:
            return sum(peer.received_bytes for peer in receivers) // frame_size

        sent = 0
        measured_from = loop.time() + min(0.5, seconds / 4)  # warm-up excluded
        base = None
        end = measured_from + seconds
        assert sender.transport is not None
        while loop.time() < end:
            if base is None and loop.time() >= measured_from:
                base = (loop.time(), delivered(), cpu_seconds())
            if sent * receivers_count - delivered() < WINDOW * receivers_count:
                sender.transport.write(blob)
                sent += BATCH
                await asyncio.sleep(0)  # let the receivers read
            else:
                progress.clear()
                try:
                    await asyncio.wait_for(progress.wait(), 10)
                except TimeoutError:
                    raise RuntimeError(f"{server.kind}: deliveries stopped (a receiver closed?)"
                                       ) from None
        assert base is not None
        count, cpu = delivered() - base[1], cpu_seconds() - base[2]
        return count / (loop.time() - base[0]), cpu / count * 1e6
    finally:
        for peer in (sender, *receivers):
            peer.close()


async def latency(port: int, rate: float, seconds: float) -> tuple[float, float]:
    """p50 and p99 in milliseconds of 1 -> 1 delivery at a fixed `rate`."""
    sender = await join(port, "sender")
    receiver = await join(port, "receiver")
    try:
        await probe(sender, [receiver])
        samples: list[float] = []
        total = int(rate * seconds)
        all_in = asyncio.Event()

        def on_frame(payload: bytes) -> None:
            sent_ns = json.loads(payload)["T"]
            samples.append((time.perf_counter_ns() - sent_ns) / 1e6)
            if len(samples) == total:
                all_in.set()

        receiver.on_frame = on_frame
        loop = asyncio.get_running_loop()
        start = loop.time()
        for i in range(total):
            await asyncio.sleep(max(0.0, start + i / rate - loop.time()))
            sender.send(padded(i, extra={"T": time.perf_counter_ns()}))
        try:
            await asyncio.wait_for(all_in.wait(), 5)
        except TimeoutError:
            raise RuntimeError(f"only {len(samples)} of {total} latency samples arrived") from None
        warm = samples[total // 10:]  # the first tenth warms up caches and the allocator
        quantiles = statistics.quantiles(warm, n=100, method="inclusive")
        return quantiles[49], quantiles[98]
    finally:
        sender.close()
        receiver.close()


async def idle_memory(server: ServerProcess, connections: int) -> float:
    """KiB of server RSS per idle connection (registered and in a room)."""
    warm = [await join(server.port, f"warm{i}", room="idle") for i in range(20)]
    await probe(warm[0], warm[1:], room="idle")
    for peer in warm:
        peer.close()
    await asyncio.gather(*(peer.closed for peer in warm))
    await asyncio.sleep(0.5)  # let the server finish the handlers of the warm-up peers
    before = server.rss_kib
    peers: list[Peer] = []
    try:
        for start in range(0, connections, 100):
            peers += await asyncio.gather(*(join(server.port, f"idle{i}", room="idle")
                                            for i in range(start,
                                                           min(start + 100, connections))))
        await probe(peers[0], peers[1:], room="idle")
        after = server.rss_kib
        return (after - before) / connections
    finally:
        for peer in peers:
            peer.close()


# -- the run -----------------------------------------------------------------


@dataclass
class Result:
    one_to_one: list[float] = field(default_factory=list)
    fan_out: list[float] = field(default_factory=list)
    one_to_one_cpu: list[float] = field(default_factory=list)  # server µs per delivery
    fan_out_cpu: list[float] = field(default_factory=list)
    p50: list[float] = field(default_factory=list)
    p99: list[float] = field(default_factory=list)
    kib_per_connection: float = 0.0


async def measure(kind: str, result: Result, args: argparse.Namespace) -> None:
    server = start_server(kind)
    try:
        rate, cpu = await throughput(server, 1, args.seconds)
        result.one_to_one.append(rate)
        result.one_to_one_cpu.append(cpu)
        rate, cpu = await throughput(server, 10, args.seconds)
        result.fan_out.append(rate)
        result.fan_out_cpu.append(cpu)
        p50, p99 = await latency(server.port, 500.0, args.latency_seconds)
        result.p50.append(p50)
        result.p99.append(p99)
        if not result.kib_per_connection:
            result.kib_per_connection = await idle_memory(server, args.connections)
    finally:
        server.stop()


def table(ours: Result, bare: Result, connections: int) -> str:
    rows = [
        ("A  1 -> 1 deliveries/s", max(ours.one_to_one), max(bare.one_to_one), "{:,.0f}",
         ">= 0.8 of bare"),
        ("B  1 -> 10 deliveries/s", max(ours.fan_out), max(bare.fan_out), "{:,.0f}",
         ">= 0.8 of bare"),
        ("A  server CPU µs per delivery", min(ours.one_to_one_cpu), min(bare.one_to_one_cpu),
         "{:.2f}", "(lower is better)"),
        ("B  server CPU µs per delivery", min(ours.fan_out_cpu), min(bare.fan_out_cpu),
         "{:.2f}", "(lower is better)"),
        ("C  latency p50 at 500/s (ms)", min(ours.p50), min(bare.p50), "{:.3f}", ""),
        ("C  latency p99 at 500/s (ms)", min(ours.p99), min(bare.p99), "{:.3f}", "<= 1 ms"),
        (f"D  RSS per idle conn, {connections} (KiB)", ours.kib_per_connection,
         bare.kib_per_connection, "{:.1f}", "<= 24 KiB"),
    ]
    lines = ["| scenario | swergio-al | bare aiohttp | ours/bare | target |",
             "|---|---:|---:|---:|---|"]
    for label, mine, theirs, fmt, target in rows:
        ratio = mine / theirs if theirs else float("nan")
        lines.append(f"| {label} | {fmt.format(mine)} | {fmt.format(theirs)} | "
                     f"{ratio:.2f} | {target} |")
    return "\n".join(lines)


async def run(args: argparse.Namespace) -> None:
    raise_fd_limit()
    ours, bare = Result(), Result()
    for round_ in range(args.rounds):
        for kind, result in (("swergio-al", ours), ("bare", bare)):
            started = time.monotonic()
            await measure(kind, result, args)
            print(f"round {round_ + 1}/{args.rounds} {kind}: "
                  f"A {result.one_to_one[-1]:,.0f}/s {result.one_to_one_cpu[-1]:.1f}µs  "
                  f"B {result.fan_out[-1]:,.0f}/s {result.fan_out_cpu[-1]:.1f}µs  "
                  f"C p50 {result.p50[-1]:.3f} p99 {result.p99[-1]:.3f} ms  "
                  f"({time.monotonic() - started:.1f}s)", file=sys.stderr, flush=True)
    cpus = os.cpu_count()
    load = "/".join(f"{value:.1f}" for value in os.getloadavg())
    print(f"\nrelay benchmark: {cpus} cores, load average {load} (1/5/15 min; other work on "
          f"the machine slows both servers), Python {sys.version.split()[0]}, "
          f"~{MESSAGE_SIZE}-byte messages, best of {args.rounds} rounds\n")
    print(table(ours, bare, args.connections))


async def run_nodes(args: argparse.Namespace) -> None:
    """E: fan-out across `--nodes` processes linked by `--broker`, beside one process."""
    raise_fd_limit()
    single: list[tuple[float, float]] = []
    multi: list[tuple[float, float]] = []
    for round_ in range(args.rounds):
        server = start_server("swergio-al")
        try:
            single.append(await throughput(server, 10, args.seconds))
        finally:
            server.stop()
        nodes = [start_server("swergio-al", broker=args.broker) for _ in range(args.nodes)]
        try:
            multi.append(await throughput(nodes, 10, args.seconds))
        finally:
            for node in nodes:
                node.stop()
        print(f"round {round_ + 1}/{args.rounds}: 1 node {single[-1][0]:,.0f}/s "
              f"{single[-1][1]:.1f}µs, {args.nodes} nodes {multi[-1][0]:,.0f}/s "
              f"{multi[-1][1]:.1f}µs", file=sys.stderr, flush=True)
    print(f"\nrelay benchmark, several nodes: {os.cpu_count()} cores, Python "
          f"{sys.version.split()[0]}, ~{MESSAGE_SIZE}-byte messages, 1 sender -> 10 receivers "
          f"(on {args.nodes} nodes: sender on node 1, receivers spread evenly), "
          f"best of {args.rounds} rounds\n")
    print(f"| scenario | 1 node (memory broker) | {args.nodes} nodes ({args.broker}) |")
    print("|---|---:|---:|")
    print(f"| E  1 -> 10 deliveries/s | {max(r for r, _ in single):,.0f} | "
          f"{max(r for r, _ in multi):,.0f} |")
    print(f"| E  server CPU µs per delivery (all nodes) | {min(c for _, c in single):.2f} | "
          f"{min(c for _, c in multi):.2f} |")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=3.0, help="per throughput run")
    parser.add_argument("--latency-seconds", type=float, default=4.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--nodes", type=int, default=1,
                        help="with --broker: run scenario E across this many server processes")
    parser.add_argument("--broker", help="broker URL linking the nodes, e.g. "
                                         "redis://127.0.0.1:6379/0")
    parser.add_argument("--bare-server", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.bare_server:
        run_bare_server(args.port)
        return 0
    if args.nodes > 1:
        if not args.broker:
            parser.error("--nodes needs --broker (e.g. redis://127.0.0.1:6379/0)")
        asyncio.run(run_nodes(args))
        return 0
    asyncio.run(run(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
