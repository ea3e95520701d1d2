"""The WSGI entry gunicorn serves panda-server through, in the tests (runs in .venv-panda).

panda-server is written for Apache: mod_wsgi's ``WSGIScriptAliasMatch`` puts the called
method in ``SCRIPT_NAME`` and mod_gridsite sets the client's certificate DN and VOMS
attributes. This shim sets the same keys, so that with ``token_authType = None`` every
caller is the production user ``/CN=orchid-test``. It binds to 127.0.0.1 only.
"""

import os

from pandaserver.server.panda import application as panda_application

DN = os.environ.get("ORCHID_PANDA_DN", "/CN=orchid-test")
FQAN = os.environ.get("ORCHID_PANDA_FQAN", "/orchid/Role=production")


def application(environ, start_response):
    environ["SCRIPT_NAME"] = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
    environ["PATH_INFO"] = ""
    environ.setdefault("SSL_CLIENT_S_DN", DN)
    environ.setdefault("GRST_CRED_0", "VOMS " + FQAN)
    return panda_application(environ, start_response)
