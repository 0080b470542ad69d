"""The `swergio-al` command: serve | label | demo | run | export."""

from __future__ import annotations

import argparse
import logging
import math
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from swergio_al.config import Config
from swergio_al.terminal import link_base


class _OneLineParser(argparse.ArgumentParser):
    """A bad option is one line on stderr (exit 2), as every other CLI error, not the
    usage block argparse prints; --help still shows it."""

    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: {message} (see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(2)


def _add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="HTTP/WebSocket port (default 8080)")
    parser.add_argument("--log-level", help="DEBUG, INFO, WARNING, ... (default INFO)")
    parser.add_argument("--max-frame-size", type=int, help="bytes per frame (default 1 MiB)")
    parser.add_argument("--swergio-port", type=int,
                        help="also listen for swergio 0.0.2 TCP clients on this port "
                             "(default: no TCP listener)")
    parser.add_argument("--broker", help="memory:// (default) or redis://host:port/db")
    parser.add_argument("--store", help="sqlite:///path (default ./swergio_al.db) or "
                                        "postgresql://...")
    parser.add_argument("--lease-seconds", type=float, help="feedback task lease (default 120)")
    parser.add_argument("--component-token",
                        help="token components must send on REGISTER (or "
                             "SWERGIO_AL_COMPONENT_TOKEN; default: none on 127.0.0.1, "
                             "generated on other addresses)")
    parser.add_argument("--labeler-token",
                        help="token labelers must send (or SWERGIO_AL_LABELER_TOKEN; "
                             "default: as --component-token)")
    parser.add_argument("--allowed-origin", dest="allowed_origins", action="append",
                        help="another origin whose pages may open /ws (repeatable; "
                             "default: same-origin only)")
    parser.add_argument("--access-log", action="store_const", const=True,
                        help="log every HTTP request at INFO (or SWERGIO_AL_ACCESS_LOG=1; "
                             "default: off)")
    parser.add_argument("--media-dir",
                        help="serve the images/audio under this folder at /media/... "
                             "(read-only; for samples that show them; default: none)")


def _config_from(args: argparse.Namespace) -> Config:
    names = ("host", "port", "log_level", "max_frame_size", "swergio_port", "broker", "store",
             "lease_seconds", "component_token", "labeler_token", "allowed_origins", "media_dir",
             "access_log")
    return Config.from_env(**{name: getattr(args, name, None) for name in names})


def _is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: assume it is reachable from elsewhere


GENERATED_TOKENS = ("No tokens configured on a network address: generated them; anonymous "
                    "clients are refused.")


def generate_tokens(config: Config) -> bool:
    """On a non-loopback address with no tokens, make both (like a notebook server);
    True if it did. `serve` and the label command's embedded server both do this."""
    if _is_loopback(config.host) or config.component_token or config.labeler_token:
        return False
    from swergio_al.relay.access import generate_token

    config.component_token = generate_token()
    config.labeler_token = generate_token()
    return True


def secure_exposed(config: Config) -> list[str]:
    """`generate_tokens`, and the lines to print if it did: where to label and which
    token components need. Tokens are printed once here, never logged.
    """
    if not generate_tokens(config):
        return []
    base = link_base(config.host, config.port)
    return [GENERATED_TOKENS,
            f"  label at:        {base}/?token={config.labeler_token}",
            f"  dashboard:       {base}/dashboard?token={config.component_token}",
            f"  component token: {config.component_token}  "
            "(Component(..., token=...), or SWERGIO_AL_COMPONENT_TOKEN)"]


