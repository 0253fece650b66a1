"""Long-running child processes that all stop when their parent stops.

Each child starts in its own session, so a Ctrl-C in the terminal reaches only the parent, which
then stops the children in order. Stopping one ends its whole process tree: the children it
forked (BentoML's workers, Dagster's webserver, daemon and code servers) are found before the
first signal, since they may be re-parented once their own parent exits.

Children are asked to stop with SIGTERM, which BentoML and ``dagster dev`` handle gracefully and
which, unlike SIGINT, a process launched in the background cannot have inherited as ignored.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import subprocess
import time
import urllib.parse
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

import psutil


class Stop(Exception):
    """Raised in the parent by SIGINT, SIGTERM or SIGHUP."""


@dataclass
class Supervisor:
    """Starts named children and, on ``stop_all``, ends every process of their trees."""

    grace_s: float = 20.0
    children: dict[str, subprocess.Popen] = field(default_factory=dict)

    def start(
        self, name: str, command: Sequence[str], env: dict[str, str], log: Path | None = None
    ) -> subprocess.Popen:
        """Start ``command``; its output goes to ``log`` (appended) when given, else to this terminal."""
        with contextlib.ExitStack() as stack:
            output = None
            if log is not None:
                log.parent.mkdir(parents=True, exist_ok=True)
                output = stack.enter_context(log.open("ab"))
            process = subprocess.Popen(
                list(command), env=env, start_new_session=True, stdout=output, stderr=subprocess.STDOUT if log else None
            )
        self.children[name] = process
        return process

    def wait_until_serving(self, urls: dict[str, str], timeout_s: float = 300.0, poll_s: float = 1.0) -> bool:
        """Wait until each named child's URL answers 200; False if one exits or time runs out first."""
        deadline = time.monotonic() + timeout_s
        for name, url in urls.items():
            while not _answers(url):
                if self.children[name].poll() is not None or time.monotonic() > deadline:
                    return False
                time.sleep(poll_s)
        return True

    def wait_any(self, poll_s: float = 1.0) -> str:
        """Block until a child exits; returns its name."""
        while True:
            for name, process in self.children.items():
                if process.poll() is not None:
                    return name
            time.sleep(poll_s)

    def stop_all(self) -> None:
        """SIGTERM to each child's process group, then SIGKILL to whatever of their trees outlives
        ``grace_s``."""
        trees = {name: _tree(process.pid) for name, process in self.children.items()}
        for process in self.children.values():
            _signal_group(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + self.grace_s
        for process in self.children.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(max(deadline - time.monotonic(), 0.1))
        survivors = [p for tree in trees.values() for p in tree if _alive(p)]
        survivors += [p for process in self.children.values() for p in _tree(process.pid) if _alive(p)]
        for process in survivors:
            with contextlib.suppress(psutil.Error):
                process.kill()
        psutil.wait_procs(survivors, timeout=5)
        for process in self.children.values():
            _signal_group(process.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(5)


def _answers(url: str) -> bool:
    """True when ``url`` answers 200. The connection is kept alive and closed by us: a server that
    closes first (uvicorn does on ``Connection: close``) leaves its port in TIME_WAIT, and the port
    could not be bound again for a minute after the demo stops."""
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=2)
    try:
        connection.request("GET", parts.path or "/")
        return connection.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        connection.close()


def _tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def _alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _signal_group(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signum)


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@contextlib.contextmanager
def stop_on_signals(supervisor: Supervisor) -> Iterator[Supervisor]:
    """Turn SIGINT, SIGTERM and SIGHUP into ``Stop`` and stop every child however the block ends.

    SIGINT is handled even when the parent inherited it as ignored, so Ctrl-C always works.
    """

    def raise_stop(signum: int, frame: FrameType | None) -> None:
        raise Stop(signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, raise_stop) for sig in STOP_SIGNALS}
    try:
        yield supervisor
    except Stop:
        pass
    finally:
        # A second signal while stopping must not abandon the children half-way.
        for sig in STOP_SIGNALS:
            signal.signal(sig, signal.SIG_IGN)
        supervisor.stop_all()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
