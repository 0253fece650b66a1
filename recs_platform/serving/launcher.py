"""Start the real ``bentoml serve`` process on a registry home, for tests and benchmarks."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil

from recs_platform.settings import PlatformPaths

SERVICE = "recs_platform.serving.service:RecommenderService"
REPO_ROOT = Path(__file__).resolve().parents[2]
WORKER_MODULE = "_bentoml_impl.worker.service"  # in a worker process' command line


@dataclass
class ServerHandle:
    """A running server; ``stop`` ends its whole process group (BentoML forks workers).

    The server's output goes to ``log_path``, which ``stop`` removes.
    """

    process: subprocess.Popen
    url: str
    log_path: Path

    def stop(self, timeout_s: float = 15.0) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.log_path.unlink(missing_ok=True)

    def log_tail(self, chars: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]

    def worker_pids(self) -> set[int]:
        """The worker processes answering requests (BentoML's supervisor forks and restarts them)."""
        workers = set()
        for child in psutil.Process(self.process.pid).children(recursive=True):
            try:
                if WORKER_MODULE in child.cmdline():
                    workers.add(child.pid)
            except psutil.Error:
                pass  # it exited (a zombie until its parent reaps it)
        return workers


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(
    home: Path,
    port: int | None = None,
    env: dict[str, str] | None = None,
    wait_for: str = "/readyz",
    timeout_s: float = 90.0,
    service: str = SERVICE,
) -> ServerHandle:
    """Serve the registry under ``home`` and wait until ``wait_for`` answers 200.

    Pass ``wait_for="/livez"`` to start without a production model (``/readyz`` stays 503), and
    ``service`` (``module:Class``, importable from the repository root) to serve another service.
    """
    paths = PlatformPaths(Path(home).resolve())
    port = port or free_port()
    server_env = {
        **os.environ,
        "RECS_HOME": str(paths.home),
        "BENTOML_HOME": str(paths.bentoml_home),
        "BENTOML_DO_NOT_TRACK": "True",
        **(env or {}),
    }
    command = [sys.executable, "-m", "bentoml", "serve", service, "--port", str(port), "--host", "127.0.0.1"]
    log_path = Path(tempfile.mkstemp(prefix="recs-serve-", suffix=".log")[1])
    with log_path.open("wb") as log:
        # A file, not a pipe: nobody drains a pipe while the server runs, and a full one blocks it.
        process = subprocess.Popen(
            command, cwd=REPO_ROOT, env=server_env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    handle = ServerHandle(process, f"http://127.0.0.1:{port}", log_path)
    try:
        _wait_until_ok(handle, wait_for, timeout_s)
    except BaseException:
        handle.stop()
        raise
    return handle


def _wait_until_ok(handle: ServerHandle, route: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if handle.process.poll() is not None:
            raise RuntimeError(f"bentoml serve exited with {handle.process.returncode}:\n{handle.log_tail()}")
        try:
            if httpx.get(handle.url + route, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass  # not listening yet
        time.sleep(0.25)
    raise TimeoutError(f"{handle.url}{route} not ready after {timeout_s:.0f}s:\n{handle.log_tail()}")


def fuzz_command(url: str, max_examples: int, seed: int, report: Path, mode: str = "all") -> list[str]:
    """The Schemathesis run (a dev dependency) of the API the server at ``url`` publishes: every
    check, on every operation in its OpenAPI, one worker; its JSON report goes to ``report``.
    ``mode``: positive (valid requests), negative (invalid ones) or all."""
    return [
        str(Path(sys.executable).with_name("schemathesis")),
        "run",
        f"{url}/docs.json",
        "--checks=all",
        f"--max-examples={max_examples}",
        f"--seed={seed}",
        f"--mode={mode}",
        "--workers=1",
        "--suppress-health-check=all",  # slow or filtered generation is not a finding about the API
        "--report=json",
        f"--report-json-path={report}",
    ]
