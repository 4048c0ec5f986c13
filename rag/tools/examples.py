"""The README's examples, generated from real runs: ``python -m rag.tools.examples [--check]``.

Each example in the README is a fenced block between two comments:

    <!-- example: ask "Who offered to mediate between Kabul and Islamabad?" | lines 12 -->
    ```
    $ python -m rag ask "Who offered to mediate between Kabul and Islamabad?"
    ... what the command printed ...
    ```
    <!-- /example -->

The comment holds the arguments of ``python -m rag`` (shell words) and, after ``|``, options:
``lines N`` keeps the first N lines of the output (then "..."); ``json`` marks the block as JSON.
Without ``--check`` every block is replaced by what the command prints now; with it, nothing is
written and the exit status is 1 when a block differs (the test suite runs it, the way ``cog``
keeps the docs of simonw/llm true). Timings are written as ``<ms>``; retrieval scores, which
differ in their last digits between CPUs (int8 kernels), are compared to two decimals.
"""

from __future__ import annotations

import argparse
import difflib
import hashlib
import os
import re
import shlex
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from rag.config import DEFAULT_CORPUS

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
_BLOCK = re.compile(r"<!-- example: (?P<spec>.*?) -->\n(?P<body>.*?)<!-- /example -->", re.S)
_TIMINGS = re.compile(r'("timings_ms": )\{[^{}]*\}')
_SCORE = re.compile(r'(score"?:? )(\d+\.\d+)')


@dataclass
class Example:
    args: list[str]  # the arguments of ``python -m rag``
    lines: int = 0  # keep this many lines of the output (0: all)
    json: bool = False

    @classmethod
    def parse(cls, spec: str) -> Example:
        command, _, options = spec.partition("|")
        example = cls(shlex.split(command))
        words = options.split()
        for i, word in enumerate(words):
            if word == "lines":
                example.lines = int(words[i + 1])
            elif word == "json":
                example.json = True
        return example

    def corpus(self) -> str:
        return self.args[self.args.index("--corpus") + 1] if "--corpus" in self.args else str(DEFAULT_CORPUS)


def run(example: Example, index_root: Path, env: dict[str, str] | None = None) -> str:
    """The fenced block of ``example``: the command line, then what it printed (standard output)."""
    corpus = example.corpus()
    index_dir = index_root / hashlib.sha1(str(Path(REPO, corpus).resolve()).encode()).hexdigest()[:12]
    proc = subprocess.run([sys.executable, "-m", "rag", *example.args, "--index-dir", str(index_dir)],
                          capture_output=True, text=True, cwd=REPO, timeout=600,
                          env=env or {k: v for k, v in os.environ.items() if not k.startswith("RAG_")})
    if proc.returncode != 0:
        raise RuntimeError(f"python -m rag {shlex.join(example.args)} failed: {proc.stderr.strip()}")
    out = proc.stdout.rstrip("\n")
    if example.json:
        out = _TIMINGS.sub(lambda m: m.group(1) + "{" + ", ".join(
            f'"{k}": <ms>' for k in re.findall(r'"(\w+)":', m.group(0)[len(m.group(1)):])) + "}", out)
    lines = out.splitlines()
    if example.lines and len(lines) > example.lines:
        lines = lines[:example.lines] + ["..."]
    fence = "```json" if example.json else "```"
    shown = "" if example.json else f"$ python -m rag {' '.join(map(_word, example.args))}\n"
    return f"{fence}\n{shown}" + "\n".join(lines) + "\n```\n"


def _word(arg: str) -> str:
    """``arg`` as a shell word, in double quotes as a user types a question."""
    if re.fullmatch(r"[\w./:=,@+-]+", arg):
        return arg
    return '"' + re.sub(r'(["\\$`])', r"\\\1", arg) + '"'


def comparable(text: str) -> str:
    """``text`` with retrieval scores to two decimals: what may differ between two CPUs."""
    return _SCORE.sub(lambda m: m.group(1) + f"{float(m.group(2)):.2f}", text)


def regenerate(readme: str, index_root: Path, env: dict[str, str] | None = None) -> str:
    """``readme`` with every example block replaced by what its command prints now."""
    return _BLOCK.sub(lambda m: f"<!-- example: {m.group('spec')} -->\n"
                                f"{run(Example.parse(m.group('spec')), index_root, env)}<!-- /example -->", readme)


def check(readme: str, index_root: Path, env: dict[str, str] | None = None) -> list[str]:
    """The differences between ``readme``'s examples and what their commands print now (a unified diff)."""
    fresh = regenerate(readme, index_root, env)
    if comparable(fresh) == comparable(readme):
        return []
    return list(difflib.unified_diff(readme.splitlines(), fresh.splitlines(), "README.md", "README.md (regenerated)",
                                     lineterm="", n=1))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m rag.tools.examples", description=__doc__.split("\n\n")[0])
    p.add_argument("--check", action="store_true", help="write nothing; exit 1 when an example differs")
    p.add_argument("--index-root", type=Path, help="where the examples' indexes are built (default: a temporary folder)")
    p.add_argument("--readme", type=Path, default=README)
    args = p.parse_args(argv)
    text = args.readme.read_text(encoding="utf-8")
    with tempfile.TemporaryDirectory() as tmp:
        root = args.index_root or Path(tmp)
        if args.check:
            diff = check(text, root)
            print("\n".join(diff) if diff else f"{args.readme}: the examples are what the commands print.")
            return 1 if diff else 0
        fresh = regenerate(text, root)
    if fresh != text:
        args.readme.write_text(fresh, encoding="utf-8")
    print(f"{args.readme}: {len(_BLOCK.findall(text))} examples regenerated.")
    return 0


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["Example", "check", "comparable", "regenerate"]
