"""Run a bench/shapes.py DAG on Apache Airflow 3 with its own components; print one JSON line.

    bench/peers/.venvs/airflow/bin/python bench/peers/run_airflow.py --shape layered --jobs 500

Airflow cannot cope with the full sizes in a few minutes (every task is a process that
parses the DAG file again), so the defaults are reduced: 500 jobs for ``layered``, 100
for ``chain`` (``--jobs`` overrides; jobs/s stays comparable, the row says what ran).

Before the clock starts, like ``airflow standalone`` but on 127.0.0.1 only, the runner
makes a temporary ``AIRFLOW_HOME``, a PostgreSQL database of its own on 127.0.0.1:5432
(LocalExecutor wants a real database), runs ``airflow db migrate`` and starts
``airflow api-server`` (on a free port; it serves the Execution API the task processes
report to), ``airflow scheduler`` and ``airflow dag-processor``, each in its own
process group. The executor is ``LocalExecutor`` with ``parallelism`` 2: 2 worker
processes, each of which runs one supervised task process at a time. The only tuning is
``[dag_processor] refresh_interval`` = 1 s (default 300 s), so that a new DAG file is
noticed at once rather than minutes later.

The clock starts when the DAG file is written: one ``PythonOperator`` per job running
``common.timed`` (its (start, end) goes to XCom), the shape's edges as Airflow task
dependencies. submit_s runs until the dag-processor has parsed and serialized the DAG
and a run of it has been triggered through the REST API (retried until the DAG is
there); run_s from then until the last task instance ended (its ``end_date``; the runner
polls the database for the DAG run to finish). Step latencies come from the payload's
times read back from XCom, like every peer's; ``ti_step_*`` are the same from the task
instances' own start and end dates, which add the task process's start-up.

Only the JSON line goes to stdout; the components log to files in the temporary home
(their last lines go to stderr on failure). Everything started is stopped by process
group, and the database dropped, on exit, error or timeout (``--timeout``, default
1800 s here, after which the runner exits non-zero).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from datetime import datetime
from pathlib import Path
from typing import Any

import common

HERE = Path(__file__).resolve().parent
PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}
SETUP_TIMEOUT = 300.0
DEFAULT_JOBS = {"layered": 500, "chain": 100}
COMPONENTS = ("api-server", "scheduler", "dag-processor")
DAG_TEMPLATE = HERE / "airflow_dag.py.tmpl"


def task_id(key: str) -> str:
    """Airflow task ids allow letters, digits, ``_``, ``-`` and ``.``, not ``/``."""
    return key.replace("/", "_")


class Airflow:
    """The components of one Airflow installation in a temporary home."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.dags = home / "dags"
        self.dags.mkdir()
        self.port = common.free_port()
        self.api = f"http://127.0.0.1:{self.port}/api/v2"
        self.db = f"orchid_airflow_{os.getpid()}_{secrets.token_hex(3)}"
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.db_created = False
        self._pg: Any = None
        self._stopping = threading.Lock()
        self.timed_out = threading.Event()

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            AIRFLOW_HOME=str(self.home),
            AIRFLOW__CORE__DAGS_FOLDER=str(self.dags),
            AIRFLOW__CORE__EXECUTOR="LocalExecutor",
            AIRFLOW__CORE__PARALLELISM="2",
            AIRFLOW__CORE__LOAD_EXAMPLES="False",
            AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION="False",
            AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS="True",
            AIRFLOW__CORE__EXECUTION_API_SERVER_URL=f"http://127.0.0.1:{self.port}/execution/",
            AIRFLOW__CORE__FERNET_KEY="",
            AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=(
                f"postgresql+psycopg2://{PG['user']}@{PG['host']}:{PG['port']}/{self.db}"
            ),
            AIRFLOW__API__HOST="127.0.0.1",
            AIRFLOW__API__PORT=str(self.port),
            AIRFLOW__API__BASE_URL=f"http://127.0.0.1:{self.port}",
            AIRFLOW__API__SECRET_KEY=secrets.token_hex(16),
            AIRFLOW__API_AUTH__JWT_SECRET=secrets.token_hex(32),
            AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL="1",
            AIRFLOW__USAGE_DATA_COLLECTION__ENABLED="False",
            SCARF_ANALYTICS="false",
            DO_NOT_TRACK="1",
            PYTHONPATH=os.pathsep.join([str(HERE), *filter(None, [os.environ.get("PYTHONPATH")])]),
        )
        return env

    # -- setup, off the clock -------------------------------------------------------------

    def start(self) -> None:
        env = self.env()  # once: the secrets must be the same for every component
        self.create_db()
        airflow = str(Path(sys.executable).with_name("airflow"))
        with open(self.home / "migrate.log", "wb") as log:
            done = subprocess.run(
                [airflow, "db", "migrate"],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                timeout=SETUP_TIMEOUT,
                check=False,
            )
        if done.returncode:
            raise RuntimeError(f"airflow db migrate failed:\n{self.tail('migrate')}")
        for name in COMPONENTS:
            with open(self.home / f"{name}.log", "wb") as log:
                self.procs[name] = subprocess.Popen(
                    [airflow, name],
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # one process group each, to stop all it forks
                )
        if not common.benchkit.wait_until(self.ready, SETUP_TIMEOUT, every=0.5):
            raise RuntimeError(f"Airflow was not ready in {SETUP_TIMEOUT:.0f} s")

    def create_db(self) -> None:
        import psycopg2

        admin = psycopg2.connect(dbname="postgres", **PG)
        admin.autocommit = True
        with admin.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{self.db}"')
        admin.close()
        self.db_created = True

    def ready(self) -> bool:
        """The api-server answers and the scheduler and dag-processor have heartbeated."""
        self.check_alive()
        try:
            health = self.get("/monitor/health")
        except OSError:
            return False
        return all(
            (health.get(part) or {}).get("status") == "healthy"
            for part in ("metadatabase", "scheduler", "dag_processor")
        )

    def check_alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise RuntimeError(
                    f"airflow {name} exited with code {proc.returncode}:\n{self.tail(name)}"
                )

    # -- the REST API and the database --------------------------------------------------

    def request(self, method: str, path: str, body: Any = None) -> Any:
        req = urllib.request.Request(
            self.api + path,
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read())

    def get(self, path: str) -> Any:
        return self.request("GET", path)

    def sql(self, query: str, *args: Any) -> list[tuple[Any, ...]]:
        import psycopg2

        if self._pg is None:
            self._pg = psycopg2.connect(dbname=self.db, **PG)
            self._pg.autocommit = True
        with self._pg.cursor() as cur:
            cur.execute(query, args)
            return list(cur.fetchall())

    # -- teardown -------------------------------------------------------------------------

    def stop(self) -> None:
        with self._stopping:  # the timeout's thread and the main thread may both call it
            self._stop()

    def _stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        for proc in self.procs.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(max(0.1, deadline - time.monotonic()))
            # a component's children may outlive it: the whole group goes
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(5)
        if self._pg is not None:
            with contextlib.suppress(Exception):
                self._pg.close()
            self._pg = None
        if self.db_created:
            import psycopg2

            with contextlib.suppress(Exception):
                admin = psycopg2.connect(dbname="postgres", **PG)
                admin.autocommit = True
                with admin.cursor() as cur:
                    cur.execute(f'DROP DATABASE IF EXISTS "{self.db}" WITH (FORCE)')
                admin.close()
                self.db_created = False

    def tail(self, name: str, lines: int = 15) -> str:
        try:
            text = (self.home / f"{name}.log").read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def dag_file(a: Any, dag_id: str) -> str:
    """The DAG file of this graph: the template with the edges as a JSON literal."""
    edges = [
        [task_id(k), [task_id(p) for p in ps]] for k, ps in common.graph(a.shape, a.jobs, a.seed)
    ]
    text = DAG_TEMPLATE.read_text()
    return (
        text.replace("@PEERS@", json.dumps(str(HERE)))
        .replace("@DAG_ID@", json.dumps(dag_id))
        .replace("@EDGES@", json.dumps(edges))
    )


