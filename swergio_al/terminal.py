"""Wording shared by what the commands print (serve, label, the demo), so each says it
the same way."""

from __future__ import annotations

import errno
import socket


def count(n: int, noun: str) -> str:
    """'1 label', '2 labels', '0 labels': the plural only when n is not 1."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def link_base(host: str, port: int) -> str:
    """`http://host:port` for a link people open: a server bound to every address
    (0.0.0.0, ::) is named by this machine's name, as notebook servers do (nobody's
    browser can open http://0.0.0.0 on another machine), an IPv6 address in brackets."""
    if host in ("0.0.0.0", "::", ""):
        host = socket.gethostname() or "localhost"
    elif ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def port_in_use(host: str, port: int, exc: OSError) -> str | None:
    """The one line for a server that could not listen because the port is taken (None
    when `exc` is another failure): what it is and what to do, not an errno."""
    if exc.errno != errno.EADDRINUSE:
        return None
    other = port + 1 if port < 65535 else 8081
    return (f"port {port} on {host} is already in use (another server?); "
            f"pick a free one with --port, e.g. --port {other}")


def port_problem(port: int, host: str = "127.0.0.1") -> str | None:
    """Why a server could not listen on host:port, in one line; None if it can.

    For a command that starts several processes: checked before anything starts, so a
    busy port ends it at once instead of its components finding (and talking to)
    whatever server holds the port.
    """
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server binds
        try:
            probe.bind((host, port))
        except OSError as exc:
            return (port_in_use(host, port, exc)
                    or f"cannot listen on {host}:{port}: {exc.strerror}; choose another --port")
    return None
