"""The payload cache, on both databases: objects stored once, references per user."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import pytest

from orchid.errors import InvalidInput, NotFound
from orchid.store import cache
from orchid.store.cache import Blobs, CacheObject
from orchid.store.db import Database


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def upload(
    db: Database, blobs: Blobs, data: bytes, owner: str, digest: str | None = None, now: float = 1.0
) -> tuple[CacheObject, bool]:
    with blobs.receive() as incoming:
        for i in range(0, len(data), 3):
            incoming.write(data[i : i + 3])
        with db.begin() as conn:
            return cache.add(conn, blobs, digest or sha(data), incoming, owner=owner, now=now)


def files_under(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


@pytest.fixture
def blobs(tmp_path: Path) -> Blobs:
    return Blobs(tmp_path / "cache")


def test_an_object_is_stored_once_at_its_digest(db: Database, blobs: Blobs) -> None:
    data = b"def f(): return 42\n"
    digest = sha(data)
    obj, created = upload(db, blobs, data, "alice", now=5.0)
    assert created and obj == CacheObject(digest, "alice", len(data), 5.0)
    assert files_under(blobs.root) == [f"{digest[:2]}/{digest[2:]}"]
    assert blobs.path(digest).read_bytes() == data
    assert blobs.size(digest) == len(data)

    again, created = upload(db, blobs, data, "alice", now=6.0)
    assert not created and again == obj  # idempotent: the first upload's time is kept
    bobs, created = upload(db, blobs, data, "bob", now=7.0)
    assert created and bobs.owner == "bob"
    assert files_under(blobs.root) == [f"{digest[:2]}/{digest[2:]}"]  # still one file


def test_the_file_goes_with_the_last_reference(db: Database, blobs: Blobs) -> None:
    data = b"shared"
    digest = sha(data)
    upload(db, blobs, data, "alice")
    upload(db, blobs, data, "bob")
    with db.begin() as conn:
        assert cache.remove(conn, blobs, digest, owner="alice") is False
    assert blobs.path(digest).exists()
    with pytest.raises(NotFound), db.begin() as conn:
        cache.remove(conn, blobs, digest, owner="alice")
    with db.begin() as conn:
        assert cache.remove(conn, blobs, digest, owner="bob") is True
    assert files_under(blobs.root) == []
    with db.engine.connect() as conn, pytest.raises(NotFound):
        cache.find(conn, digest, None)


def test_a_digest_mismatch_stores_nothing(db: Database, blobs: Blobs) -> None:
    wrong = sha(b"something else")
    with pytest.raises(InvalidInput, match=f"not {wrong}"):
        upload(db, blobs, b"payload", "alice", digest=wrong)
    assert files_under(blobs.root) == []  # the temporary file is gone too
    with db.engine.connect() as conn:
        assert cache.list_for(conn, "alice") == []


def test_an_interrupted_upload_leaves_no_file(blobs: Blobs) -> None:
    with pytest.raises(ConnectionError), blobs.receive() as incoming:
        incoming.write(b"half of it")
        assert incoming.path.exists()
        raise ConnectionError("client went away")
    assert files_under(blobs.root) == []


def test_an_upload_heals_a_lost_file(db: Database, blobs: Blobs) -> None:
    data = b"precious"
    upload(db, blobs, data, "alice")
    blobs.path(sha(data)).unlink()
    assert blobs.open(sha(data)) is None and blobs.size(sha(data)) is None
    _, created = upload(db, blobs, data, "alice")
    assert not created and blobs.path(sha(data)).read_bytes() == data


def test_find_and_list_are_per_owner(db: Database, blobs: Blobs) -> None:
    payloads = [f"object {i}".encode() for i in range(5)]
    for p in payloads:
        upload(db, blobs, p, "alice")
    upload(db, blobs, payloads[0], "bob")
    upload(db, blobs, b"bob only", "bob")
    with db.engine.connect() as conn:
        assert cache.find(conn, sha(payloads[1]), "alice").owner == "alice"
        with pytest.raises(NotFound, match="you have no cached object"):
            cache.find(conn, sha(payloads[1]), "bob")
        assert cache.find(conn, sha(payloads[1]), None).owner == "alice"  # admins
        mine = cache.list_for(conn, "alice")
        assert [o.sha256 for o in mine] == sorted(sha(p) for p in payloads)
        first = cache.list_for(conn, "alice", limit=2)
        rest = cache.list_for(conn, "alice", after=first[-1].sha256)
        assert first + rest == mine
        assert {o.sha256 for o in cache.list_for(conn, "bob")} == {
            sha(payloads[0]),
            sha(b"bob only"),
        }


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "abc",
        "A" * 64,
        "g" * 64,
        "0" * 63,
        "0" * 65,
        "../" + "0" * 61,
        "0" * 62 + "/x",
        "0" * 63 + "\n",
    ],
)
def test_paths_are_only_built_from_checked_digests(blobs: Blobs, bad: str) -> None:
    with pytest.raises(InvalidInput, match="64 lowercase hex"):
        blobs.path(bad)
    with pytest.raises(InvalidInput):
        cache.check_digest(bad)


def test_an_empty_object_is_fine(db: Database, blobs: Blobs) -> None:
    obj, created = upload(db, blobs, b"", "alice")
    assert created and obj.size == 0
    assert obj.sha256 == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    handle = blobs.open(obj.sha256)
    assert handle is not None
    with handle:
        assert handle.read() == b""


def test_concurrent_uploads_and_deletes_keep_references_and_file_in_step(
    db: Database, blobs: Blobs
) -> None:
    data = b"contended"
    digest = sha(data)
    created: list[bool] = []
    failures: list[BaseException] = []

    def same_user_uploads() -> None:
        try:
            created.append(upload(db, blobs, data, "alice")[1])
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=same_user_uploads) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures and sorted(created) == [False] * 5 + [True]

    with db.begin() as conn:
        cache.remove(conn, blobs, digest, owner="alice")

    def churn(owner: str) -> None:
        try:
            for _ in range(15):
                upload(db, blobs, data, owner)
                # only this thread drops this owner's reference: the file must be there
                if blobs.size(digest) != len(data):
                    raise AssertionError(f"{owner}'s reference lost its file")
                with db.begin() as conn:
                    cache.remove(conn, blobs, digest, owner=owner)
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=churn, args=(o,)) for o in ("bob", "carol")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures
    with db.engine.connect() as conn, pytest.raises(NotFound):
        cache.find(conn, digest, None)
    assert files_under(blobs.root) == []
