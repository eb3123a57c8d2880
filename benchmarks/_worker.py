"""A helper process that runs contenders which must not share the main process.

Importing trio-asyncio patches asyncio for the whole process (its loop policy
makes ``asyncio.new_event_loop()`` return trio-asyncio's own loop, and it
replaces ``asyncio.get_running_loop``), which would change what every other
contender measures. Such a contender runs here instead: one long-lived process
that receives ``{"fn": "module:function", "args": [...]}`` lines on stdin and
answers each with one JSON line, so it still takes its turn in the same
interleaved rounds as everything else.
"""

from __future__ import annotations

import atexit
import importlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def _resolve(path: str) -> Any:
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


def serve() -> None:
    for line in sys.stdin:
        request = json.loads(line)
        try:
            answer = {"ok": _resolve(request["fn"])(*request["args"])}
        except Exception as exc:
            answer = {"error": f"{type(exc).__name__}: {exc}"}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


class Worker:
    """The parent's handle on one helper process."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "benchmarks._worker"],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def call(self, fn: str, *args: Any) -> Any:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(json.dumps({"fn": fn, "args": list(args)}) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the helper process died running {fn}")
        answer = json.loads(line)
        if "error" in answer:
            raise RuntimeError(f"{fn} failed in the helper process: {answer['error']}")
        return answer["ok"]

    def close(self) -> None:
        if self.process.poll() is None:
            assert self.process.stdin is not None
            self.process.stdin.close()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


_workers: dict[str, Worker] = {}


def worker(name: str = "shared") -> Worker:
    """The helper process called ``name``, started on first use.

    Contenders that leave the process changed (trio-asyncio patches asyncio)
    share the default one; others ask for their own.
    """
    current = _workers.get(name)
    if current is None or current.process.poll() is not None:
        current = _workers[name] = Worker()
    return current


@atexit.register
def close() -> None:
    while _workers:
        _workers.popitem()[1].close()


if __name__ == "__main__":
    serve()
