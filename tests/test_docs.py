"""Every Python code block in README.md and docs/ runs, offline, as written.

A block is a complete program. It may use ``await`` at top level: it then runs
inside ``trio.run`` (or ``asyncio.run`` when the line before the block is
``<!-- run: asyncio -->``). A block marked ``<!-- example: NAME -->`` is a
long-running program (a server) with a test of its own that runs it and stops
it; here we only check that such a test exists. Each block runs in its own interpreter, in a
temporary folder with a temporary HOME and no API key, so the examples that
need a model use agy_trio's local model server.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from tests.processes import offline_env, run_python

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(
    r"(?:<!-- (?P<kind>run|example): (?P<mode>\w+) -->\n)?```python\n(?P<code>.*?)```", re.DOTALL
)

RUNNER = """
import ast, asyncio, sys, trio
source = open(sys.argv[1]).read()
mode = sys.argv[2]
code = compile(source, sys.argv[3], "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
namespace = {"__name__": "__main__"}
if code.co_flags & 0x80:  # CO_COROUTINE: the block awaits at top level
    async def main():
        await eval(code, namespace)
    if mode == "asyncio":
        asyncio.run(main())
    else:
        trio.run(main)
else:
    exec(code, namespace)
"""


def _blocks() -> list[tuple[str, str, str]]:
    found = []
    for path in DOCS:
        text = path.read_text()
        for match in BLOCK.finditer(text):
            line = text.count("\n", 0, match.start("code")) + 1
            mode = match["mode"] or "trio"
            if match["kind"] == "example":
                mode = f"example:{mode}"
            found.append((f"{path.relative_to(ROOT)}:{line}", match["code"], mode))
    return found


BLOCKS = _blocks()


def test_the_docs_have_python_examples() -> None:
    assert len(BLOCKS) >= 10


@pytest.mark.parametrize(("where", "code", "mode"), BLOCKS, ids=[b[0] for b in BLOCKS])
def test_doc_example_runs(where: str, code: str, mode: str, tmp_path: Path) -> None:
    if mode.startswith("example:"):
        marker = f"<!-- example: {mode.removeprefix('example:')} -->"
        runners = [p for p in (ROOT / "tests").rglob("test_*.py") if marker in p.read_text()]
        assert runners, f"{where}: no test runs the example marked {marker}"
        return
    script = tmp_path / "example.py"
    script.write_text(code)
    env = offline_env(tmp_path / "home")
    result = run_python("-c", RUNNER, str(script), mode, where, env=env, cwd=tmp_path, timeout=240)
    assert result.returncode == 0, f"{where} failed:\n{result.stdout}\n{result.stderr}"


def test_each_page_with_top_level_await_says_first_how_to_run_it() -> None:
    for path in DOCS:
        text = path.read_text()
        awaiting = [
            match
            for match in BLOCK.finditer(text)
            if match["kind"] != "example"
            and compile(match["code"], "x", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT).co_flags
            & 0x80
        ]
        if not awaiting:
            continue
        first_block = text.index("```")
        note = text.find("> **Running the examples.**")
        assert 0 <= note < first_block, f"{path.name}: say how to run top-level await first"
        assert "`python -m trio`" in text[note:first_block]
        assert text.count("> **Running the examples.**") == 1, path.name
