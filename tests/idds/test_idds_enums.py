"""The iDDS enum members Orchid's answers use (``orchid.core.idds.ENUMS``) are those of the
real ``idds.common.constants``: same class, name and number (the client decodes by number)."""

from __future__ import annotations

import json
from pathlib import Path

from orchid.core.idds import ENUMS
from tests.idds.iddskit import needs_client, run

pytestmark = needs_client


def test_the_enum_members_orchid_shows_are_the_real_clients(tmp_path: Path) -> None:
    got = run(
        "http://127.0.0.1:9",  # no server: only the client's constants are read
        "unused",
        f"""
from idds.common import constants
wrong = []
for cls, members in {json.dumps(ENUMS)}.items():
    for name, value in members.items():
        real = getattr(constants, cls)
        if real(value).name != name:
            wrong.append(f"{{cls}}.{{name}} = {{value}}: iDDS has {{real(value).name}}")
out(wrong)
""",
        tmp_path,
    )
    assert got == []
