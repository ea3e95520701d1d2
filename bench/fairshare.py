"""Fair share (issue 21, item 2): users submitting big workflows at once onto few slots.

Each of ``--users`` users submits one workflow of ``--jobs`` jobs at the same moment; an
executor of ``--slots`` slots runs them. The carrier's real claim (``store.dispatch.
claim_ready``, on the real database) decides who gets each free slot; the executor is
simulated in event time (each job takes 0.5-1.5 s, seeded), so the run covers
``--horizon`` seconds of a busy service in a few minutes of wall time and the shares are
exact. Once with weights set (the fair-share path), once without (oldest first, the claim
of an instance with no quotas), same jobs, same durations.

It prints one JSON object per mode and user, a table, and plots slots per user over time
(``--plot``, fairshare.png). ``share`` is the user's part of the slot-seconds after the
first minute; ``target`` its weight's part; ``dev`` = share / target - 1 (overall and the
worst 60 s window).
"""

from __future__ import annotations

import argparse
import heapq
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import benchkit
import sqlalchemy as sa
from dag import database

from orchid.core.states import WorkflowStatus
from orchid.engine.submit import submit
from orchid.store import dispatch, jobs, quotas, workflows, works
from orchid.store.db import Database

WINDOW = 60.0
_END = (
    "UPDATE jobs SET status = 'succeeded', finished_at = :t, owner = NULL, lease_until = NULL "
    "WHERE id = :i"
)


def weights_of(users: int) -> list[int]:
    """1, 1, 2, 3, 1, 1, 2, 3, ...: several weights, each more than once."""
    return [(1, 1, 2, 3)[i % 4] for i in range(users)]


def setup(db: Database, users: int, n: int, fair: bool) -> list[str]:
    names = [f"user{i:02d}" for i in range(users)]
    t0 = 0.0
    for name in names:
        template = {
            "name": "big",
            "works": [{"name": "a", "noop": True, "jobs": [{"name": f"j{k}"} for k in range(n)]}],
        }
        wf = submit(db, template, base_dir=None, now=t0, owner=name)
        with db.begin() as conn:
            workflows.set_status(conn, wf, WorkflowStatus.RUNNING, "", t0)
            for w in works.list_for(conn, wf):
                works.set_ready(conn, w.id, {})
                jobs.release_roots(conn, w.id, t0)
                works.mark_running(conn, w.id, n, jobs.unpropagated(conn, w.id), t0)
    if fair:
        with db.begin() as conn:
            for name, w in zip(names, weights_of(users), strict=True):
                quotas.set_quota(conn, quotas.Quota("user", name, "weight", w), t0)
    return names


def simulate(db: Database, slots: int, horizon: float, seed: int) -> dict[str, Any]:
    """Run the slots in event time; (user, start, end) of every job, and claim timings."""
    rng = random.Random(seed)
    with db.begin() as conn:
        owner_of = {i: o for i, (o, _) in dispatch.workflow_owners(conn, range(1, 10_000)).items()}
    running: list[tuple[float, int, str, float]] = []  # (end, job, user, start)
    spans: list[tuple[str, float, float]] = []
    claim_s: list[float] = []
    t = 0.0
    w0 = time.perf_counter()
    while t < horizon:
        free = slots - len(running)
        if free > 0:
            c0 = time.perf_counter()
            with db.begin() as conn:
                got = dispatch.claim_ready(conn, "bench", t, 3600.0, free, None, "sim")
            claim_s.append(time.perf_counter() - c0)
            for c in got:
                heapq.heappush(
                    running, (t + rng.uniform(0.5, 1.5), c.id, owner_of[c.workflow_id], t)
                )
        if not running:
            break
        end, job, user, start = heapq.heappop(running)
        t = end
        with db.begin() as conn:
            conn.execute(sa.text(_END), {"t": t, "i": job})
        spans.append((user, start, end))
    return {"spans": spans, "claim_s": claim_s, "t": t, "wall_s": time.perf_counter() - w0}


def slot_seconds(spans: list[tuple[str, float, float]], a: float, b: float) -> dict[str, float]:
    out: dict[str, float] = {}
    for user, s, e in spans:
        overlap = min(e, b) - max(s, a)
        if overlap > 0:
            out[user] = out.get(user, 0.0) + overlap
    return out


def analyse(
    mode: str, names: list[str], weights: list[int], sim: dict[str, Any], a: Any
) -> list[dict[str, Any]]:
    spans, end = sim["spans"], min(sim["t"], a.horizon)
    total_w = sum(weights)
    after = slot_seconds(spans, WINDOW, end)
    busy = sum(after.values())
    windows = [
        slot_seconds(spans, s, s + WINDOW)
        for s in range(int(WINDOW), int(end - WINDOW) + 1, int(WINDOW))
    ]
    claims = sorted(sim["claim_s"])
    rows = []
    for name, w in zip(names, weights, strict=True):
        target = w / total_w
        share = after.get(name, 0.0) / busy if busy else 0.0
        worst = max(
            (abs(win.get(name, 0.0) / sum(win.values()) / target - 1) for win in windows if win),
            default=0.0,
        )
        rows.append(
            {
                "bench": "fairshare",
                "mode": mode,
                "db": a.db,
                "user": name,
                "weight": w,
                "target": round(target, 4),
                "share": round(share, 4),
                "dev": round(share / target - 1, 4),
                "worst_window_dev": round(worst, 4),
                "jobs_done": sum(1 for u, _, _ in spans if u == name),
                "jobs_per_s": round(len(spans) / end, 3),
                "utilisation": round(busy / ((end - WINDOW) * a.slots), 4),
                "sim_wall_s": round(sim["wall_s"], 1),
                "claim_ms_p50": round(1000 * benchkit.percentile(claims, 0.5), 2)
                if claims
                else None,
                "claim_ms_p95": round(1000 * benchkit.percentile(claims, 0.95), 2)
                if claims
                else None,
            }
        )
    return rows


