"""A date range whose start is after its end is a user's mistake, said once by the library and shown
by the CLI, the HTTP API and the browser chat alike, never answered as "no article matches"."""

from __future__ import annotations

import html
from pathlib import Path

import httpx
import pytest

from rag import FilterError, Filters
from rag.surfaces.cli import main

QUESTION = "Who offered to mediate between Kabul and Islamabad?"


def _cli(settings, *args: str) -> list[str]:
    return [*args, "--index-dir", settings.index_dir, "--model", "fake-64", "--corpus", settings.corpus[0]]


def test_a_reversed_range_names_both_days_as_read():
    with pytest.raises(FilterError) as e:
        Filters(since="2024-06", until="2024-01")  # from June 1st, up to January 31st
    assert str(e.value).startswith("since 2024-06-01 is after until 2024-01-31")
    # a one-month range, and a one-day one, are fine
    assert Filters(since="2024-06", until="2024-06").until == "2024-06-30"
    assert Filters(since="2024-06-30", until="2024-06-30")


@pytest.mark.parametrize("command", [["ask", QUESTION], ["timeline", "Araghchi"]])
def test_the_cli_refuses_a_reversed_range_before_any_work(fake_settings, capsys, command):
    code = main(_cli(fake_settings, *command, "--since", "2024-06", "--until", "2024-01"))
    out, err = capsys.readouterr()
    assert code == 1 and out == ""
    assert err.startswith("Error: --since 2024-06-01 is after --until 2024-01-31"), err
    assert err.count("\n") == 1 and "No article matches" not in err
    assert not Path(fake_settings.index_dir).exists()  # refused before indexing


def test_the_http_api_answers_a_reversed_range_with_a_400(fake_rag):
    pytest.importorskip("uvicorn", reason="the 'serve' extra is not installed")
    from test_server import serving

    from rag.surfaces.http import create_app

    with serving(create_app(fake_rag)) as base:
        for path, body in (("/v1/search", {"query": QUESTION}), ("/v1/ask", {"question": QUESTION})):
            r = httpx.post(f"{base}{path}", json={**body, "since": "2025-11", "until": "2019"}, timeout=60)
            assert r.status_code == 400, r.text
            error = r.json()["error"]
            assert error["code"] == "invalid_filter"
            assert error["message"].startswith("since 2025-11-01 is after until 2019-12-31"), error


def test_the_browser_chat_asks_to_fix_a_reversed_range(fake_rag):
    pytest.importorskip("gradio", reason="gradio is not installed (pip install -e '.[ui]')")
    from rag.surfaces.ui.handlers import respond

    (reply,) = list(respond(fake_rag, QUESTION, [], None, 5, "2025-11", "2019", "", "none", ""))
    text = html.unescape(reply.history[-1]["content"])
    assert "Please fix this" in text and "since 2025-11-01 is after until 2019-12-31" in text
    assert reply.question == QUESTION  # kept, to fix the dates and ask again
