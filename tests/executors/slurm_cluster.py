"""A real single-node Slurm for tests: munged, slurmctld and slurmd of Debian's slurm-wlm.

Everything lives under one folder (configuration, munge key and socket, state, spool, logs);
the ports are free ones picked at start, so each test process may have a cluster of its own.
The daemons run in the foreground as children of the test process (``slurmctld -D -i``,
``slurmd -D``) and are stopped by ``scontrol shutdown``, then by PID. ``SLURM_CONF`` is set
in this process's environment while the cluster runs, so ``sbatch`` and friends find it.

The node claims 8 CPUs, 16 GB and two GPUs (empty files under the folder stand for the
devices; ``config_overrides`` lets slurmd announce more than the machine has), so that
resource requests can be checked and several jobs run at once. Partitions: ``debug``
(default) and ``long``. No accounting (``sacct`` is off); ended jobs are written to the
``jobcomp/filetxt`` file ``jobcomp.txt``.

slurmd's spool (where a job's batch script is kept and run from, as the job's user) is a
folder of its own under /tmp that others may pass through, so that jobs submitted as other
users (``sbatch --uid``, the executor's ``run_as``) can run their scripts: the cluster's
folder may sit where they cannot reach (pytest's folders are closed to others).
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.executors.daemons import Daemons

START_DEADLINE_S = 60.0
DAEMONS = ("/usr/sbin/munged", "/usr/sbin/slurmctld", "/usr/sbin/slurmd")
CLIENTS = ("sbatch", "squeue", "scancel", "scontrol", "sinfo")


def available() -> str | None:
    """Why a cluster cannot be started here, or None."""
    missing = [d for d in DAEMONS if not os.access(d, os.X_OK)]
    missing += [c for c in CLIENTS if shutil.which(c) is None]
    if missing:
        return f"Slurm is not installed (`make slurm`): missing {', '.join(missing)}"
    if os.geteuid() != 0:
        return "slurmd needs root"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class SlurmCluster(Daemons):
    """One controller and one node on 127.0.0.1; see the module docstring."""

    def __init__(self, folder: Path, extra_config: str = "") -> None:
        self.folder = folder
        self.extra_config = extra_config  # more slurm.conf lines (the benchmark's tuning)
        self.conf = folder / "slurm.conf"
        self.jobcomp = folder / "log" / "jobcomp.txt"
        self.host = socket.gethostname().split(".")[0]
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._saved_conf: str | None = None
        self.spool: Path | None = None  # made at start, removed at stop

    def _write_config(self) -> None:
        f = self.folder
        for sub in ("munge", "state", "log", "run", "gpu"):
            (f / sub).mkdir(parents=True, exist_ok=True)
        key = f / "munge" / "munge.key"
        key.write_bytes(secrets.token_bytes(1024))
        key.chmod(0o400)
        self.spool = Path(tempfile.mkdtemp(prefix="orchid-slurmd-", dir="/tmp"))
        self.spool.chmod(0o711)  # jobs of other users run their scripts from it
        for i in range(2):
            (f / "gpu" / f"gpu{i}").touch()
        (f / "gres.conf").write_text(f"NodeName={self.host} Name=gpu File={f}/gpu/gpu[0-1]\n")
        self.conf.write_text(
            f"""ClusterName=orchidtest