def make_run(af: Airflow, a: Any) -> Any:
    dag_id = f"orchid_bench_{a.shape}_{a.jobs}"
    run_id = f"bench_{secrets.token_hex(4)}"
    keys = {task_id(k): k for k, _ in common.graph(a.shape, a.jobs, a.seed)}
    extra: dict[str, Any] = {}

    def run() -> tuple[float, float, dict[str, common.Span]]:
        t0 = time.time()
        (af.dags / f"{dag_id}.py").write_text(dag_file(a, dag_id))
        while True:  # until the dag-processor has serialized the DAG, the trigger is a 404
            af.check_alive()
            try:
                af.request(
                    "POST", f"/dags/{dag_id}/dagRuns", {"dag_run_id": run_id, "logical_date": None}
                )
                break
            except urllib.error.HTTPError as exc:
                if exc.code not in (404, 400):
                    raise
                time.sleep(0.2)
        t1 = time.time()
        state = None
        while state not in ("success", "failed"):
            af.check_alive()
            time.sleep(0.5)
            rows = af.sql(
                "SELECT state FROM dag_run WHERE dag_id = %s AND run_id = %s", dag_id, run_id
            )
            state = rows[0][0] if rows else None
        tis = af.sql(
            "SELECT task_id, state, start_date, end_date FROM task_instance"
            " WHERE dag_id = %s AND run_id = %s",
            dag_id,
            run_id,
        )
        xcoms = af.sql(
            "SELECT task_id, value FROM xcom WHERE dag_id = %s AND run_id = %s AND key = 'return_value'",
            dag_id,
            run_id,
        )
        ends = [end.timestamp() for _, _, _, end in tis if end is not None]
        t2 = max(ends) if ends else time.time()
        spans = {keys[tid]: _span(value) for tid, value in xcoms if tid in keys}
        ti_spans = {
            keys[tid]: (start.timestamp(), end.timestamp())
            for tid, st, start, end in tis
            if st == "success" and isinstance(start, datetime) and isinstance(end, datetime)
        }
        extra.update(dag_run_state=state, ti_spans=ti_spans)
        return t1 - t0, t2 - t1, spans

    return run, extra


