"""``recs-platform demo`` prints the run's summary and its links once both servers answer, and stops
everything it started: SIGTERM to the demo process alone ends the API workers, the webserver, the
daemon and the code servers, and frees both ports."""

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from recs_platform.data import synthetic
from recs_platform.serving.launcher import free_port
from recs_platform.settings import PlatformPaths

REPO = Path(__file__).resolve().parent.parent


def wait_for(url: str, process: subprocess.Popen, timeout_s: float, log: Path) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert process.poll() is None, f"demo exited early:\n{log.read_text()[-4000:]}"
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(1)
    raise TimeoutError(f"{url} not up after {timeout_s}s:\n{log.read_text()[-4000:]}")


def wait_for_text(log: Path, text: str, timeout_s: float) -> str:
    deadline = time.monotonic() + timeout_s
    while text not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.5)
    return log.read_text()


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@pytest.fixture
def demo_home(tmp_path) -> Path:
    config = synthetic.SyntheticConfig(n_users=120, n_items=150, n_events=4000, days=14, seed=5)
    synthetic.write_to_landing(synthetic.generate(config), PlatformPaths(tmp_path / "home").landing)
    (tmp_path / "dagster").mkdir()
    return tmp_path


def test_sigterm_to_the_demo_stops_every_child_and_frees_both_ports(demo_home):
    ui_port, api_port = free_port(), free_port()
    env = {
        **os.environ,
        "RECS_HOME": str(demo_home / "home"),
        "DAGSTER_HOME": str(demo_home / "dagster"),
        "RECS_ENV": "ci",
        "RECS_GATE_MIN_METRIC": "0.0",
    }
    log = demo_home / "demo.log"
    command = [sys.executable, "-m", "assets.cli", "demo", "--ui-port", str(ui_port), "--api-port", str(api_port)]
    with log.open("wb") as out:
        demo = subprocess.Popen(command, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for(f"http://127.0.0.1:{api_port}/readyz", demo, 600, log)
        wait_for(f"http://127.0.0.1:{ui_port}/server_info", demo, 180, log)
        shown = wait_for_text(log, "Press Ctrl-C to stop.", 30)
        assert re.search(r"^deployed +recs-recommender:\w+$", shown, re.M)  # the run's summary
        assert f"curl -s -X POST http://127.0.0.1:{api_port}/recommend" in shown
        assert re.search(rf"^Dagster UI +http://127.0.0.1:{ui_port}\b", shown, re.M)
        children = psutil.Process(demo.pid).children(recursive=True)
        names = " ".join(" ".join(child.cmdline()) for child in children)
        assert "bentoml" in names and "dagster" in names
        assert len(children) >= 4  # API server + worker, dagster dev, webserver, daemon, code servers

        demo.send_signal(signal.SIGTERM)
        assert demo.wait(60) == 0
        _, alive = psutil.wait_procs(children, timeout=10)
        assert [" ".join(p.cmdline()) for p in alive if p.status() != psutil.STATUS_ZOMBIE] == []
        assert port_is_free(ui_port) and port_is_free(api_port)
    finally:
        if demo.poll() is None:
            demo.kill()
