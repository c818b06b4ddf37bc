"""A sampling profile of the live extender during a benchmark: py-spy attached to the
gunicorn master with its workers (and sync child), raw collapsed stacks, summarised.

py-spy comes from PyPI (`pip install py-spy`, a static binary in the venv's bin); it is a
development tool, never a dependency of the package. Summary: the functions with the most
samples on the stack (inclusive) and at the top of it (self), as shares of all samples of
the workers' threads that were busy (py-spy leaves idle threads out by default).
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any


def py_spy() -> str | None:
    found = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    return found if os.access(found, os.X_OK) else None


class Profile:
    """`py-spy record` on `pid` and its children until stop(); writes raw stacks to `out`.
    `gil`: only the thread holding the GIL is sampled (Python CPU, not waits on sockets)."""

    def __init__(self, pid: int, out: Path, rate: int = 100, gil: bool = False):
        exe = py_spy()
        if exe is None:
            raise RuntimeError("py-spy not found: pip install py-spy")
        self.out = out
        self.log = out.with_suffix(".log")
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [exe, "record", "--pid", str(pid), "--subprocesses", "--nonblocking", "--rate", str(rate),
                 "--format", "raw", "--output", str(out), *(["--gil"] if gil else [])],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _frame(frame: str) -> str:
    """'func (path/to/module.py:123)' -> 'func (module.py)'; line numbers merged."""
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    parts = Path(path).parts
    short = "/".join(parts[-2:]) if len(parts) >= 2 else path
    return f"{name} ({short})"


def summarize(path: Path, top: int = 25, match: str = "") -> dict[str, Any]:
    """Inclusive and self sample shares per function from py-spy's raw output; `match` keeps
    only stacks containing that text (e.g. a process or thread)."""
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit() or (match and match not in stack):
            continue
        count = int(count_text)
        frames = [_frame(f) for f in stack.split(";")[1:] if f]  # first entry: the process/thread
        if not frames:
            continue
        total += count
        own[frames[-1]] += count
        for f in set(frames):
            inclusive[f] += count
    share = (lambda c: round(100.0 * c / total, 1)) if total else (lambda c: 0.0)
    return {"samples": total,
            "inclusive": [(f, share(c)) for f, c in inclusive.most_common(top)],
            "self": [(f, share(c)) for f, c in own.most_common(top)]}


def format_summary(summary: dict[str, Any], title: str) -> str:
    lines = [f"{title}: {summary['samples']} samples"]
    for kind in ("inclusive", "self"):
        lines.append(f"  {kind} %:")
        lines.extend(f"    {pct:5.1f}  {frame}" for frame, pct in summary[kind])
    return "\n".join(lines)


if __name__ == "__main__":
    print(format_summary(summarize(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 25,
                                   sys.argv[3] if len(sys.argv) > 3 else ""), sys.argv[1]))
