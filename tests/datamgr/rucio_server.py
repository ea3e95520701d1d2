"""A real Rucio server on 127.0.0.1 for the tests: PyPI's ``rucio`` in its own venv.

``make .venv-rucio/.installed`` (a prerequisite of ``make test``) installs it. This
module makes a PostgreSQL database for it, writes its configuration, builds the
schema, starts the REST server (Flask on a free port) and the three transfer daemons
(conveyor submitter, poller, finisher) with Rucio's mock transfer tool, so that a
rule's locks really go from REPLICATING to OK; then registers a tape RSE and a disk
RSE and a dataset whose files are on tape. Everything it started is stopped by PID.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

from tests import servers

ROOT = Path(__file__).resolve().parents[2]
VENV = Path(os.environ.get("ORCHID_RUCIO_VENV", ROOT / ".venv-rucio"))
PG = servers.PG
USER, PASSWORD = "ddmlab", "secret"

CONFIG = """[common]
logdir = {dir}
loglevel = WARNING
[database]
default = {db}
[bootstrap]
userpass_identity = {user}
userpass_pwd = {password}
userpass_email = ddmlab@example.org
[policy]
permission = generic
schema = generic
lfn2pfn_algorithm_default = hash
[conveyor]
scheme = mock
transfertool = mock
[alembic]
cfg = {dir}/alembic.ini
[trace]
tracedir = {dir}/trace
[nongrid-trace]
tracedir = {dir}/trace
"""

ALEMBIC = """[alembic]
script_location = {migrations}
sqlalchemy.url = {db}
[loggers]
keys = root
[handlers]
keys = console
[formatters]
keys = generic
[logger_root]
level = WARN
handlers = console
[handler_console]
class = StreamHandler
args = (sys.stderr,)
level = NOTSET
formatter = generic
[formatter_generic]
format = %%(levelname)s %%(message)s
"""


def available() -> bool:
    return (VENV / "bin" / "python").exists()


class RucioServer(servers.Running):
    """The Rucio REST server and its transfer daemons."""

    grace = 2.0  # test daemons keep nothing: no long goodbyes

    def client(self) -> Any:
        from rucio.client import Client

        return Client(
            rucio_host=self.url,
            auth_host=self.url,
            account="root",
            auth_type="userpass",
            creds={"username": USER, "password": PASSWORD},
        )


def start(folder: Path) -> RucioServer:
    """Database, configuration, schema, server and daemons: about 15 s."""
    name = servers.create_database("orchid_rucio_")
    db = f"{PG}/{name}"
    site = next((VENV / "lib").glob("python3*/site-packages"))
    (folder / "trace").mkdir(parents=True, exist_ok=True)
    (folder / "rucio.cfg").write_text(
        CONFIG.format(dir=folder, db=db, user=USER, password=PASSWORD)
    )
    (folder / "alembic.ini").write_text(
        ALEMBIC.format(migrations=site / "rucio/db/sqla/migrate_repo", db=db)
    )
    env = {**os.environ, "RUCIO_CONFIG": str(folder / "rucio.cfg"), "RUCIO_HOME": str(folder)}
    py = str(VENV / "bin" / "python")
    server = RucioServer(f"http://127.0.0.1:{servers.free_port()}", folder, name)
    try:
        subprocess.run(
            [
                py,
                "-c",
                "from rucio.db.sqla.util import build_database, create_base_vo, "
                "create_root_account as r; build_database(); create_base_vo(); r()",
            ],
            env=env,
            check=True,
            capture_output=True,
            timeout=120,
        )
        port = server.url.rsplit(":", 1)[1]

        def spawn(*argv: str, log: str) -> None:
            with (folder / log).open("wb") as out:
                server.procs.append(
                    subprocess.Popen(
                        argv, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
                    )
                )

        spawn(
            str(VENV / "bin" / "flask"),
            "--app",
            "rucio.web.rest.flaskapi.v1.main",
            "run",
            "-h",
            "127.0.0.1",
            "-p",
            port,
            log="server.log",
        )
        for daemon, extra in (
            ("submitter", ()),
            ("poller", ("--older-than", "0")),
            ("finisher", ()),
        ):
            spawn(
                str(VENV / "bin" / f"rucio-conveyor-{daemon}"),
                "--sleep-time",
                "1",
                *extra,
                log=f"{daemon}.log",
            )
        servers.wait_for(
            f"{server.url}/ping", server.procs, folder / "server.log", "Rucio", tail=800
        )
        return server
    except BaseException:
        server.stop()
        raise


def add_tape_dataset(client: Any, scope: str, dataset: str, sizes: dict[str, int]) -> None:
    """A tape RSE and a disk RSE (mock protocol), and a dataset whose files are on tape."""
    existing = {r["rse"] for r in client.list_rses()}
    for rse, kind in (("TAPE", "TAPE"), ("DISK", "DISK")):
        if rse in existing:
            continue
        client.add_rse(rse, rse_type=kind, deterministic=True)
        client.add_rse_attribute(rse, "fts", "mock")
        wan = {
            "read": 1,
            "write": 1,
            "delete": 1,
            "third_party_copy_read": 1,
            "third_party_copy_write": 1,
        }
        client.add_protocol(
            rse,
            {
                "scheme": "mock",
                "hostname": "localhost",
                "port": 0,
                "prefix": f"/{rse.lower()}/",
                "impl": "rucio.rse.protocols.mock.Default",
                "domains": {"lan": {"read": 1, "write": 1, "delete": 1}, "wan": wan},
            },
        )
        client.set_local_account_limit("root", rse, -1)
    if "DISK" not in existing:
        client.add_distance("TAPE", "DISK", {"distance": 1})
    if scope not in client.list_scopes():
        client.add_scope("root", scope)
    files = [
        {"scope": scope, "name": n, "bytes": b, "adler32": "0cc737eb"} for n, b in sizes.items()
    ]
    client.add_replicas("TAPE", files)
    client.add_dataset(scope, dataset)
    client.attach_dids(scope, dataset, [{"scope": scope, "name": n} for n in sizes])
