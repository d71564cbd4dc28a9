#!/usr/bin/env python3
"""Benchmark: join and leave latency in the lab.

For each run: `saltlab join nodeX` (host boot + minion start + key + the join
reactor -> orch.join), timed until nodeX is in every base host's /etc/hosts,
the master's hostfile and known_hosts, and the gateway's upstream; then
`saltlab leave nodeX`, timed until it is gone from all of them.  The floor,
measured in the same run, is a trivial `salt '*' state.single
test.succeed_without_changes` from the master.  Prints medians and writes
bench/results-join.md.  Needs a running, highstated lab (`lab/saltlab demo`).

    sudo $(scripts/bootstrap | tail -1)/bin/python bench/join.py [RUNS]
"""

import argparse
import importlib.machinery
import importlib.util
import pathlib
import statistics
import sys
import time

REPO = pathlib.Path(__file__).resolve().parent.parent
_loader = importlib.machinery.SourceFileLoader("saltlab", str(REPO / "lab/saltlab"))
_spec = importlib.util.spec_from_loader("saltlab", _loader)
saltlab = importlib.util.module_from_spec(_spec)
_loader.exec_module(saltlab)


def until(check, timeout=900):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if check():
            return time.monotonic()
        time.sleep(2)
    raise SystemExit(f"not converged in {timeout} s")


def floor():
    t0 = time.monotonic()
    saltlab.salt_json(["*", "state.single", "test.succeed_without_changes", "name=floor"])
    return time.monotonic() - t0


def main():
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    floors, joins, ups, leaves = [], [], [], []
    for i in range(runs):
        name = f"node{90 + i}"
        floors.append(floor())
        t0 = time.monotonic()
        saltlab.cmd_join(argparse.Namespace(names=[name]))
        ups.append(time.monotonic() - t0)
        joins.append(until(lambda: all(saltlab.membership_view(name).values())) - t0)
        t1 = time.monotonic()
        saltlab.cmd_leave(argparse.Namespace(names=[name], verb="leave"))
        leaves.append(until(lambda: not any(saltlab.membership_view(name).values())) - t1)
        print(f"run {i + 1}: floor {floors[-1]:.1f} s, up {ups[-1]:.1f} s, join visible {joins[-1]:.1f} s, "
              f"leave gone {leaves[-1]:.1f} s", flush=True)  # fmt: skip
    f = statistics.median(floors)
    rows = [
        ("floor: salt '*' state.single test.succeed_without_changes", floors, None),
        ("join: command to host up and answering Salt", ups, f),
        ("join: command to visible everywhere (target <= 45 s)", joins, f),
        ("leave: host stopped to gone everywhere", leaves, f),
    ]
    lines = ["| metric | median | min | max | runs | unit | ratio to floor |", "| --- | ---: | ---: | ---: | ---: | --- | ---: |"]
    for label, xs, base in rows:
        ratio = f"{statistics.median(xs) / base:.1f}x" if base else "-"
        lines.append(f"| {label} | {statistics.median(xs):.1f} | {min(xs):.1f} | {max(xs):.1f} | {len(xs)} | s | {ratio} |")
    text = "\n".join(lines)
    print(text)
    (REPO / "bench/results-join.md").write_text("# bench/join.py\n\n" + text + "\n")


if __name__ == "__main__":
    main()
