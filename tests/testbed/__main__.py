"""`python -m tests.testbed run SCENARIO --out DIR` (as root): run a scenario and write
capture.pcap, pod-*.pcap, inventory.json and ground-truth.json into DIR.
`python -m tests.testbed leftovers` lists testbed namespaces still present;
`python -m tests.testbed cleanup` removes those of runs that died (SIGKILL)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from discover.errors import DiscoverError
from tests.testbed.netns import cleanup_stale, leftover_namespaces


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.testbed",
                                     description="Mini-cluster testbed in network namespaces.")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run a scenario (needs root)")
    run.add_argument("scenario", help="a bundled scenario name (small, shop) or a YAML path")
    run.add_argument("--out", type=Path, required=True, help="output directory")
    run.add_argument("--timeout", type=float, default=180.0,
                     help="seconds before everything is stopped and removed (default 180)")
    sub.add_parser("leftovers", help="list testbed namespaces (npd-tb-*) still present")
    sub.add_parser("cleanup", help="remove the namespaces of testbed runs that died")
    args = parser.parse_args(argv)
    if args.command == "cleanup":
        for name in cleanup_stale():
            print(f"removed {name}")
        return 0
    if args.command == "leftovers":
        for name in leftover_namespaces("npd-tb-"):
            print(name)
        return 0
    from tests.testbed.runner import run_scenario
    from tests.testbed.scenario_load import load_scenario

    try:
        scenario = load_scenario(args.scenario)
        result = run_scenario(scenario, args.out, timeout=args.timeout)
    except DiscoverError as error:
        print(f"testbed: error: {error}", file=sys.stderr)
        return 1
    print(f"capture: {result.capture}\ninventory: {result.inventory}\n"
          f"ground truth: {result.ground_truth}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
