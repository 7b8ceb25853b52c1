"""Summarize a py-spy ``raw`` (folded stacks) profile: where the gateway's CPU time goes.

Each line of the file is ``frame;frame;...;leaf COUNT`` with frames like
``receive (gateway/receive.py:123)``; with ``--threads`` the first frame names the thread.

    python bench/profile_summary.py bench/results/profile-2KB.folded
"""

from __future__ import annotations

import re
import sys
from collections import Counter
from pathlib import Path
from typing import Any

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::\d+)?\)$")
_SITE = re.compile(r".*/(?:site|dist)-packages/")
_STDLIB = re.compile(r".*/lib/python3\.\d+/")


def _short_file(path: str) -> str:
    if _SITE.match(path):
        return _SITE.sub("", path)
    if _STDLIB.match(path):
        return "stdlib/" + _STDLIB.sub("", path)
    marker = path.find("/gateway/")
    if marker < 0:
        marker = path.find("/transforms/")
    return path[marker + 1 :] if marker >= 0 else path


def _frame(raw: str) -> tuple[str, str]:
    match = _FRAME.match(raw.strip())
    if not match:
        return raw.strip(), ""
    return match["func"], _short_file(match["file"])


def _package(file: str) -> str:
    """``gateway/outbox/sqlite.py`` stays whole; libraries collapse to their top package."""
    if file.startswith(("gateway/", "transforms/")):
        return file
    if file.startswith("stdlib/"):
        parts = file.split("/")
        return "stdlib/" + parts[1].removesuffix(".py")
    return file.split("/")[0].removesuffix(".py") or "(native)"


def summarize(path: Path, top: int = 25) -> dict[str, Any]:
    """Self and inclusive sample shares by function, by file/package, and by thread."""
    total = 0
    self_fn: Counter[str] = Counter()
    incl_fn: Counter[str] = Counter()
    self_pkg: Counter[str] = Counter()
    incl_pkg: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = stack.split(";")
        thread = next((f for f in frames[:2] if f.startswith("thread")), "")
        threads[thread or "(main)"] += count
        parsed = [_frame(f) for f in frames if not f.startswith(("thread", "process"))]
        if not parsed:
            continue
        func, file = parsed[-1]
        self_fn[f"{func} ({file})"] += count
        self_pkg[_package(file)] += count
        for name in {f"{fn} ({fl})" for fn, fl in parsed}:
            incl_fn[name] += count
        for pkg in {_package(fl) for _, fl in parsed}:
            incl_pkg[pkg] += count

    def shares(counter: Counter[str]) -> list[tuple[str, float]]:
        return [(k, v / total * 100) for k, v in counter.most_common(top)] if total else []

    return {
        "samples": total,
        "threads": shares(threads),
        "self_by_function": shares(self_fn),
        "inclusive_by_function": shares(incl_fn),
        "self_by_package": shares(self_pkg),
        "inclusive_by_package": shares(incl_pkg),
    }


def render(summary: dict[str, Any], rows: int = 15) -> str:
    lines = [f"\nProfile of the gateway at saturation ({summary['samples']:,} samples, py-spy)"]
    for key, title in (
        ("threads", "by thread"),
        ("self_by_package", "self time by file / package"),
        ("inclusive_by_package", "inclusive time by file / package"),
        ("self_by_function", "self time by function"),
        ("inclusive_by_function", "inclusive time by function"),
    ):
        lines.append(f"  {title}:")
        lines += [f"    {share:5.1f}%  {name}" for name, share in summary[key][:rows]]
    return "\n".join(lines)


if __name__ == "__main__":
    print(render(summarize(Path(sys.argv[1])), rows=30))
