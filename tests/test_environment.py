"""Environment variables are read in one place: the settings (orchid.settings, and the
file reader orchid.config), except where a module below says why."""

from __future__ import annotations

import ast
from pathlib import Path

import orchid

ROOT = Path(orchid.__file__).parent

READERS = {
    "settings.py": "the settings: every ORCHID_* setting",
    "config.py": "the settings file, and the variables a setting names (password_env, ...)",
    "jobvars.py": "inside a job: the variables Orchid set for it",
    "client/config.py": "the client, on the user's machine: ORCHID_URL, ORCHID_TOKEN",
    # not settings: what of the environment is handed on to a child process
    "executors/_process.py": "the allow-list of our variables a job inherits",
    "executors/poolworker.py": "inside a job: a pool worker resets its environment per job",
    "executors/pandajob.py": "inside a job: the payload inherits the pilot's environment",
    "generators/custom.py": "a custom generator command inherits the agent's environment",
    "executors/slurm.py": "sbatch gets the allow-list plus what sbatch itself reads "
    "(SLURM_CONF, SBATCH_*), which its jobs inherit",
    "worker/slurm.py": "`orchid worker --slurm`, on the user's machine: the pilots inherit "
    "the user's environment, as any job the user submits to Slurm does",
}
"""Modules that may read os.environ, and why."""

WRITES = {"update", "pop", "setdefault", "__setitem__", "__delitem__"}


def reads(tree: ast.AST) -> list[int]:
    """Lines that read the environment: os.getenv, or os.environ other than a write."""
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    found = []
    for node in ast.walk(tree):
        if not (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == "os"
            and node.attr in ("environ", "environb", "getenv", "getenvb")
        ):
            continue
        parent = parents.get(node)
        if node.attr.startswith("environ"):
            if isinstance(parent, ast.Subscript) and isinstance(parent.ctx, ast.Store | ast.Del):
                continue  # os.environ[k] = v, del os.environ[k]
            if isinstance(parent, ast.Attribute) and parent.attr in WRITES | {"_data"}:
                continue  # os.environ.update(...), the OS's own copy (poolworker)
        found.append(node.lineno)
    return found


def test_only_the_settings_read_environment_variables() -> None:
    offenders = []
    for path in sorted(ROOT.rglob("*.py")):
        name = path.relative_to(ROOT).as_posix()
        if name in READERS:
            continue
        lines = reads(ast.parse(path.read_text(encoding="utf-8")))
        offenders += [f"{name}:{line}" for line in lines]
    assert offenders == [], "read the environment through orchid.settings: " + ", ".join(offenders)


def test_the_check_finds_reads_and_lets_writes_pass() -> None:
    tree = ast.parse(
        "import os\n"
        "a = os.environ.get('X')\n"
        "b = os.getenv('Y')\n"
        "c = dict(os.environ)\n"
        "os.environ['Z'] = '1'\n"
        "os.environ.update({})\n"
        "del os.environ['Z']\n"
    )
    assert sorted(reads(tree)) == [2, 3, 4]


def test_every_exception_still_exists() -> None:
    for name in READERS:
        assert (ROOT / name).is_file(), f"{name} is gone: drop it from READERS"
