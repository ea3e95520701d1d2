"""A real PanDA on 127.0.0.1 for the tests: panda-server 1.0.4 with JEDI, on PostgreSQL.

``make .venv-panda/.installed`` (a prerequisite of ``make test``) installs panda-server,
panda-client, gunicorn and psycopg2 into a venv of their own. :func:`start` then

1. makes a PostgreSQL database and a login role of its own (unique names, dropped by
   :meth:`PandaServer.stop`) and loads PanDA's schema scripts into it
   (``panda_files/schema``: third-party, unchanged, see its ORIGIN.md), changing at load
   time only the owner role; pg_cron and pg_partman are not installed, so the partitioned
   tables get a DEFAULT partition each instead of pg_partman's;
2. adds one queue (``panda_files/site.sql``) and writes the server's and JEDI's
   configuration (``panda_files/*.cfg``; ``panda_common.cfg`` is the installed template
   with the log folder changed);
3. starts, each in a process group of its own: gunicorn serving panda-server through
   ``panda_files/wsgi_noauth.py`` on a free port (no TLS, no authentication: every caller
   is ``/CN=orchid-test``), JEDI (``JediMaster``, with its message processor listening on
   the local RabbitMQ's STOMP port for iDDS's ``file_processing`` messages), and
   ``panda_files/daemons.py``, which does what pg_cron and the server's adder daemon do;
4. waits until the server answers ``system/is_alive``.

The only stand-in is the pilot (tests/executors/panda_pilot.py). Everything is stopped
by process group.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import sqlalchemy as sa

from tests import servers

ROOT = Path(__file__).resolve().parents[2]
VENV = Path(os.environ.get("ORCHID_PANDA_VENV", ROOT / ".venv-panda"))
FILES = Path(__file__).resolve().parent / "panda_files"
PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
STOMP_PORT = int(os.environ.get("ORCHID_TEST_STOMP_PORT", "61613"))
SITE = "ORCHID_TEST"
VO = "wlcg"
CLOUD = "US"  # the queue's (site.sql)
PROD_SOURCE_LABEL = "test"
# JEDI's own queues (its message-driven agents send each other task triggers)
INTERNAL_QUEUES = ("jedi_contents_feeder", "jedi_job_generator", "jedi_jobtaskstatus")
# the order of PanDA's own loader (schema/panda_db_init.sh), without pg_cron and pg_partman
SCHEMA_FILES = [
    "pg_PANDA_TABLE.sql",
    "pg_PANDA_SEQUENCE.sql",
    "pg_PANDA_FUNCTION.sql",
    "pg_PANDA_TRIGGER.sql",
    "pg_PANDA_SCHEDULER_JOBS.sql",
    "pg_PANDAMETA_TABLE.sql",
    "pg_PANDAMETA_SEQUENCE.sql",
    "pg_PANDAARCH_TABLE.sql",
    "pg_PANDABIGMON_TABLE.sql",
    "pg_PANDABIGMON_VIEW.sql",
    "pg_PANDABIGMON_SEQUENCE.sql",
    "pg_PANDABIGMON_TRIGGER.sql",
    "pg_PANDABIGMON_PROCEDURE.sql",
    "pg_DEFT_TABLE.sql",
]
# what pg_partman would have made: a DEFAULT partition for every partitioned table
DEFAULT_PARTITIONS = """DO $$
DECLARE r record;
BEGIN
  FOR r IN SELECT n.nspname, c.relname FROM pg_partitioned_table p
           JOIN pg_class c ON c.oid = p.partrelid JOIN pg_namespace n ON n.oid = c.relnamespace
  LOOP
    EXECUTE format('CREATE TABLE IF NOT EXISTS %I.%I PARTITION OF %I.%I DEFAULT',
                   r.nspname, r.relname || '_default', r.nspname, r.relname);
    EXECUTE format('ALTER TABLE %I.%I OWNER TO @DBUSER@', r.nspname, r.relname || '_default');
  END LOOP;