def _span(value: Any) -> common.Span:
    """An XCom return value back as (start, end): JSON text or already decoded."""
    if isinstance(value, (bytes, memoryview)):
        value = bytes(value).decode()
    if isinstance(value, str):
        value = json.loads(value)
    start, end = value
    return float(start), float(end)


def main() -> int:
    ap = common.parser("Apache Airflow 3 (standalone-like, LocalExecutor)")
    ap.set_defaults(jobs=None, timeout=1800)  # 500 layered jobs took ~14 min on a busy 2-core box
    a = ap.parse_args()
    if a.jobs is None:
        a.jobs = DEFAULT_JOBS.get(a.shape, 500)
    home = Path(tempfile.mkdtemp(prefix="orchid-airflow-"))
    af = Airflow(home)
    timer = threading.Timer(a.timeout, _timeout, args=(af, a.timeout))
    timer.daemon = True
    try:
        with contextlib.redirect_stdout(sys.stderr):  # stdout holds the JSON line alone
            af.start()
            import airflow

            run, extra = make_run(af, a)
            timer.start()
            row = common.measure("airflow", a, run)
            timer.cancel()
        parents = dict(common.graph(a.shape, a.jobs, a.seed))
        ti_step = common.step_latencies(parents, extra["ti_spans"])
        row.update(
            db="postgresql",
            version=airflow.__version__,
            executor_detail="LocalExecutor(parallelism=2)",
            ti_step_p50_ms=common.benchkit.ms(common.benchkit.percentile(ti_step, 0.5)),
            ti_step_p99_ms=common.benchkit.ms(common.benchkit.percentile(ti_step, 0.99)),
        )
        if extra["dag_run_state"] != "success":
            row["status"] = f"dag run {extra['dag_run_state']}; " + row["status"]
        common.benchkit.emit(row)
        return 0
    except Exception as exc:
        if af.timed_out.is_set():
            print(f"airflow run timed out after {a.timeout:.0f} s", file=sys.stderr)
            return 2
        for name in ("migrate", *COMPONENTS):
            if tail := af.tail(name, 8):
                print(f"--- {name}.log\n{tail}", file=sys.stderr)
        print(f"airflow run failed: {type(exc).__name__}: {exc}".splitlines()[0], file=sys.stderr)
        return 1
    finally:
        timer.cancel()
        af.stop()
        shutil.rmtree(home, ignore_errors=True)


def _timeout(af: Airflow, seconds: float) -> None:
    """Stop Airflow under the main thread, which then fails, reports the timeout and
    cleans up; if it is stuck past a grace period, end the process from here."""
    af.timed_out.set()
    af.stop()
    time.sleep(60)
    print(f"airflow run timed out after {seconds:.0f} s", file=sys.stderr, flush=True)
    shutil.rmtree(af.home, ignore_errors=True)
    os._exit(2)


if __name__ == "__main__":
    sys.exit(main())
