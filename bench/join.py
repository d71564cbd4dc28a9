#!/usr/bin/env python3
"""Benchmark: join and leave latency in the lab, and a burst of joins.

Each run: `saltlab join nodeX` (host boot + minion start + key autosigned
for its token + the join reactor -> orch.join), timed until nodeX is in every
base host's /etc/hosts, the master's hostfile and known_hosts, and the
gateway's upstream; then `saltlab leave nodeX`, timed until it is gone from
all of them.  Then BURST nodes join at once and leave at once.  The floor,
measured in the same run, is a trivial `salt '*' state.single` from the
master.  Where a join's time goes comes from the guests' logs (same clock:
UML guests read the host's time) and the orchestration's own step durations.
Prints medians and writes bench/results-join.md.

    sudo $(scripts/bootstrap | tail -1)/bin/python bench/join.py [--runs N] [--burst N]
"""

import argparse
import datetime
import json
import statistics
import sys
import time

from common import REPO, Table, guest_time, saltlab, verdict


def until(check, timeout=900):
    t0 = time.time()
    while time.time() - t0 < timeout:
        if check():
            return time.time()
        time.sleep(1)
    raise SystemExit(f"not converged in {timeout} s")


def everywhere(names):
    return lambda: all(all(saltlab.membership_view(n).values()) for n in names)


def nowhere(names):
    return lambda: not any(any(saltlab.membership_view(n).values()) for n in names)


def floor():
    secs, rc, out = guest_time("master", "salt --static --out=json '*' state.single test.succeed_without_changes name=floor")
    assert rc == 0, out
    return secs


def _log_time(node, path, pattern, first=True):
    pick = "head -1" if first else "tail -1"
    out = saltlab.ssh(node, f"grep -h -E '{pattern}' {path} | {pick}", timeout=60).stdout.strip()
    if not out:
        return None
    stamp = datetime.datetime.strptime(out[:23], "%Y-%m-%d %H:%M:%S,%f")
    return stamp.timestamp()


def orchestration_steps(name):
    """The last orch.join for NAME, from the master's job cache: seconds per step."""
    res = saltlab.ssh("master", "salt-run --out=json jobs.list_jobs search_function=runner.state.orchestrate", timeout=120)
    try:
        jobs = json.loads(res.stdout or "{}")
    except json.JSONDecodeError:
        return {}
    for jid in sorted(jobs, reverse=True):
        ret = json.loads(saltlab.ssh("master", f"salt-run --out=json jobs.lookup_jid {jid}", timeout=120).stdout or "{}")
        data = ret.get("data", ret)
        states = next(iter(data.values()), {}) if isinstance(data, dict) else {}
        if not isinstance(states, dict) or not any("saltcluster-orch-join" in k for k in states):
            continue
        if name not in json.dumps(states):
            continue
        return {st.get("__id__", k).replace("saltcluster-orch-join-", ""): st.get("duration", 0) / 1000
                for k, st in states.items() if isinstance(st, dict)}  # fmt: skip
    return {}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--burst", type=int, default=3)
    args = parser.parse_args()
    saltlab.cmd_up(None)
    table, notes = Table(), []
    floors, ups, joins, leaves, phases = [], [], [], [], []
    for i in range(args.runs):
        name = f"node{90 + i}"
        floors.append(floor())
        t0 = time.time()
        saltlab.cmd_join(argparse.Namespace(names=[name]))
        ups.append(time.time() - t0)
        joins.append(until(everywhere([name])) - t0)
        minion_start = _log_time(name, "/var/log/salt/minion", "Setting up the Salt Minion|Starting up the Salt Minion")
        authed = _log_time(name, "/var/log/salt/minion", "Minion is ready|Authentication accepted|Connecting to master")
        steps = orchestration_steps(name)
        phases.append((minion_start and minion_start - t0, authed and minion_start and authed - minion_start, steps))
        t1 = time.time()
        saltlab.cmd_leave(argparse.Namespace(names=[name], verb="leave"))
        stopped = time.time()
        leaves.append(until(nowhere([name])) - stopped)
        print(f"run {i + 1}: floor {floors[-1]:.1f} s, up {ups[-1]:.1f} s, join visible {joins[-1]:.1f} s, "
              f"leave (stop {stopped - t1:.1f} s) gone {leaves[-1]:.1f} s after stop", flush=True)  # fmt: skip
    f = statistics.median(floors)
    table.add("floor: salt '*' state.single test.succeed_without_changes", floors)
    table.add("join: command to host up and answering Salt", ups, ratio=f"{statistics.median(ups) / f:.1f}x floor")
    j = statistics.median(joins)
    table.add("join: command to visible everywhere", joins, ratio=f"{j / f:.1f}x floor",
              target=f"<= 45 s: {verdict(j <= 45)}")  # fmt: skip
    table.add("leave: host stopped to gone everywhere", leaves, ratio=f"{statistics.median(leaves) / f:.1f}x floor")

    if args.burst:
        names = [f"node{80 + i}" for i in range(args.burst)]
        t0 = time.time()
        saltlab.cmd_join(argparse.Namespace(names=names))
        burst_join = until(everywhere(names)) - t0
        saltlab.cmd_leave(argparse.Namespace(names=names, verb="leave"))
        stopped = time.time()
        burst_leave = until(nowhere(names)) - stopped
        table.add(f"burst: {args.burst} nodes join at once, command to all visible everywhere", [burst_join],
                  ratio=f"{burst_join / f:.1f}x floor")  # fmt: skip
        table.add(f"burst: {args.burst} nodes leave at once, stopped to all gone", [burst_leave],
                  ratio=f"{burst_leave / f:.1f}x floor")  # fmt: skip

    for boot_to_minion, minion_to_auth, steps in phases:
        parts = []
        if boot_to_minion:
            parts.append(f"host boot to salt-minion start {boot_to_minion:.1f} s")
        if minion_to_auth:
            parts.append(f"minion start to key accepted {minion_to_auth:.1f} s")
        parts += [f"{step} {secs:.1f} s" for step, secs in steps.items()]
        notes.append("join time by phase: " + ", ".join(parts))
    text = table.markdown() + "\n\n" + "\n".join(f"- {n}" for n in notes)
    print("\n" + text)
    (REPO / "bench/results-join.md").write_text("# bench/join.py\n\n" + text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