END $$;
"""


def available() -> bool:
    return (VENV / ".installed").exists()


def _site_packages() -> Path:
    (found,) = (VENV / "lib").glob("python3*/site-packages")
    return found


def _fill(text: str, values: dict[str, str]) -> str:
    return re.sub(r"@([A-Z_]+)@", lambda m: values[m.group(1)], text)


@dataclass
class PandaServer:
    """A running PanDA: its URLs, its database, its queue, and what to stop."""

    home: Path
    port: int
    dbname: str
    dbuser: str
    destination: str  # the STOMP queue JEDI's message processor listens on

    @property
    def status_destination(self) -> str:
        """The STOMP queue of the server's job and JEDI's task status messages."""
        return status_destination(self.destination)

    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def url(self) -> str:
        """What Orchid's ``url`` setting names: the server's ``/server/panda`` base."""
        return f"http://127.0.0.1:{self.port}/server/panda"

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/v1"

    @property
    def db_url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:5432/{self.dbname}"

    def sql(self, statement: str, **params: object) -> list[sa.Row[tuple[object, ...]]]:
        """Read PanDA's tables (tests look at what the server stored)."""
        engine = sa.create_engine(self.db_url)
        try:
            with engine.begin() as conn:
                result = conn.execute(sa.text(statement), params)
                return list(result) if result.returns_rows else []
        finally:
            engine.dispose()

    def log(self, name: str) -> str:
        path = self.home / "log" / name
        return path.read_text(errors="replace") if path.exists() else ""

    def check(self) -> None:
        """Fail if a process of the installation died."""
        for name, process in self.processes.items():
            if name == "jedi":  # JediMaster forks its master and exits: look at that one
                pid_file = self.home / "jedi.pid"
                try:
                    os.kill(int(pid_file.read_text().strip()), 0)
                    continue
                except (OSError, ValueError):
                    if process.poll() is None:
                        continue  # still starting
            if process.poll() is not None:
                tail = (self.home / "log" / f"{name}.out").read_text(errors="replace")[-3000:]
                raise RuntimeError(f"PanDA's {name} exited ({process.returncode}):\n{tail}")

    def jedi_group(self) -> int | None:
        """JediMaster daemonizes into a session of its own: its master's group."""
        try:
            return os.getpgid(int((self.home / "jedi.pid").read_text().strip()))
        except (OSError, ValueError):
            return None

    def stop(self) -> None:
        """TERM every process group, KILL what is left after 10 s, drop the database."""
        groups = [p.pid for p in self.processes.values()]
        jedi = self.jedi_group()
        if jedi is not None:
            groups.append(jedi)
        _signal(groups, signal.SIGTERM)
        end = time.monotonic() + 10
        while time.monotonic() < end and _alive(groups):
            for process in self.processes.values():
                process.poll()  # reap them, or their groups never empty
            time.sleep(0.1)
        _signal(groups, signal.SIGKILL)
        for process in self.processes.values():
            process.wait(timeout=10)
        self.processes.clear()
        self._delete_queues()
        admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{self.dbname}" WITH (FORCE)'))
                conn.execute(sa.text(f'DROP ROLE IF EXISTS "{self.dbuser}"'))
        finally:
            admin.dispose()

    def _delete_queues(self) -> None:
        """The broker's queues of this installation (they outlive their consumers)."""
        names = [self.destination, self.status_destination]
        names += [f"{self.destination}.{name}" for name in INTERNAL_QUEUES]
        for name in names:
            with contextlib.suppress(OSError, subprocess.SubprocessError):
                subprocess.run(
                    ["rabbitmqctl", "-q", "delete_queue", name.removeprefix("/queue/")],
                    capture_output=True,
                    timeout=60,
                    check=False,
                )


def _signal(groups: list[int], sig: int) -> None:
    for group in groups:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, sig)


def _alive(groups: list[int]) -> bool:
    for group in groups:
        try:
            os.killpg(group, 0)
            return True
        except ProcessLookupError:
            continue
    return False


def _psql(dbname: str, script: str, *, check: bool = True) -> None:
    """Run ``script`` as the database's own role (so that it owns what the script makes)."""
    done = subprocess.run(
        ["psql", "-q", "-h", "127.0.0.1", "-U", dbname, "-d", dbname, "-f", "-"],
        input=script.encode(),
        capture_output=True,
        check=False,
    )
    if check and done.returncode != 0:
        raise RuntimeError(f"psql failed: {done.stderr.decode(errors='replace')[-2000:]}")


