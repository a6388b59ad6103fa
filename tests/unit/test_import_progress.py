"""Without a terminal, `crm contacts import` reports progress as periodic lines on stderr."""

from __future__ import annotations

import re

import pytest

from crm.cli import contacts


def test_progress_lines_carry_rows_share_rate_and_eta(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(contacts, "_PROGRESS_EVERY", 0.0)
    with contacts._Meter("imported", 1000, unit_total=False) as meter:
        meter.update(100, 250)
        meter.update(200, 500)
    lines = capsys.readouterr().err.splitlines()
    assert re.fullmatch(r"imported: 100 rows, 25%, \d+ rows/s, ETA \d+ s", lines[0])
    assert re.fullmatch(r"imported: 200 rows, 50%, \d+ rows/s, ETA \d+ s", lines[1])
    assert re.fullmatch(r"imported: 200 rows in [\d.]+ s \(\d+ rows/s\)", lines[2])


def test_no_line_before_the_interval(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(contacts, "_PROGRESS_EVERY", 3600.0)
    with contacts._Meter("imported", 1000, unit_total=False) as meter:
        meter.update(100, 250)
    assert len(capsys.readouterr().err.splitlines()) == 1  # the summary only
