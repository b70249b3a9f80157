"""A `roost serve` in a child process, as a user starts it: on 127.0.0.1 and a free port, waited
for until ``/api/health`` answers (a bounded wait), stopped with SIGINT by its process id. For
scripts, the benchmark and the tests alike."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Served:
    base: str  # http://127.0.0.1:<port>
    pid: int
    start_seconds: float  # from the process start to the first healthy answer


def healthy(base: str) -> bool:
    try:
        with urllib.request.urlopen(base + "/api/health", timeout=2) as reply:
            return reply.status == 200
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


@contextmanager
def served(
    bundle: Path, *args: str, cwd: Path | None = None, env: dict | None = None, timeout_s: float = 120.0
) -> Iterator[Served]:
    """``roost serve --bundle BUNDLE --port <free> ARGS...`` (``python -m ml.cli``, this
    interpreter) until the block ends; RuntimeError if it does not answer within ``timeout_s``."""
    port = free_port()
    cmd = [sys.executable, "-m", "ml.cli", "serve", "--bundle", str(bundle), "--port", str(port), *args]
    proc = subprocess.Popen(cmd, cwd=cwd, env=env)
    base = f"http://127.0.0.1:{port}"
    start = time.perf_counter()
    try:
        deadline = time.monotonic() + timeout_s
        while not healthy(base):
            if proc.poll() is not None:
                raise RuntimeError(f"roost serve exited with status {proc.returncode} before answering")
            if time.monotonic() > deadline:
                raise RuntimeError(f"roost serve did not answer on {base} within {timeout_s:.0f} s")
            time.sleep(0.2)
        yield Served(base, proc.pid, time.perf_counter() - start)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
