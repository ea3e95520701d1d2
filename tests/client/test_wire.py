"""The client's wire formats and retries, against scripted HTTP answers (no Orchid server)."""

from __future__ import annotations

import gzip
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from orchid.client import Client, Forbidden, Invalid, Rejected, Retry, ServerError, Unreachable
from orchid.client.client import _byte_range
from orchid.client.errors import from_response
from orchid.client.sse import Event, parse
from orchid.client.submission import gzip_lines


def test_parse_server_sent_events() -> None:
    lines = [
        ": keep-alive",
        "",
        "id: 7",
        "event: work.running",
        'data: {"workflow_id": 3, "at": 12.5, "work_id": 1}',
        "",
        "data: line one",
        "data: line two",
        "",
        "event: end",
        "data: {}",
        "",
        "id: 9",
        "event: cut-off",  # no blank line: the stream ended mid-event
    ]
    events = list(parse(lines))
    assert events == [
        Event(7, "work.running", {"workflow_id": 3, "at": 12.5, "work_id": 1}),
        Event(None, "message", {"text": "line one\nline two"}),
        Event(None, "end", {}),
    ]
    assert (events[0].workflow_id, events[0].at) == (3, 12.5)


@pytest.mark.parametrize(
    ("start", "end", "header"),
    [
        (None, None, None),
        (0, None, "bytes=0-"),
        (10, None, "bytes=10-"),
        (None, 10, "bytes=0-9"),
        (5, 10, "bytes=5-9"),
        (5, 5, ""),
        (-100, None, "bytes=-100"),
    ],
)
def test_byte_ranges_follow_slicing(start: int | None, end: int | None, header: str | None) -> None:
    assert _byte_range(start, end) == header


def test_impossible_ranges_are_refused() -> None:
    with pytest.raises(ValueError, match="negative start"):
        _byte_range(-5, 10)
    with pytest.raises(ValueError, match="cannot be negative"):
        _byte_range(0, -1)


def test_error_bodies() -> None:
    problems = [{"field": "works[0].x", "error": "bad"}, {"field": "name", "error": "missing"}]
    invalid = from_response(
        422, {"error": "2 problems", "field": "works[0].x", "problems": problems}, ""
    )
    assert isinstance(invalid, Invalid) and str(invalid) == "2 problems"
    assert invalid.problems == (("works[0].x", "bad"), ("name", "missing"))
    assert isinstance(from_response(403, {"error": "no"}, "x"), Forbidden)
    teapot = from_response(418, None, "HTTP 418 I'm a teapot")
    assert type(teapot) is Rejected and str(teapot) == "HTTP 418 I'm a teapot"
    assert isinstance(from_response(502, "<html>", "HTTP 502"), ServerError)


def test_job_lines_are_gzipped_json_lines() -> None:
    chunks = list(gzip_lines(b'{"template": "t"}', ['{"a": 1}\n', '{"b": 2}', "x" * 300_000]))
    text = gzip.decompress(b"".join(chunks)).decode()
    assert text == '{"template": "t"}\n{"a": 1}\n{"b": 2}\n' + "x" * 300_000 + "\n"


class Scripted:
    """An HTTP server that answers the n-th request with the n-th scripted answer, then
    closes the connection (an event stream cut off mid-way, a 503...), and logs the paths."""

    def __init__(self, answers: list[tuple[int, str, str]]) -> None:
        self.answers = list(answers)
        self.paths: list[str] = []
        scripted = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                scripted.paths.append(self.path)
                status, kind, body = scripted.answers.pop(0) if scripted.answers else (500, "", "")
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", kind or "text/plain")
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def __enter__(self) -> Scripted:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


SSE = "text/event-stream"
QUICK = Retry(attempts=3, backoff=0.01, max_delay=0.01)


def test_a_cut_event_stream_is_picked_up_where_it_stopped() -> None:
    answers = [
        (200, SSE, 'id: 4\nevent: work.running\ndata: {"work_id": 1}\n\nid: 5\nevent: half'),
        (503, "application/json", '{"error": "restarting"}'),  # the server restarts...
        (200, SSE, "id: 5\nevent: work.succeeded\ndata: {}\n\nevent: end\ndata: {}\n\n"),
    ]
    with Scripted(answers) as server, Client(server.url, "orc_x", retry=QUICK) as client:
        kinds = [(e.id, e.kind) for e in client.events(3, after=2)]
        assert kinds == [(4, "work.running"), (5, "work.succeeded")]
        assert server.paths == [
            "/api/v1/workflows/3/events?after=2",
            "/api/v1/workflows/3/events?after=4",
            "/api/v1/workflows/3/events?after=4",
        ]


def test_a_stream_that_keeps_closing_is_given_up() -> None:
    answers = [(200, SSE, ": keep-alive\n\n")] * 3
    with Scripted(answers) as server, Client(server.url, "orc_x", retry=QUICK) as client:
        with pytest.raises(Unreachable, match=r"lost the event stream of workflow 3 .* 3 times"):
            list(client.events(3))
        assert len(server.paths) == 3


def test_reads_are_retried_on_503_but_not_forever() -> None:
    busy = (503, "application/json", '{"error": "busy"}')
    page = '{"items": [], "next_cursor": null}'
    with Scripted([busy, busy, (200, "application/json", page)]) as server:
        assert Client(server.url, "orc_x", retry=QUICK).workflows().items == []
    with Scripted([busy] * 3) as server, Client(server.url, "orc_x", retry=QUICK) as client:
        with pytest.raises(ServerError, match="busy") as caught:
            client.workflows()
        assert caught.value.status == 503 and len(server.paths) == 3
    html = Scripted([(200, "text/html", "<html>")])
    with html, pytest.raises(ServerError, match="not JSON"):
        Client(html.url, retry=QUICK).health()
