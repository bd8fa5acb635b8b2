"""Command line: python -m tenfold_tools.testbed up|down|status|env [--name NAME]."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys

from tenfold_tools.testbed import cluster
from tenfold_tools.testbed.layout import DEFAULT_NAME, TestbedError


def _env(name: str) -> int:
    """Print shell exports for the running test bed.

    Use: eval "$(python -m tenfold_tools.testbed env)"
    """
    for key, value in cluster.load(name).env().items():
        print(f"export {key}={shlex.quote(value)}")
    return 0


def _status(name: str) -> int:
    """Print the status as JSON; exit 1 when the test bed is not up."""
    report = cluster.status(name)
    print(json.dumps(report, indent=2))
    return 0 if report["up"] else 1


def main(argv: list[str] | None = None) -> int:
    """Run one test-bed command; errors print one line and exit 1."""
    parser = argparse.ArgumentParser(prog="python -m tenfold_tools.testbed", description=__doc__)
    parser.add_argument("command", choices=["up", "down", "status", "env"])
    parser.add_argument(
        "--name",
        default=os.environ.get("TENFOLD_TESTBED_NAME", DEFAULT_NAME),
        help="test bed name, so several can run side by side (env TENFOLD_TESTBED_NAME)",
    )
    parser.add_argument(
        "--kwok-only",
        action="store_true",
        help="up: no real node; KWOK plays the cpu pool too (scale and operator-logic tests)",
    )
    args = parser.parse_args(argv)
    try:
        if args.command == "up":
            cluster.up(args.name, real_node=not args.kwok_only)
        elif args.command == "down":
            cluster.down(args.name)
        elif args.command == "status":
            return _status(args.name)
        else:
            return _env(args.name)
    except TestbedError as err:
        print(f"tenfold_tools.testbed: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
