"""Load benchmark (issue 9): many labelers and components on one server at once.

    python benchmarks/load.py [--labelers 500] [--components 10] [--seconds 60]
                              [--think 2.0] [--rate 20]

`swergio-al serve` runs in its own process with a fresh SQLite store; every
client runs in this process, on 127.0.0.1:

- `--labelers` labelers (raw WebSocket clients, role labeler) in one feedback
  room; each answers its shown task after a think time drawn from
  U(0.5, 1.5) x `--think` seconds, as a person would.
- a model keeps the queue full: it starts with three requests per labeler,
  acks each label it receives and asks one new question for it.
- `--components` components in one room, each sending `--rate` timestamped
  messages per second to the others.

Reported: errors (ERROR frames anyone received, connections lost), p50/p99
time-to-next-task (a labeler's FEEDBACK/LABEL sent -> the next FEEDBACK/TASK
it receives: the server committing the label and leasing the next task),
p50/p99 relay latency (component -> each other component), labels/s, and the
server's RSS. Targets: 0 errors, p99 next task < 100 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import random
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
from common import free_port, raise_fd_limit  # benchmarks/common.py

ROOM = "feedback/load"
CHAT = "load/chat"
CHOICE = {"type": "choice", "choices": ["yes", "no"]}
WARM_UP = 3.0  # seconds of ramp-up left out of the latency figures


def start_server(port: int, store: Path | str,
                 broker: str | None = None) -> subprocess.Popen[bytes]:
    """`swergio-al serve` on `port`; `store` is a SQLite file or a store URL."""
    store_url = store if isinstance(store, str) else f"sqlite:///{store}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "swergio_al.cli", "serve", "--port", str(port),
         "--log-level", "WARNING", "--store", store_url,
         *(["--broker", broker] if broker else [])],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise TimeoutError("server did not start")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process `pid` (from /proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_by_command(commands: tuple[str, ...] = ("postgres", "redis-server")) -> dict[int, float]:
    """CPU seconds so far of every process running one of `commands` (the backing
    services of a two-node run, whose CPU the servers' figure leaves out), by pid."""
    seen: dict[int, float] = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if (proc / "comm").read_text().strip() in commands:
                seen[int(proc.name)] = cpu_seconds(int(proc.name))
        except OSError:  # it ended meanwhile
            continue
    return seen


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Tally:
    """What every client saw: latencies, errors, lost connections."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.next_task: list[float] = []
        self.relay: list[float] = []
        self.errors: list[dict[str, Any]] = []
        self.lost: list[str] = []
        self.labels = 0
        self.committed = 0  # labels ACKed by the server
        self.stopping = False

    def measuring(self) -> bool:
        return time.monotonic() - self.started >= WARM_UP


async def connect(session: aiohttp.ClientSession, url: str, name: str, *,
                  role: str = "component", rooms: tuple[str, ...] = ()
                  ) -> aiohttp.ClientWebSocketResponse:
    ws = await session.ws_connect(url, heartbeat=None, max_msg_size=0)
    await ws.send_str(json.dumps({"TYPE": "COMMAND/REGISTER", "NAME": name, "ROLE": role,
                                  "TO_ROOM": "_command"}))
    for room in rooms:
        await ws.send_str(json.dumps({"TYPE": "COMMAND/JOINROOM", "ROOM": room,
                                      "TO_ROOM": "_command"}))
    return ws


async def read(ws: aiohttp.ClientWebSocketResponse, name: str, tally: Tally):  # type: ignore[no-untyped-def]
    """Yield the messages of `ws`; note ERRORs and an unexpected end."""
    async for frame in ws:
        if frame.type is not aiohttp.WSMsgType.TEXT:
            continue
        message = json.loads(frame.data)
        if message.get("TYPE") == "ERROR":
            tally.errors.append({"who": name, **message})
            continue
        yield message
    if not tally.stopping:
        tally.lost.append(f"{name} (close code {ws.close_code})")


async def labeler(session: aiohttp.ClientSession, url: str, name: str, tally: Tally,
                  think: float, rng: random.Random) -> None:
    ws = await connect(session, url, name, role="labeler", rooms=(ROOM,))
    tasks: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    sent_at: list[float] = []  # when the label now waiting for its next task was sent

    async def work() -> None:
        while True:
            task = await tasks.get()
            await asyncio.sleep(think * rng.uniform(0.5, 1.5))
            sent_at.append(time.monotonic())
            await ws.send_str(json.dumps({"TYPE": "FEEDBACK/LABEL", "TO_ROOM": ROOM,
                                          "DATA": {"task_id": task["task_id"],
                                                   "answer": "yes", "seconds": 1.0}}))
            tally.labels += 1

    worker = asyncio.create_task(work())
    try:
        async for message in read(ws, name, tally):
            if message.get("TYPE") == "FEEDBACK/ACK":
                tally.committed += 1
            elif message.get("TYPE") == "FEEDBACK/TASK":
                if sent_at:
                    waited = time.monotonic() - sent_at.pop(0)
                    if tally.measuring():
                        tally.next_task.append(waited)
                tasks.put_nowait(message["DATA"])
    finally:
        worker.cancel()
        await asyncio.gather(worker, return_exceptions=True)
        await ws.close()


async def model(session: aiohttp.ClientSession, url: str, tally: Tally, backlog: int) -> None:
    ws = await connect(session, url, "load-model", rooms=(ROOM,))
    asked = 0

    async def ask() -> None:
        nonlocal asked
        await ws.send_str(json.dumps({"TYPE": "FEEDBACK/REQUEST", "TO_ROOM": ROOM, "DATA": {
            "sample_id": asked, "kind": "text", "content": f"sample {asked}",
            "question": "Is it?", "answer": CHOICE, "priority": random.random()}}))
        asked += 1

    for _ in range(backlog):
        await ask()
    try:
        async for message in read(ws, "load-model", tally):
            if message.get("TYPE") == "FEEDBACK/LABEL":
                await ws.send_str(json.dumps({"TYPE": "FEEDBACK/ACK", "TO_ROOM": ROOM,
                                              "DATA": {"label_id": message["DATA"]["label_id"]}}))
                await ask()
    finally:
        await ws.close()


async def component(session: aiohttp.ClientSession, url: str, name: str, tally: Tally,
                    rate: float) -> None:
    ws = await connect(session, url, name, rooms=(CHAT,))

    async def talk() -> None:
        interval = 1.0 / rate
        await asyncio.sleep(random.uniform(0, interval))
        while True:
            await ws.send_str(json.dumps({"TYPE": "DATA/TEXT", "TO_ROOM": CHAT,
                                          "DATA": {"t": time.monotonic()}}))
            await asyncio.sleep(interval)

    talker = asyncio.create_task(talk())
    try:
        async for message in read(ws, name, tally):
            if message.get("TYPE") == "DATA/TEXT" and tally.measuring():
                tally.relay.append(time.monotonic() - message["DATA"]["t"])
    finally:
        talker.cancel()
        await asyncio.gather(talker, return_exceptions=True)
        await ws.close()


async def run(args: argparse.Namespace, urls: list[str], pids: list[int]) -> dict[str, Any]:
    """The clients against one server or several nodes (labelers and components
    spread over them in turn, the model on the first); CPU is summed over them."""
    tally = Tally()
    rng = random.Random(0)
    rss: list[float] = []
    connector = aiohttp.TCPConnector(limit=0)

    def server_cpu() -> float:
        return sum(cpu_seconds(pid) for pid in pids)

    async with aiohttp.ClientSession(connector=connector) as session:
        clients = [asyncio.create_task(model(session, urls[0], tally,
                                             backlog=3 * args.labelers))]
        clients += [asyncio.create_task(component(session, urls[i % len(urls)],
                                                  f"component-{i}", tally, args.rate))
                    for i in range(args.components)]
        for i in range(args.labelers):
            clients.append(asyncio.create_task(
                labeler(session, urls[i % len(urls)], f"labeler-{i}", tally, args.think,
                        random.Random(rng.random()))))
            if i % 50 == 49:
                await asyncio.sleep(0.05)  # connect in waves, not one SYN flood
        # The clients' own full garbage collections (2,000 connections' objects)
        # would stop this process for ~0.1 s now and then and count as the
        # server's latency: what exists now is frozen, and no more run meanwhile.
        gc.collect()
        gc.freeze()
        gc.set_threshold(gc.get_threshold()[0], gc.get_threshold()[1], 2**31 - 1)
        tally.started = time.monotonic()
        cpu_before, client_before = server_cpu(), time.process_time()
        services_before = cpu_by_command()
        labels_before = committed_before = 0
        deadline = tally.started + args.seconds
        while time.monotonic() < deadline:
            await asyncio.sleep(1.0)
            rss.append(max(rss_mb(pid) for pid in pids))
            if time.monotonic() - tally.started < WARM_UP:
                labels_before, committed_before = tally.labels, tally.committed
                cpu_before, client_before = server_cpu(), time.process_time()
                services_before = cpu_by_command()
        labels = tally.labels - labels_before
        committed = tally.committed - committed_before
        measured = args.seconds - WARM_UP
        busy = server_cpu() - cpu_before
        services = sum(cpu - services_before.get(pid, 0.0)
                       for pid, cpu in cpu_by_command().items()) / measured
        cpu = (busy / measured, (time.process_time() - client_before) / measured)
        tally.stopping = True
        for client in clients:
            client.cancel()
        results = await asyncio.gather(*clients, return_exceptions=True)
    crashed = [r for r in results if isinstance(r, Exception)]
    return {"tally": tally, "rss": rss, "labels_per_second": labels / measured,
            "committed_per_second": committed / measured,
            "cpu_us_per_label": busy / committed * 1e6 if committed else float("nan"),
            "crashed": crashed, "cpu": cpu, "services_cpu": services}


def report(args: argparse.Namespace, outcome: dict[str, Any]) -> str:
    tally: Tally = outcome["tally"]
    ms = 1000.0
    load = os.getloadavg()
    rows = [
        ("labelers / components", f"{args.labelers} / {args.components}"),
        ("duration", f"{args.seconds:g} s (first {WARM_UP:g} s not measured)"),
        ("errors (ERROR frames)", str(len(tally.errors))),
        ("connections lost", str(len(tally.lost))),
        ("labels/s sent / committed (ACKed)",
         f"{outcome['labels_per_second']:.0f} / {outcome['committed_per_second']:.0f}"),
        ("server CPU per committed label", f"{outcome['cpu_us_per_label']:.0f} µs"),
        ("time to next task p50 / p90 / p99 / max",
         " / ".join(f"{percentile(tally.next_task, q) * ms:.1f}" for q in (0.5, 0.9, 0.99, 1))
         + f" ms ({len(tally.next_task)} labels)"),
        ("relay latency p50 / p90 / p99 / max",
         " / ".join(f"{percentile(tally.relay, q) * ms:.1f}" for q in (0.5, 0.9, 0.99, 1))
         + f" ms ({len(tally.relay)} deliveries)"),
        ("CPU: server / clients (cores busy)",
         f"{outcome['cpu'][0]:.2f} / {outcome['cpu'][1]:.2f}"),
        ("server RSS start / max / end",
         f"{outcome['rss'][0]:.0f} / {max(outcome['rss']):.0f} / {outcome['rss'][-1]:.0f} MB"
         if outcome["rss"] else "n/a"),
        ("machine", f"{os.cpu_count()} cores, load average {load[0]:.1f} at the end, "
                    f"Python {platform.python_version()}"),
    ]
    lines = ["| measure | value |", "|---|---|", *(f"| {k} | {v} |" for k, v in rows)]
    if tally.errors:
        codes: dict[str, int] = {}
        for error in tally.errors:
            codes[str(error.get("CODE"))] = codes.get(str(error.get("CODE")), 0) + 1
        lines.append(f"\nERROR codes: {codes}")
    if tally.lost:
        lines.append(f"\nlost: {tally.lost[:10]}")
    if outcome["crashed"]:
        lines.append(f"\nclient failures: {outcome['crashed'][:5]!r}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--labelers", type=int, default=500)
    parser.add_argument("--components", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--think", type=float, default=2.0,
                        help="mean seconds a labeler takes per task (default 2)")
    parser.add_argument("--rate", type=float, default=20.0,
                        help="messages per second each component sends (default 20)")
    parser.add_argument("--url", help="use a server already running here (e.g. under a "
                                      "profiler) instead of starting one; needs --pid")
    parser.add_argument("--pid", type=int, help="that server's process id (RSS, CPU)")
    parser.add_argument("--sweep", action="store_true",
                        help="run 50, 500 and 2000 labelers (--sizes), each at the think time "
                             "that offers --offered labels/s in total, and print one table")
    parser.add_argument("--sizes", default="50,500,2000", help="crowd sizes for --sweep")
    parser.add_argument("--offered", type=float, default=1000.0,
                        help="labels/s the whole crowd offers in --sweep (default 1000)")
    parser.add_argument("--nodes", type=int, default=1,
                        help="server processes; more than one run on Redis + PostgreSQL "
                             "(--redis, --postgres), each run in a fresh schema and key prefix")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    if bool(args.url) != bool(args.pid):
        parser.error("--url and --pid go together")
    if args.seconds <= WARM_UP:
        parser.error(f"--seconds must be more than the {WARM_UP:g} s warm-up")
    if args.sweep:
        return sweep(args)
    raise_fd_limit(2 * (args.labelers + args.components) + 256)
    if args.url:
        outcome = asyncio.run(run(args, [args.url], [args.pid]))
        alive = Path(f"/proc/{args.pid}").exists()
    else:
        outcome, alive = serve_and_run(args)
    print(report(args, outcome))
    if not alive:
        print("\nthe server died during the run")
    tally = outcome["tally"]
    ok = alive and not tally.errors and not tally.lost and \
        percentile(tally.next_task, 0.99) < 0.1
    print(f"\ntargets (0 errors, p99 next task < 100 ms): {'met' if ok else 'NOT met'}")
    return 0 if ok else 1


def serve_and_run(args: argparse.Namespace) -> tuple[dict[str, Any], bool]:
    """Start the server(s) with fresh state, run the clients, stop and clean up."""
    tag = f"swergio_al_load_{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory() as tmp:
        ports = [free_port() for _ in range(args.nodes)]
        servers: list[subprocess.Popen[bytes]] = []
        try:
            for port in ports:
                if args.nodes == 1:
                    servers.append(start_server(port, Path(tmp) / "load.db"))
                else:
                    servers.append(start_server(port, f"{args.postgres}?schema={tag}",
                                                f"{args.redis}?prefix={tag}"))
            outcome = asyncio.run(run(args, [f"ws://127.0.0.1:{port}/ws" for port in ports],
                                      [server.pid for server in servers]))
            alive = all(server.poll() is None for server in servers)
        finally:
            for server in servers:
                server.terminate()
                server.wait(15)
            if args.nodes > 1:
                asyncio.run(drop_shared_state(args, tag))
    return outcome, alive


async def drop_shared_state(args: argparse.Namespace, tag: str) -> None:
    import asyncpg
    import redis.asyncio as redis

    conn = await asyncpg.connect(args.postgres)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{tag}" CASCADE')
    finally:
        await conn.close()
    client = redis.Redis.from_url(args.redis)
    try:
        keys = [key async for key in client.scan_iter(f"{tag}:*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


def sweep(args: argparse.Namespace) -> int:
    """One run per crowd size, each offering the same labels/s in total; one table,
    then issue 17's targets checked on the largest crowd."""
    sizes = [int(size) for size in args.sizes.split(",")]
    raise_fd_limit(2 * (max(sizes) + args.components) + 256)
    rows, outcomes = [], []
    for size in sizes:
        run_args = argparse.Namespace(**{**vars(args), "labelers": size,
                                         "think": size / args.offered})
        outcome, alive = serve_and_run(run_args)
        outcomes.append((outcome, alive))
        tally: Tally = outcome["tally"]
        rows.append(
            f"| {size} | {run_args.think:.2f} | {outcome['labels_per_second']:.0f} | "
            f"{outcome['committed_per_second']:.0f} | {outcome['cpu_us_per_label']:.0f} | "
            f"{outcome['cpu'][0]:.2f} / {outcome['cpu'][1]:.2f} / "
            f"{outcome['services_cpu']:.2f} | "
            f"{percentile(tally.next_task, 0.5) * 1000:.1f} / "
            f"{percentile(tally.next_task, 0.99) * 1000:.1f} | "
            f"{percentile(tally.relay, 0.99) * 1000:.1f} | "
            f"{max(outcome['rss'], default=float('nan')):.0f} | "
            f"{len(tally.errors)} / {len(tally.lost)}{'' if alive else ' (server died)'} |")
        print(rows[-1], flush=True)
    load = os.getloadavg()
    where = "1 node, SQLite" if args.nodes == 1 else f"{args.nodes} nodes, Redis + PostgreSQL"
    print(f"\n{where}; {args.components} components at {args.rate:g} msg/s; "
          f"{args.seconds:g} s per run (first {WARM_UP:g} s not measured); "
          f"{os.cpu_count()} cores, load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} "
          f"at the end, Python {platform.python_version()}\n")
    print("| labelers | think s | labels/s sent | labels/s committed | server CPU µs/label | "
          "cores server / client / PostgreSQL+Redis | next task p50 / p99 ms | relay p99 ms | "
          "RSS MB (max/node) | errors / lost |")
    print("|---:|---:|---:|---:|---:|---|---|---:|---:|---|")
    print("\n".join(rows))
    (small, _), (large, alive) = outcomes[0], outcomes[-1]
    ratio = large["cpu_us_per_label"] / small["cpu_us_per_label"]
    checks = [
        (f"{sizes[-1]} labelers: 0 ERROR frames, 0 lost connections",
         alive and not large["tally"].errors and not large["tally"].lost),
        (f"{sizes[-1]} labelers: >= {args.offered:g} labels/s committed "
         f"({large['committed_per_second']:.0f})", large["committed_per_second"] >= args.offered),
        (f"{sizes[-1]} labelers: p99 time to next task < 100 ms "
         f"({percentile(large['tally'].next_task, 0.99) * 1000:.0f} ms)",
         percentile(large["tally"].next_task, 0.99) < 0.1),
        (f"server CPU per label at {sizes[-1]} within 1.5x of that at {sizes[0]} "
         f"({ratio:.2f}x)", ratio <= 1.5),
    ]
    print()
    for what, met in checks:
        print(f"{'met    ' if met else 'NOT met'}  {what}")
    return 0 if all(met for _, met in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
