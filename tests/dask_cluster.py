"""A real Dask cluster for the tests: ``dask scheduler`` and ``dask worker``
processes on 127.0.0.1, started and stopped by a fixture.

Workers run without a nanny (``--no-nanny``), so killing a worker's process
is a worker dying mid-run, not a restart. Every wait has a timeout, so a
cluster that does not come up fails the test instead of hanging CI.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from helpers import MNIST_DIR

START_TIMEOUT = 90.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env() -> dict:
    env = dict(os.environ, NNDL_DATA=str(MNIST_DIR), OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
               MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    env.pop("DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES", None)
    return env


class DaskCluster:
    """``dask scheduler`` + ``n_workers`` ``dask worker`` processes, and a client to watch them."""

    def __init__(self, logs: Path, n_workers: int = 2) -> None:
        from distributed import Client

        self.logs = Path(logs)
        self.logs.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.address = f"tcp://127.0.0.1:{self.port}"
        self.procs: list[subprocess.Popen] = []
        self.workers: dict[str, subprocess.Popen] = {}   # worker name -> process
        self.n = 0
        self.scheduler = self._spawn("scheduler", ["scheduler", "--host", "127.0.0.1", "--port", str(self.port),
                                                   "--no-dashboard"])
        try:
            self.client = Client(self.address, timeout=START_TIMEOUT, set_as_default=False)
            for _ in range(n_workers):
                self.add_worker()
        except BaseException:
            self.stop()
            raise

    def _spawn(self, name: str, args: list[str]) -> subprocess.Popen:
        log = open(self.logs / f"{name}.log", "wb")
        proc = subprocess.Popen([sys.executable, "-m", "dask", *args], stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=_env())
        log.close()
        self.procs.append(proc)
        return proc

    def add_worker(self) -> str:
        """Start one more worker and wait until the scheduler knows it."""
        self.n += 1
        name = f"w{self.n}"
        self.workers[name] = self._spawn(name, ["worker", self.address, "--nthreads", "1", "--no-nanny",
                                                "--no-dashboard", "--host", "127.0.0.1", "--name", name])
        self.client.wait_for_workers(len(self.workers), timeout=START_TIMEOUT)
        return name

    def pids(self) -> dict[str, int]:
        """``{worker address: pid}``."""
        return self.client.run(os.getpid)

    def kill_when_busy(self, timeout: float = 60.0, delay: float = 0.05) -> threading.Thread:
        """In the background: when a worker has been running the same task for
        ``delay`` s, SIGKILL its process. ``thread.killed`` is then
        ``(worker address, task key)``."""
        pids = self.pids()

        def watch():
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and self.client.status == "running":
                busy = {a: set(keys) for a, keys in self.client.processing().items() if keys and a in pids}
                if busy:
                    time.sleep(delay)
                    for address, keys in self.client.processing().items():
                        still = keys and address in busy and busy[address] & set(keys)
                        if still:
                            os.kill(pids[address], signal.SIGKILL)
                            thread.killed = (address, sorted(still)[0])
                            return
                time.sleep(0.02)

        thread = threading.Thread(target=watch, daemon=True)
        thread.killed = None
        thread.start()
        return thread

    def restore(self) -> None:
        """Replace dead workers, so that later tests find two."""
        for name, proc in list(self.workers.items()):
            if proc.poll() is not None:
                del self.workers[name]
        while len(self.workers) < 2:
            self.add_worker()

    def stop(self) -> None:
        client = getattr(self, "client", None)
        if client is not None:
            client.close(timeout=10)
        for proc in reversed(self.procs):   # nothing of theirs needs saving: stop them now
            if proc.poll() is None:
                proc.kill()
        for proc in self.procs:
            proc.wait(timeout=15)
