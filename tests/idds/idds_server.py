"""The real iDDS REST server on 127.0.0.1 for the comparison tests: PyPI's idds-server.

``make .venv-iddsserver/.installed`` (a prerequisite of ``make test``) installs
idds-server 2.6.21 (with idds-prompt, which its REST app imports, and the workflow
packages it decodes requests with) and gunicorn in a venv of their own. This module
makes a PostgreSQL database for it (schema ``doma_idds``: the server's stored procedures
name a schema), writes its ``idds.cfg`` and ``auth.cfg``, creates its tables
(``idds.orm.base.models.register_models``; the Alembic stamp that ``build_database``
adds is left out) and serves its Flask app (``idds.rest.v1.app.create_app``) with
gunicorn. Everything it started is stopped by PID and the database dropped.

Only the REST server runs: none of iDDS's daemons (Clerk, Transformer, Carrier, ...),
which need PanDA and Rucio. So a request stays ``New`` with no transform there.

Authentication: in production httpd terminates TLS and hands the client's DN and
certificate to the app (``SSL_CLIENT_S_DN``, ``SSL_CLIENT_CERT``); the app checks the DN
against ``[Users] allow_users`` of ``auth.cfg``. OIDC needs an IAM. Here a WSGI shim
(``SHIM``) plays httpd: it takes the client's token as a user name and passes
``/DC=org/DC=orchid/OU=Users/CN=<token>`` as the DN, so the token ``alice`` is the
user ``alice`` (a token that starts with ``/`` is the DN itself); it also mounts the app under ``/idds`` as httpd does.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests import servers

ROOT = Path(__file__).resolve().parents[2]
VENV = Path(os.environ.get("ORCHID_IDDS_SERVER_VENV", ROOT / ".venv-iddsserver"))
PG = servers.PG
SCHEMA = "doma_idds"

CONFIG = """[common]
logdir = {dir}/logs
loglevel = WARNING
[database]
default = postgresql://postgres@127.0.0.1:5432/{name}
schema = {schema}
pool_size = 4
echo = 0
[rest]
host = {url}/idds
cacher_dir = {dir}/cacher
"""

AUTH = """[common]
allow_vos = orchid
[Users]
allow_users = /DC=org/DC=orchid/
"""

# httpd's part: the DN of the client certificate (here: named by the token), and /idds
SHIM = """
from idds.rest.v1.app import create_app

app = create_app()


def application(environ, start_response):
    path = environ.get("PATH_INFO", "")
    if path.startswith("/idds"):
        environ["SCRIPT_NAME"] = "/idds"
        environ["PATH_INFO"] = path[len("/idds"):] or "/"
    user = environ.pop("HTTP_X_IDDS_AUTH_TOKEN", "") or "nobody"
    environ["HTTP_X_IDDS_AUTH_TYPE"] = "x509_proxy"
    if user.startswith("/"):  # a DN itself
        environ["SSL_CLIENT_S_DN"] = user
    else:
        environ["SSL_CLIENT_S_DN"] = "/DC=org/DC=orchid/OU=Users/CN=" + user
    environ["SSL_CLIENT_CERT"] = "(checked by httpd)"
    return app(environ, start_response)
"""

TABLES = (
    "import sqlalchemy as sa\n"
    "from idds.orm.base import models, session\n"
    "engine = session.get_engine(echo=False)\n"
    "with engine.begin() as conn:\n"
    "    conn.execute(sa.text('CREATE SCHEMA IF NOT EXISTS {schema}'))\n"
    "models.register_models(engine)\n"
)


def available() -> bool:
    return (VENV / "bin" / "gunicorn").exists()


# skipped without the venv, except in CI, where the fixture then fails saying how to make it
needs_server = pytest.mark.skipif(
    not available() and not os.environ.get("CI"),
    reason="no .venv-iddsserver: run `make .venv-iddsserver/.installed`",
)

# what the comparison scripts start with (after iddskit's PRELUDE): what answers look like
SHAPES = """
from enum import Enum


def shape(value):
    # what a value is, not what it holds: an enum by class and name, else the type's name
    if isinstance(value, Enum):
        return type(value).__name__ + "." + value.name
    return type(value).__name__


def row(r):
    return {k: shape(v) for k, v in r.items()}


def attempt(f):
    # the answer, or the exception the client raised
    try:
        got = f()
    except Exception as exc:
        return ["raised", type(exc).__name__, str(exc)]
    return list(got) if isinstance(got, tuple) else got


cm.setup_client()
"""


class IddsServer(servers.Running):
    """The iDDS REST server (gunicorn)."""


def start(folder: Path) -> IddsServer:
    """Database, configuration, tables and the REST server: about 5 s."""
    name = servers.create_database("orchid_idds_")
    server = IddsServer(f"http://127.0.0.1:{servers.free_port()}", folder, name)
    try:
        for sub in ("logs", "cacher"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        (folder / "idds.cfg").write_text(
            CONFIG.format(dir=folder, name=name, schema=SCHEMA, url=server.url)
        )
        (folder / "auth.cfg").write_text(AUTH)
        (folder / "iddsshim.py").write_text(SHIM)
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(folder),
            "IDDS_CONFIG": str(folder / "idds.cfg"),
            "IDDS_AUTH_CONFIG": str(folder / "auth.cfg"),
        }
        subprocess.run(
            [str(VENV / "bin" / "python"), "-c", TABLES.format(schema=SCHEMA)],
            env=env,
            cwd=folder,
            check=True,
            capture_output=True,
            timeout=120,
        )
        with (folder / "server.log").open("wb") as out:
            server.procs.append(
                subprocess.Popen(
                    [
                        str(VENV / "bin" / "gunicorn"),
                        "--bind",
                        server.url.removeprefix("http://"),
                        "--workers",
                        "1",
                        "--threads",
                        "4",
                        "--chdir",
                        str(folder),
                        "--no-control-socket",
                        "iddsshim:application",
                    ],
                    env=env,
                    cwd=folder,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
        servers.wait_for(f"{server.url}/idds/ping", server.procs, folder / "server.log", "iDDS")
        return server
    except BaseException:
        server.stop()
        raise
