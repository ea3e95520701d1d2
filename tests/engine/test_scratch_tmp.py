from enginekit import describe, ScriptedExecutor, jobs_of, works_of, workflow, loops_of
import time
from orchid.store import commands
def cmd(db, wf, kind):
    with db.begin() as c: return commands.add(c, wf, kind, time.time())
def st(db, cid):
    with db.begin() as c: return commands.get(c, cid)

def test_loop_retry(make_engine, db, tmp_path):
    fix = tmp_path / "fix"
    e = make_engine("local")
    t = {"name": "lr", "works": [{"name": "step", "command": ["sh", "-c", 'test "{i}" != 1 || test -e "$1"', "sh", str(fix)], "parameters": {"i": "${loop.iteration}"}},
        {"name": "after", "noop": True, "after": ["L"]}],
        "loops": [{"name": "L", "works": ["step"], "until": "loop.iteration >= 2", "max_iterations": 5}]}
    wf, res = e.run(t)
    print(describe(db, wf))
    fix.touch()
    c = cmd(db, wf, "retry")
    e.run_until(wf, lambda: st(db, c)[0] != "pending")
    print(st(db, c))
    res = e.drain(wf)
    print(describe(db, wf))

def test_bad_map(make_engine, db):
    e = make_engine()
    t = {"name": "bm", "parameters": {"items": 5, "empty": []}, "works": [{"name": "m", "noop": True, "map": {"items": "${params.items}"}},
       {"name": "e", "noop": True, "map": {"items": "${params.empty}"}}]}
    wf, res = e.run(t)
    print(describe(db, wf))

def test_retry_partial(make_engine, db, tmp_path):
    fix = tmp_path / "fix"
    e = make_engine("local")
    t = {"name": "rp", "works": [{"name": "A", "command": ["sh", "-c", 'test "{code}" = 0 || test -e "$1"', "sh", str(fix)], "map": {"items": [{"code": 0}, {"code": 1}]}, "on_failure": "continue"},
        {"name": "C", "noop": True, "after": ["A"]}, {"name": "D", "noop": True, "after": ["C"]}]}
    wf, res = e.run(t)
    print(describe(db, wf))
    fix.touch()
    c = cmd(db, wf, "retry")
    e.run_until(wf, lambda: st(db, c)[0] != "pending")
    print(st(db, c))
    res = e.drain(wf)
    print(describe(db, wf))
    print([(j.work_name, j.name, j.attempt, str(j.status)) for j in jobs_of(db, wf)])

def test_abort_pending(make_engine, db):
    e = make_engine()
    wf = e.submit({"name": "ap", "works": [{"name": "a", "noop": True}]})
    c = cmd(db, wf, "abort")
    res = e.drain(wf)
    print(describe(db, wf), st(db, c))
