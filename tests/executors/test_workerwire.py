"""The worker channel's framing (``orchid.executors.workerwire``): calls and answers made
by ``call_frame``/``answer_frame`` read back by ``read_frame``, and what it refuses."""

from __future__ import annotations

import pytest

from orchid.executors.workerwire import (
    Attempt,
    RenewIn,
    ReportIn,
    WorkerUpdate,
    answer_frame,
    call_frame,
    read_frame,
)


def test_a_call_frame_reads_back_as_its_seq_op_and_body() -> None:
    end = WorkerUpdate(job_id=7, attempt=2, state="succeeded", at=1.5, result={"a": "x\ny"})
    body = ReportIn(worker="w-1", updates=[end], want=3)
    seq, op, raw = read_frame(call_frame(42, "report", body))
    assert (seq, op) == (42, "report")
    assert ReportIn.model_validate_json(raw) == body  # a newline inside the JSON stays
    seq, op, raw = read_frame(call_frame(1, "renew", RenewIn(worker="w", jobs=[])))
    assert (seq, op, RenewIn.model_validate_json(raw).jobs) == (1, "renew", [])


def test_an_answer_frame_reads_back_as_its_seq_status_and_body() -> None:
    body = '{"error": "two\\nlines", "refused": [{"job_id": 1, "attempt": 1}]}'
    assert read_frame(answer_frame(9, 409, body)) == (9, "409", body)
    assert read_frame(answer_frame(0, 400, "{}")) == (0, "400", "{}")  # 0: not a call
    big = 10**19 - 1  # the most digits a seq may have
    assert read_frame(answer_frame(big, 200, "")) == (big, "200", "")
    one = Attempt(job_id=1, attempt=1)
    assert read_frame(call_frame(3, "renew", RenewIn(worker="w", jobs=[one])))[0] == 3


@pytest.mark.parametrize(
    "text",
    [
        "1 lease",  # no newline: no body
        "1 lease {}",
        "1\n{}",  # no op
        "1 \n{}",  # an empty op
        "lease\n{}",  # no seq
        " lease\n{}",
        "x lease\n{}",  # not digits
        "1.5 lease\n{}",
        "-1 lease\n{}",  # negative
        "+1 lease\n{}",
        "\u00b2 lease\n{}",  # a superscript two: a digit to str.isdigit, not a number
        "\u0661 lease\n{}",  # an Arabic-Indic one
        str(10**19) + " lease\n{}",  # 20 digits
        "0" * 20 + "1 lease\n{}",
        "",
        "\n",
    ],
)
def test_read_frame_refuses_what_is_not_a_frame_and_says_what_one_is(text: str) -> None:
    with pytest.raises(ValueError, match=r"a frame is '<seq> <op>\\n<JSON body>'"):
        read_frame(text)
