"""The WSGI entry gunicorn serves panda-server through, in the tests (runs in .venv-panda).

panda-server is written for Apache: mod_wsgi's ``WSGIScriptAliasMatch`` puts the called
method in ``SCRIPT_NAME`` and mod_gridsite sets the client's certificate DN and VOMS
attributes. This shim sets the same keys, so that with ``token_authType = None`` every
caller is the production user ``/CN=orchid-test``. It binds to 127.0.0.1 only.

``GET /cache/NAME`` serves the server's cache folder, as the ``Alias /cache`` of PanDA's
Apache configuration does: pilots download ``transPath`` scripts and sandboxes there.
"""

import os

from pandaserver.config import panda_config
from pandaserver.server.panda import application as panda_application

DN = os.environ.get("ORCHID_PANDA_DN", "/CN=orchid-test")
FQAN = os.environ.get("ORCHID_PANDA_FQAN", "/orchid/Role=production")


def cache_file(name, start_response):
    path = os.path.join(panda_config.cache_dir, os.path.basename(name))
    if not name or not os.path.isfile(path):
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found"]
    with open(path, "rb") as f:
        data = f.read()
    start_response(
        "200 OK", [("Content-Type", "application/octet-stream"), ("Content-Length", str(len(data)))]
    )
    return [data]


def application(environ, start_response):
    path = environ.get("PATH_INFO", "")
    if path.startswith("/cache/") and environ.get("REQUEST_METHOD") == "GET":
        return cache_file(path[len("/cache/") :], start_response)
    environ["SCRIPT_NAME"] = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
    environ["PATH_INFO"] = ""
    environ.setdefault("SSL_CLIENT_S_DN", DN)
    environ.setdefault("GRST_CRED_0", "VOMS " + FQAN)
    return panda_application(environ, start_response)
