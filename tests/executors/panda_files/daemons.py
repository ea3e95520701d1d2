"""The two periodic duties of a PanDA installation the tests need (runs in .venv-panda).

- What pg_cron does in production: ``CALL doma_panda.jedi_refr_mintaskids_bystatus()``
  (JEDI looks for tasks from the ids it stores) every ``--refresh`` seconds.
- What panda-server's ``add_main`` daemon does: a job a pilot reported as ended waits in
  ``holding`` with its output report until the adder turns it ``finished`` or ``failed``
  and tells JEDI. The server's daemons are off in the tests (they would want ATLAS
  services); this loop runs the server's own ``AdderGen`` on every unlocked report.

Stopped by SIGTERM (the fixture kills its process group).
"""

import argparse
import signal
import sys
import time

import psycopg2
from pandaserver.brokerage.SiteMapper import SiteMapper
from pandaserver.config import panda_config
from pandaserver.dataservice.adder_gen import AdderGen
from pandaserver.taskbuffer.TaskBuffer import taskBuffer

NAME = "orchid-adder"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--refresh", type=float, default=2.0)
    parser.add_argument("--interval", type=float, default=0.5)
    ns = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    taskBuffer.init(
        panda_config.dbhost, panda_config.dbpasswd, nDBConnection=1, useTimeout=True, requester=NAME
    )
    site_mapper = SiteMapper(taskBuffer)
    refresher = psycopg2.connect(
        host=panda_config.dbhost,
        port=panda_config.dbport,
        dbname=panda_config.dbname,
        user=panda_config.dbuser,
        password=panda_config.dbpasswd,
    )
    refresher.autocommit = True
    next_refresh = 0.0
    while True:
        now = time.monotonic()
        if now >= next_refresh:
            next_refresh = now + ns.refresh
            with refresher.cursor() as cur:
                cur.execute("CALL doma_panda.jedi_refr_mintaskids_bystatus()")
        reports = (
            taskBuffer.listJobOutputReport(
                only_unlocked=True, time_limit=10, limit=1000, grace_period=0
            )
            or []
        )
        for panda_id, job_status, attempt_nr, _ in reports:
            if taskBuffer.lockJobOutputReport(
                panda_id=panda_id, attempt_nr=attempt_nr, pid=NAME, time_limit=10
            ):
                AdderGen(
                    taskBuffer,
                    panda_id,
                    job_status,
                    attempt_nr,
                    ignore_tmp_error=False,
                    siteMapper=site_mapper,
                    pid=NAME,
                    prelock_pid=NAME,
                ).run()
        if not reports:
            time.sleep(ns.interval)


if __name__ == "__main__":
    main()
