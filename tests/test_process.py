"""run_until_stopped: Ctrl-C or SIGTERM ends a component's script cleanly, and a second
signal (Ctrl-C reaches every process of the terminal, then a launcher sends SIGTERM)
does not cut short the clean-up the first one started."""

from __future__ import annotations

import signal
import subprocess
import sys

SCRIPT = """
import asyncio
from swergio_al.client.process import run_until_stopped

async def main():
    print("ready", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        print("cleaning", flush=True)
        await asyncio.sleep(0.3)  # e.g. a close handshake
        print("cleaned", flush=True)

print("result", run_until_stopped(main()), flush=True)
"""


def test_a_second_signal_does_not_cut_the_clean_up_short() -> None:
    child = subprocess.Popen([sys.executable, "-c", SCRIPT], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
        child.send_signal(signal.SIGINT)
        assert child.stdout.readline().strip() == "cleaning"
        child.send_signal(signal.SIGTERM)  # while it cleans up
        out, err = child.communicate(timeout=20)
    finally:
        child.kill()
    assert child.returncode == 0, err
    assert out.split() == ["cleaned", "result", "None"], (out, err)
    assert "Traceback" not in err