def plot(results: dict[str, dict[str, Any]], names: list[str], a: Any, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(7 * len(results), 4.5), sharey=True)
    step = 10.0
    weights = weights_of(a.users)
    for ax, (mode, sim) in zip(axes, results.items(), strict=True):
        end = min(sim["t"], a.horizon)
        xs = [i * step for i in range(int(end / step))]
        per = {
            n: [slot_seconds(sim["spans"], x, x + step).get(n, 0.0) / step for x in xs]
            for n in names
        }
        ax.stackplot(
            xs,
            *[per[n] for n in names],
            labels=[f"{n} (w {w})" for n, w in zip(names, weights, strict=True)],
        )
        ax.set_title(f"{mode}: slots per user ({a.users} users, {a.slots} slots)")
        ax.set_xlabel("time (s, event time)")
        ax.set_ylim(0, a.slots)
    axes[0].set_ylabel("slots (10 s means)")
    axes[-1].legend(loc="center left", bbox_to_anchor=(1, 0.5), fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def claim_cost(a: Any) -> None:
    """The claim alone: take every ready job of ``--users`` workflows of ``--jobs`` jobs in
    batches of ``--batch``, with no quotas, with a running limit, with weights."""
    rows = []
    for mode in ("none", "limit", "weights"):
        home = Path(tempfile.mkdtemp(prefix="orchid-claimcost-"))
        with database(a.db, home) as url:
            db = Database(url)
            db.upgrade()
            names = setup(db, a.users, a.jobs, mode == "weights")
            if mode == "limit":
                with db.begin() as conn:
                    for name in names:
                        quotas.set_quota(conn, quotas.Quota("user", name, "running", 10**9), 0.0)
            took: list[float] = []
            n = 0
            while True:
                c0 = time.perf_counter()
                with db.begin() as conn:
                    got = dispatch.claim_ready(conn, "bench", 1.0, 3600.0, a.batch, None, "sim")
                took.append(time.perf_counter() - c0)
                n += len(got)
                if not got:
                    break
                if not a.keep_in_flight:  # the executor ran them: in flight stays one batch
                    with db.begin() as conn:
                        ids = ",".join(str(c.id) for c in got)
                        conn.execute(
                            sa.text(
                                f"UPDATE jobs SET status = 'succeeded', owner = NULL, lease_until = NULL WHERE id IN ({ids})"
                            )
                        )
            wall = sum(took)
            db.dispose()
        took.sort()
        row = {
            "bench": "claim_cost", "db": a.db, "quotas": mode, "users": a.users,
            "jobs": n, "batch": a.batch, "in_flight": "kept" if a.keep_in_flight else "one batch", "claims": len(took), "claim_s": round(wall, 2),
            "jobs_per_s": round(n / wall), "claim_ms_p50": round(1000 * took[len(took) // 2], 2),
            "claim_ms_p95": round(1000 * took[int(len(took) * 0.95)], 2),
        }  # fmt: skip
        benchkit.emit(row)
        rows.append(row)
    print(benchkit.table(rows, list(rows[0])), file=sys.stderr)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--users", type=int, default=10)
    p.add_argument("--jobs", type=int, default=10_000, help="jobs per user's workflow")
    p.add_argument("--slots", type=int, default=4)
    p.add_argument("--horizon", type=float, default=900.0, help="event-time seconds simulated")
    p.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--plot", type=Path, default=Path(__file__).with_name("fairshare.png"))
    p.add_argument("--batch", type=int, default=500, help="--claim-cost: rows per claim")
    p.add_argument(
        "--claim-cost",
        action="store_true",
        help="measure the claim alone (no quotas, a running limit, weights) instead",
    )
    p.add_argument(
        "--keep-in-flight",
        action="store_true",
        help="--claim-cost: leave claimed jobs in flight (the fair claim counts them all)",
    )
    a = p.parse_args()
    if a.claim_cost:
        claim_cost(a)
        return
    rows: list[dict[str, Any]] = []
    sims: dict[str, dict[str, Any]] = {}
    names: list[str] = []
    for mode in ("fair", "plain"):
        home = Path(tempfile.mkdtemp(prefix="orchid-fairshare-"))
        with database(a.db, home) as url:
            db = Database(url)
            db.upgrade()
            names = setup(db, a.users, a.jobs, mode == "fair")
            sims[mode] = simulate(db, a.slots, a.horizon, a.seed)
            db.dispose()
        for row in analyse(mode, names, weights_of(a.users), sims[mode], a):
            benchkit.emit(row)
            rows.append(row)
    fields = ("mode", "user", "weight", "target", "share", "dev", "worst_window_dev", "jobs_done",
              "jobs_per_s", "utilisation", "sim_wall_s", "claim_ms_p50", "claim_ms_p95")  # fmt: skip
    print(benchkit.table(rows, fields), file=sys.stderr)
    plot(sims, names, a, a.plot)


if __name__ == "__main__":
    main()
