"""``python -m rag``: the command line, and the servers it starts (the browser chat, the HTTP API,
the MCP server). Not a surface itself: it hands each server command to its surface, so that the
surfaces never import one another (tests/test_structure.py)."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from rag import Settings
from rag.surfaces import cli


def _ui(settings: Settings, args: argparse.Namespace, log: Callable[[str], None]) -> None:
    from rag.surfaces.ui.app import serve

    serve(settings, port=args.port, log=log)


def _http(settings: Settings, args: argparse.Namespace, log: Callable[[str], None]) -> None:
    from rag.surfaces.http import run

    run(settings, host=args.host, port=args.port, log=log)


def _mcp(settings: Settings, args: argparse.Namespace, log: Callable[[str], None]) -> None:
    from rag.surfaces.mcp import run

    run(settings, transport=args.transport, host=args.host, port=args.port, log=log)


SERVERS = {"ui": _ui, "serve": _http, "mcp": _mcp}


def main(argv: list[str] | None = None) -> int:
    return cli.main(argv, servers=SERVERS)
