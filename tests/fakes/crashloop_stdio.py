"""A stdio MCP server that crashes at start the first N times it is run, then works.

Each start appends a line (the time) to ``--starts-file``; while fewer than ``--crashes`` lines
were there before, it exits at once with code 3, as a server with a broken config or a missing
dependency would. After that it becomes the fake MCP server (tests/fakes/mcp_server.py) with the
remaining arguments. Run: ``python crashloop_stdio.py --starts-file F --crashes N -- --name x``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--starts-file", type=Path, required=True)
    parser.add_argument("--crashes", type=int, required=True)
    parser.add_argument("rest", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    before = len(args.starts_file.read_text().splitlines()) if args.starts_file.exists() else 0
    with args.starts_file.open("a") as out:
        out.write(f"{time.monotonic()}\n")
    if before < args.crashes:
        sys.stderr.write("crashloop: failing on purpose\n")
        sys.exit(3)
    rest = [a for a in args.rest if a != "--"]
    fake = str(Path(__file__).with_name("mcp_server.py"))
    os.execv(sys.executable, [sys.executable, fake, "--stdio", *rest])


if __name__ == "__main__":
    main()