def _make_database(dbname: str, dbuser: str, password: str) -> None:
    admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            servers.drop_orphans(conn, "orchid_panda_", roles=True)
            conn.execute(sa.text(f"CREATE ROLE \"{dbuser}\" LOGIN PASSWORD '{password}'"))
            conn.execute(sa.text(f'ALTER ROLE "{dbuser}" SET search_path = doma_panda,public'))
            conn.execute(sa.text(f'CREATE DATABASE "{dbname}" OWNER "{dbuser}"'))
    finally:
        admin.dispose()
    values = {"DBUSER": dbuser, "SITE_NAME": SITE}
    for name in SCHEMA_FILES:
        text = re.sub(
            r"(?i)OWNER TO panda;", f"OWNER TO {dbuser};", (FILES / "schema" / name).read_text()
        )
        # the last statements of the scheduler file make a view of the monitor's over a
        # table this schema version lacks: harmless
        _psql(dbname, text, check=name != "pg_PANDA_SCHEDULER_JOBS.sql")
    _psql(dbname, _fill(DEFAULT_PARTITIONS, values))
    _psql(dbname, (FILES / "schema" / "post_step_panda.sql").read_text())
    major, minor, patch = (FILES / "schema" / "version").read_text().strip().split(".")
    _psql(
        dbname,
        "INSERT INTO doma_panda.pandadb_version (component, major, minor, patch) "
        f"VALUES ('PanDA', '{major}', '{minor}', '{patch}');\n"
        f"INSERT INTO doma_panda.pandadb_version (component, major, minor, patch) "
        f"VALUES ('SERVER', '{major}', '{minor}', '{patch}');\n"
        f"INSERT INTO doma_panda.pandadb_version (component, major, minor, patch) "
        f"VALUES ('JEDI', '{major}', '{minor}', '{patch}');\n",
        check=False,
    )
    _psql(dbname, _fill((FILES / "site.sql").read_text(), values))


def _configure(home: Path, values: dict[str, str], destination: str) -> None:
    etc = home / "etc" / "panda"
    etc.mkdir(parents=True)
    for folder in ("log", "cache", "keys", "certs", "etc/auth"):
        (home / folder).mkdir(parents=True, exist_ok=True)
    (home / "etc" / "token_cache_config.json").write_text("{}")
    for name in ("panda_server.cfg", "panda_jedi.cfg"):
        (etc / name).write_text(_fill((FILES / name).read_text(), values))
    template = (VENV / "etc" / "panda" / "panda_common.cfg.rpmnew").read_text()
    common = re.sub(r"(?m)^logdir\s*=.*$", f"logdir={home / 'log'}", template)
    common = re.sub(r"(?m)^log_level\s*=.*$", "log_level=INFO", common)
    (etc / "panda_common.cfg").write_text(common)
    # JEDI's message-driven path, as iDDS uses it: Orchid's file_processing messages go to
    # the processing plugin, which marks the files staged and triggers the contents
    # feeder, which triggers the job generator; each of these queues is on the broker
    queues = {"idds": destination}
    queues.update({name: f"{destination}.{name}" for name in INTERNAL_QUEUES})
    # JEDI's task status messages go where the server's job status messages go (Orchid's
    # status_destination), as they go to iDDS in production
    queues["jedi_jobtaskstatus"] = status_destination(destination)
    plugins = {
        "idds": ("processing_msg_processor", "ProcessingMsgProcPlugin"),
        "jedi_contents_feeder": (
            "jedi_contents_feeder_msg_processor",
            "JediContentsFeederMsgProcPlugin",
        ),
        "jedi_job_generator": (
            "jedi_job_generator_msg_processor",
            "JediJobGeneratorMsgProcPlugin",
        ),
    }
    config = {
        "mb_servers": {
            "local": {
                "host_port_list": [f"127.0.0.1:{STOMP_PORT}"],
                "username": "guest",
                "passcode": "guest",
                "vhost": "/",
                "send_heartbeat_ms": 10000,
            }
        },
        "queues": {
            name: {"server": "local", "destination": dest, "enable": True}
            for name, dest in queues.items()
        },
        "processors": {
            name: {
                "enable": True,
                "module": f"pandajedi.jedimsgprocessor.{module}",
                "name": cls,
                "in_queue": name,
                "n_threads": 1,
            }
            for name, (module, cls) in plugins.items()
        },
    }
    (etc / "jedi_msg_proc_config.json").write_text(json.dumps(config, indent=1))
    server_queues = {
        name: {"server": "local", "destination": status_destination(destination), "enable": True}
        for name in ("panda_jobstatus", "panda_jedi")
    }
    server_config = {"mb_servers": config["mb_servers"], "queues": server_queues}
    (etc / "panda_mq_config.json").write_text(json.dumps(server_config, indent=1))