SlurmctldHost={self.host}(127.0.0.1)
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={f}/munge/munge.sock
SlurmUser=root
SlurmdUser=root
StateSaveLocation={f}/state
SlurmdSpoolDir={self.spool}
SlurmctldPidFile={f}/run/slurmctld.pid
SlurmdPidFile={f}/run/slurmd.pid
SlurmctldLogFile={f}/log/slurmctld.log
SlurmdLogFile={f}/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc={self.jobcomp}
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=100
GresTypes=gpu
SlurmdParameters=config_overrides
MpiDefault=none
MailProg=/bin/true
ReturnToService=2
MinJobAge=300
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
KillWait=5
NodeName={self.host} NodeAddr=127.0.0.1 CPUs=8 RealMemory=16000 Gres=gpu:2 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
PartitionName=long Nodes=ALL MaxTime=INFINITE State=UP
{self.extra_config}"""
        )

    def _spawn(self, name: str, argv: list[str]) -> None:
        log = (self.folder / "log" / f"{name}.stdout").open("wb")
        self._procs[name] = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=self.env()
        )

    def env(self) -> dict[str, str]:
        """An environment whose Slurm commands talk to this cluster."""
        return {**os.environ, "SLURM_CONF": str(self.conf)}

    def start(self) -> None:
        self._write_config()
        self._saved_conf = os.environ.get("SLURM_CONF")
        os.environ["SLURM_CONF"] = str(self.conf)
        f = self.folder
        sock = f / "munge" / "munge.sock"
        self._spawn(
            "munged",
            [
                DAEMONS[0],
                "-f",
                "-F",
                f"--socket={sock}",
                f"--key-file={f}/munge/munge.key",
                f"--log-file={f}/log/munged.log",
                f"--pid-file={f}/run/munged.pid",
                f"--seed-file={f}/munge/munged.seed",
            ],
        )
        self._until(sock.exists, "munged's socket")
        self._spawn("slurmctld", [DAEMONS[1], "-D", "-i"])
        self._spawn("slurmd", [DAEMONS[2], "-D"])
        self._until(
            lambda: "idle" in self.run("sinfo", "-h", "-o", "%T", check=False), "an idle node"
        )

    def _until(self, check: object, what: str) -> None:
        deadline = time.monotonic() + START_DEADLINE_S
        while not check():  # type: ignore[operator]
            for name, p in self._procs.items():
                if p.poll() is not None:
                    log = (self.folder / "log" / f"{name}.stdout").read_text(errors="replace")
                    pytest.fail(f"{name} exited with {p.returncode}:\n{log[-2000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"Slurm: no {what} after {START_DEADLINE_S:g}s")
            time.sleep(0.1)

    def run(self, *argv: str, check: bool = True, stdin: str | None = None) -> str:
        """A Slurm command against this cluster; its stdout."""
        done = subprocess.run(
            list(argv),
            check=False,
            capture_output=True,
            text=True,
            env=self.env(),
            input=stdin,
            timeout=60,
        )
        if check and done.returncode != 0:
            raise AssertionError(f"{argv} failed: {done.stderr}")
        return done.stdout

    def _job_ids(self) -> list[str]:
        return self.run("squeue", "-h", "-o", "%i", check=False).split()

    def _running(self) -> bool:
        states = self.run("squeue", "-h", "-o", "%T", check=False).split()
        return any(s in ("RUNNING", "COMPLETING") for s in states)

    def stop(self) -> None:
        if "slurmctld" in self._procs and self._procs["slurmctld"].poll() is None:
            # jobs' processes outlive slurmd: end every job of this cluster first
            ids = self._job_ids()
            if ids:
                self.run("scancel", *ids, check=False)
            deadline = time.monotonic() + 20
            while self._running() and time.monotonic() < deadline:
                time.sleep(0.1)
            self.run("scontrol", "shutdown", check=False)
        for name in ("slurmd", "slurmctld", "munged"):
            p = self._procs.get(name)
            if p is None:
                continue
            try:
                p.wait(timeout=10 if name != "munged" else 0.1)
            except subprocess.TimeoutExpired:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(timeout=10)
        self._procs.clear()
        if self.spool is not None:
            shutil.rmtree(self.spool, ignore_errors=True)
            self.spool = None
        if self._saved_conf is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = self._saved_conf


@pytest.fixture(scope="session", name="slurm")
def slurm_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SlurmCluster]:
    """One cluster for the test process (tests using it share the xdist group "slurm")."""
    why = available()
    if why:
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)
    # a short folder: the munge socket's path must fit in a sockaddr_un
    folder = Path(tmp_path_factory.mktemp("slurm"))
    # Slurm's default batch_sched_delay=3 starts a submitted job at the next 3 s tick
    with SlurmCluster(folder, "SchedulerParameters=batch_sched_delay=0\n") as cluster:
        yield cluster