def serve(config: Config) -> int:
    from aiohttp import web

    from swergio_al.access_log import access_log_options
    from swergio_al.feedback.records import StoreError
    from swergio_al.server import create_app
    from swergio_al.terminal import port_in_use

    problem = _serve_problem(config)
    if problem is not None:
        print(f"swergio-al serve: {problem}", file=sys.stderr)
        return 2
    logging.basicConfig(level=config.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    notes = secure_exposed(config)
    if config.media_dir is not None and not os.path.isdir(config.media_dir):
        print(f"swergio-al serve: --media-dir {config.media_dir}: not a folder", file=sys.stderr)
        return 1
    if not 0 <= config.gold_rate <= 1:
        print(f"swergio-al serve: SWERGIO_AL_GOLD_RATE={config.gold_rate}: the share of gold "
              "questions must be within 0..1", file=sys.stderr)
        return 1
    url = link_base(config.host, config.port)

    def announce(_: str) -> None:
        print(f"swergio-al serving on {url}  (WebSocket: {url.replace('http', 'ws', 1)}/ws)",
              *notes, sep="\n", flush=True)

    try:
        app = create_app(config)
        web.run_app(app, host=config.host, port=config.port,
                    shutdown_timeout=config.shutdown_timeout_seconds, print=announce,
                    **access_log_options(config))  # no token reaches a log
    # port taken, backend unreachable, bad store path or scheme, its extra not installed
    except (OSError, StoreError, ValueError, ImportError) as exc:
        logging.getLogger("swergio_al").debug("start-up failed", exc_info=True)
        taken = port_in_use(config.host, config.port, exc) if isinstance(exc, OSError) else None
        print(f"swergio-al serve: {taken or exc}", file=sys.stderr)
        return 1
    return 0


def _serve_problem(config: Config) -> str | None:
    """What makes these settings unservable, in one line (else None): checked before
    binding, where a port out of range would end in a traceback."""
    if not 1 <= config.port <= 65535:
        return f"--port must be within 1..65535, got {config.port}"
    if config.swergio_port is not None and not 0 <= config.swergio_port <= 65535:
        return f"--swergio-port must be within 0..65535 (0: any free one), got " \
               f"{config.swergio_port}"
    if not config.lease_seconds > 0:
        return f"--lease-seconds must be more than 0, got {config.lease_seconds:g}"
    if not config.max_frame_size > 0:
        return f"--max-frame-size must be at least 1, got {config.max_frame_size}"
    if not 0 <= config.full_gc_seconds < math.inf:
        return f"SWERGIO_AL_FULL_GC_SECONDS must be a number of seconds, 0 or more " \
               f"(0: Python's own pacing), got {config.full_gc_seconds:g}"
    return log_level_problem(config.log_level)


def log_level_problem(level: str) -> str | None:
    """logging.basicConfig(level='LOUD') raises; say it in one line instead."""
    if isinstance(logging.getLevelName(level.upper()), int):
        return None
    return f"--log-level must be DEBUG, INFO, WARNING, ERROR or CRITICAL, got {level!r}"


def build_parser() -> argparse.ArgumentParser:
    parser = _OneLineParser(prog="swergio-al", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve_parser = commands.add_parser("serve", help="run the relay, feedback service and pages")
    _add_serve_arguments(serve_parser)
    export_parser = commands.add_parser("export", help="write the stored labels as CSV or JSONL")
    export_parser.add_argument("--store", help="sqlite:///path (default ./swergio_al.db) or "
                                               "postgresql://...")
    export_parser.add_argument("--format", choices=("csv", "jsonl"), default="csv",
                               help="csv or jsonl (default csv)")
    export_parser.add_argument("--room", help="only this feedback room (default: all rooms)")
    export_parser.add_argument("--output", "-o", help="file to write (default: stdout)")
    from swergio_al.label_command import add_arguments as add_label_arguments

    add_label_arguments(commands.add_parser(
        "label", help="label your own CSV/TSV/JSONL file or image/audio folder, a model "
                      "asking about what it is least sure of"))
    run_parser = commands.add_parser("run", help="start, supervise and stop the components "
                                                 "listed in a components.toml")
    run_parser.add_argument("components", help="path to the components file (TOML)")
    demo_parser = commands.add_parser("demo", help="run a demo: music")
    demos = demo_parser.add_subparsers(dest="demo", required=True)
    from swergio_al.demos.music.demo import add_arguments as add_music_arguments

    add_music_arguments(demos.add_parser(
        "music", help="melodies evolve; an evaluator learns your taste from a few ratings"))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        return _run(argv)
    except KeyboardInterrupt:  # Ctrl-C before the command's own handling of it is in place
        command = next((word for word in argv if not word.startswith("-")), "")
        print(f"swergio-al{' ' + command if command in COMMANDS else ''}: stopped (Ctrl-C)",
              file=sys.stderr)
        return 130


COMMANDS = ("serve", "label", "export", "run", "demo")


def _run(argv: list[str]) -> int:
    if argv[:1] == ["label"]:  # its own parser: every bad option is one line, exit 2
        from swergio_al.label_command import main as label

        return label(argv[1:])
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # said by the command they were given to, not by swergio-al as a whole
        prog = " ".join(["swergio-al", args.command, *([args.demo] if args.command == "demo"
                                                       else [])])
        print(f"{prog}: unrecognized arguments: {' '.join(extra)} (see {prog} --help)",
              file=sys.stderr)
        return 2
    if args.command == "serve":
        try:
            config = _config_from(args)
        except ValueError as exc:  # a SWERGIO_AL_* variable that does not parse
            print(f"swergio-al serve: {exc}", file=sys.stderr)
            return 2
        return serve(config)
    elif args.command == "export":
        return export(args)
    elif args.command == "run":
        return run_components(args.components)
    elif args.command == "demo":
        from swergio_al.demos.music.demo import run as run_music_demo

        return run_music_demo(args)
    return 0


def run_components(path: str) -> int:
    from swergio_al.launcher import LauncherConfigError, run_file

    try:
        return run_file(path)
    except LauncherConfigError as exc:
        print(f"swergio-al run: {exc}", file=sys.stderr)
        return 2


def export(args: argparse.Namespace) -> int:
    import asyncio

    from swergio_al.feedback.export import require_store, write_export
    from swergio_al.feedback.records import StoreError

    try:
        store = Config.from_env(store=args.store).store
        require_store(store)
        if args.output:
            with open(args.output, "w", encoding="utf-8", newline="") as out:
                asyncio.run(write_export(store, args.format, out, room=args.room))
        else:
            asyncio.run(write_export(store, args.format, sys.stdout, room=args.room))
    except (OSError, ValueError, StoreError, ImportError) as exc:  # ImportError: an extra
        print(f"swergio-al export: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