def status_destination(destination: str) -> str:
    """Where the server and JEDI send job and task status messages."""
    return f"{destination}.status"


def environment(home: Path, port: int) -> dict[str, str]:
    """What panda-server, JEDI and panda-client read: every URL on this server (else
    importing pandaclient, as the server does too, looks up CERN's hosts)."""
    base = f"http://127.0.0.1:{port}"
    return {
        "PANDA_HOME": str(home),
        "PANDA_URL": f"{base}/server/panda",
        "PANDA_URL_SSL": f"{base}/server/panda",
        "PANDACACHE_URL": f"{base}/server/panda",
        "PANDA_API_URL": f"{base}/api/v1",
        "PANDA_API_URL_SSL": f"{base}/api/v1",
        "PANDA_BEHIND_REAL_LB": "1",
        "PANDA_CONFIG_ROOT": str(home / "client"),
        "PANDA_NO_ROOT": "1",
    }


def start(home: Path, *, timeout: float = 120.0) -> PandaServer:
    """Install a PanDA in ``home`` (a fresh folder) and start it; see the module docstring."""
    if not available():
        raise RuntimeError(f"no PanDA venv at {VENV}: `make .venv-panda/.installed`")
    tag = f"{os.getpid()}_{uuid.uuid4().hex[:8]}"
    dbname = dbuser = f"orchid_panda_{tag}"
    password = uuid.uuid4().hex
    port = servers.free_port()
    destination = f"/queue/orchid.panda.{tag}"
    server = PandaServer(home, port, dbname, dbuser, destination)
    site = _site_packages()
    values = {
        "HOME": str(home),
        "VENV": str(VENV),
        "SITE": str(site),
        "DBUSER": dbuser,
        "DBPASSWORD": password,
        "DBNAME": dbname,
        "PORT": str(port),
        "SITE_NAME": SITE,
    }
    try:
        _make_database(dbname, dbuser, password)
        _configure(home, values, destination)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PANDA", "PYTHON"))}
        env.update(environment(home, port))
        env["PYTHONPATH"] = os.pathsep.join(
            [str(FILES), str(site / "pandacommon"), str(site / "pandaserver")]
        )
        python = str(VENV / "bin" / "python")
        commands = {
            "gunicorn": [
                str(VENV / "bin" / "gunicorn"),
                "--chdir",
                str(FILES),
                "-w",
                "1",
                "--threads",
                "8",
                "-b",
                f"127.0.0.1:{port}",
                "--timeout",
                "300",
                "--graceful-timeout",
                "3",
                "--no-control-socket",
                "wsgi_noauth:application",
            ],
            "jedi": [
                python,
                "-u",
                str(site / "pandajedi" / "jediorder" / "JediMaster.py"),
                "--pid",
                str(home / "jedi.pid"),
            ],
            "daemons": [python, "-u", str(FILES / "daemons.py")],
        }
        for name, argv in commands.items():
            with open(home / "log" / f"{name}.out", "ab") as out:
                server.processes[name] = subprocess.Popen(
                    argv,
                    cwd=home,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
        _wait_alive(server, timeout)
    except BaseException:
        server.stop()
        raise
    return server


def _wait_alive(server: PandaServer, timeout: float) -> None:
    end = time.monotonic() + timeout
    while True:
        server.check()
        try:
            alive = httpx.get(f"{server.api}/system/is_alive", timeout=5).status_code == 200
            if alive and server.jedi_group() is not None:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > end:
            raise RuntimeError(f"PanDA did not answer within {timeout:g}s")
        time.sleep(0.25)


if __name__ == "__main__":  # by hand: python -m tests.executors.panda_server FOLDER
    srv = start(Path(sys.argv[1]))
    print(srv.url, srv.dbname, srv.destination, flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        signal.pause()
    finally:
        srv.stop()
