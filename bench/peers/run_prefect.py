"""Run a bench/shapes.py DAG on Prefect 3 with its own local server; print one JSON line.

    bench/peers/.venvs/prefect/bin/python bench/peers/run_prefect.py --shape layered --jobs 10000

Before the clock starts, the runner starts ``prefect server start`` on a free 127.0.0.1
port (SQLite in a temporary ``PREFECT_HOME``, UI and analytics off, its services on, so
every task run is recorded as a real deployment would record it) and points the client
at it with ``PREFECT_API_URL``. The graph is one flow: each job is a ``@task`` around
``common.timed`` submitted with its parents' futures as arguments, so Prefect itself
waits for (and resolves) the parents before a job runs; the flow then waits on every
future and collects the payload's (start, end) times.

Workers (``--task-runner``):

- ``threads`` (default): ``ThreadPoolTaskRunner(max_workers=2)``, Prefect's default kind
  of runner, which its documentation recommends for tasks that are not CPU-bound (a
  no-op is not). Two threads of the flow process are the 2 workers: the closest
  equivalent of 2 worker processes that Prefect offers without a work pool, and its
  fastest local configuration (see ``processes``), so Orchid's ratio against it is the
  conservative one.
- ``processes``: ``ProcessPoolTaskRunner(max_workers=2)``, 2 real worker processes
  (spawned; each task is pickled to one and reports its states from there). Slower on
  this payload, kept so both can be measured.

Tasks use ``cache_policy=NO_CACHE`` (nothing is persisted, so no cache key needs
computing) and Prefect's log level is WARNING (otherwise every task run logs a line to
the console and to the API): both spare Prefect work a no-op does not need. submit_s
runs from calling the flow (which creates the flow run on the server) until the last
task has been submitted; run_s from then until every future has resolved.

Only the JSON line goes to stdout; Prefect's output and the server's log go to stderr
and to a file in the temporary home. The server is stopped by its process group on
exit, error or timeout (``--timeout``, after which the runner exits non-zero).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import common

HERE = Path(__file__).resolve().parent
SETUP_TIMEOUT = 120.0


class Server:
    """``prefect server start`` in its own process group, home and port."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.port = common.free_port()
        self.url = f"http://127.0.0.1:{self.port}/api"
        self.log = home / "server.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            PREFECT_HOME=str(self.home),
            PREFECT_API_URL=self.url,
            PREFECT_SERVER_API_HOST="127.0.0.1",
            PREFECT_SERVER_API_PORT=str(self.port),
            PREFECT_SERVER_ANALYTICS_ENABLED="false",
            PREFECT_SERVER_UI_ENABLED="false",
            PREFECT_LOGGING_LEVEL="WARNING",
            PREFECT_LOGGING_SERVER_LEVEL="WARNING",
            PREFECT_CLI_PROMPT="false",
            DO_NOT_TRACK="1",
            # spawned task-runner processes unpickle common.timed by name
            PYTHONPATH=os.pathsep.join(
                [str(HERE), str(HERE.parent), *filter(None, [os.environ.get("PYTHONPATH")])]
            ),
        )
        return env

    def start(self) -> None:
        prefect = str(Path(sys.executable).with_name("prefect"))
        argv = [prefect, "server", "start", "--host", "127.0.0.1", "--port", str(self.port)]
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [*argv, "--no-ui", "--analytics-off"],
                env=self.env(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # one process group to stop, whatever it forks
            )
        if not common.benchkit.wait_until(self.healthy, SETUP_TIMEOUT, every=0.25):
            raise RuntimeError(f"the Prefect server did not answer in {SETUP_TIMEOUT:.0f} s")

    def healthy(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"the Prefect server exited with code {self.proc.returncode}")
        try:
            with urllib.request.urlopen(f"{self.url}/health", timeout=2) as r:
                return bool(json.loads(r.read()))
        except OSError:
            return False

    def task_runs(self, expected: int, within: float = 60.0) -> tuple[int, float | None]:
        """How many task runs the server has recorded, and how many seconds after the flow
        ended it had all ``expected`` (None if not within ``within`` s): the client learns
        of results first, the server records states through an asynchronous event
        pipeline. Off the clock."""
        count = -1
        t0 = time.monotonic()
        while time.monotonic() - t0 < within:
            req = urllib.request.Request(
                f"{self.url}/task_runs/count",
                data=b"{}",
                headers={"Content-Type": "application/json"},
            )
            with urllib.request.urlopen(req, timeout=10) as r:
                count = int(json.loads(r.read()))
            if count >= expected:
                return count, round(time.monotonic() - t0, 1)
            time.sleep(0.5)
        return count, None

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def make_run(a: Any, kind: str) -> Any:
    """The flow for this graph and a ``run()`` for ``common.measure``."""
    from prefect import flow, task
    from prefect.cache_policies import NO_CACHE
    from prefect.task_runners import ProcessPoolTaskRunner, ThreadPoolTaskRunner

    job = task(common.timed, name="job", cache_policy=NO_CACHE, persist_result=False)
    runner = (
        ThreadPoolTaskRunner(max_workers=a.workers)
        if kind == "threads"
        else ProcessPoolTaskRunner(max_workers=a.workers)
    )
    marks: dict[str, float] = {}

    @flow(name=f"bench-{a.shape}-{a.jobs}", task_runner=runner, persist_result=False)
    def dag() -> dict[str, common.Span]:
        futures: dict[str, Any] = {}
        for key, parents in common.graph(a.shape, a.jobs, a.seed):
            futures[key] = job.submit(*(futures[p] for p in parents))
        marks["submitted"] = time.time()
        return {key: tuple(f.result()) for key, f in futures.items()}

    def run() -> tuple[float, float, dict[str, common.Span]]:
        t0 = time.time()
        spans = dag()
        end = time.time()
        return marks["submitted"] - t0, end - marks["submitted"], spans

    return run


def main() -> int:
    ap = common.parser("Prefect 3 (local server)")
    ap.add_argument("--task-runner", choices=("threads", "processes"), default="threads")
    a = ap.parse_args()
    home = Path(tempfile.mkdtemp(prefix="orchid-prefect-"))
    server = Server(home)
    timer = threading.Timer(a.timeout, _timeout, args=(server, home, a.timeout))
    timer.daemon = True
    try:
        with contextlib.redirect_stdout(sys.stderr):  # stdout holds the JSON line alone
            os.environ.update(server.env())  # before prefect is imported: it reads them
            server.start()
            import prefect

            run = make_run(a, a.task_runner)
            timer.start()
            row = common.measure("prefect", a, run)
            timer.cancel()
            recorded, lag = server.task_runs(a.jobs)
        runner = "ThreadPoolTaskRunner" if a.task_runner == "threads" else "ProcessPoolTaskRunner"
        row.update(
            task_runner=f"{runner}(max_workers={a.workers})",
            version=prefect.__version__,
            db="sqlite",
            server_task_runs=recorded,
            server_recorded_all_after_s=lag,
        )
        common.benchkit.emit(row)
        return 0
    except Exception as exc:
        print(server.tail(), file=sys.stderr)
        print(f"prefect run failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    finally:
        timer.cancel()
        server.stop()
        shutil.rmtree(home, ignore_errors=True)


def _timeout(server: Server, home: Path, seconds: float) -> None:
    print(f"prefect run timed out after {seconds:.0f} s", file=sys.stderr, flush=True)
    server.stop()
    shutil.rmtree(home, ignore_errors=True)
    os._exit(2)


if __name__ == "__main__":
    sys.exit(main())
