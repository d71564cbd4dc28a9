#!/usr/bin/env python3
"""Benchmark: join and leave latency in the lab, and a burst of joins.

Each run: `saltlab join nodeX` (host boot + minion start + key autosigned
for its token + the join reactor -> orch.join), timed until nodeX is in every
base host's /etc/hosts, the master's hostfile and known_hosts, and the
gateway's upstream; then `saltlab leave nodeX`, timed until it is gone from
all of them.  Then BURST nodes join at once and leave at once.  The floor,
measured in the same run, is a trivial `salt '*' state.single` from the
master.  Where a join's time goes comes from the new minion's log and the
master's event bus, recorded during each join (same clock: UML guests read
the host's time): first auth, start event, the orchestration and each job it ran.
Prints medians and writes bench/results-join.md.

    sudo $(scripts/bootstrap | tail -1)/bin/python bench/join.py [--runs N] [--burst N]
"""

import argparse
import datetime
import json
import statistics
import sys
import time

from common import write_results
from labkit import ops, probes, remote
from labkit.figures import Table, verdict


def until(check, timeout=900):
    """When CHECK (a probe such as probes.everywhere) first returns True."""
    t0 = time.time()
    while time.time() - t0 < timeout:
        if check() is True:
            return time.time()
        time.sleep(1)
    raise SystemExit(f"not converged in {timeout} s")


def _log_time(node, path, pattern, first=True):
    pick = "head -1" if first else "tail -1"
    out = remote.ssh(node, f"grep -h -E '{pattern}' {path} | {pick}", timeout=60).stdout.strip()
    if not out:
        return None
    stamp = datetime.datetime.strptime(out[:23], "%Y-%m-%d %H:%M:%S,%f")
    return stamp.timestamp()


EVENTS = "/tmp/bench-events.log"
STOP_RECORDER = f"[ -f {EVENTS}.pid ] && kill $(cat {EVENTS}.pid) 2>/dev/null; rm -f {EVENTS}.pid"


def events_start():
    """Record the master's event bus (`salt-run state.event`) to EVENTS, and
    return once the recorder is seen to receive (a marker event it logs)."""
    remote.ssh("master", f"{STOP_RECORDER}; nohup salt-run state.event pretty=False > {EVENTS} 2>&1 < /dev/null & "
                f"echo $! > {EVENTS}.pid", timeout=60)  # fmt: skip
    for _ in range(20):
        remote.ssh("master", "salt-run event.send bench/recorder/ready", timeout=120)
        if remote.ssh("master", f"grep -c '^bench/recorder/ready' {EVENTS}", timeout=30).stdout.strip() not in ("", "0"):
            return
    raise SystemExit("the master's event recorder never received an event")


def events_stop():
    """The recorded events as (unix time, tag, data), and the recorder ended."""
    out = remote.ssh("master", f"{STOP_RECORDER}; cat {EVENTS}", timeout=60).stdout
    events = []
    for line in out.splitlines():
        tag, _, raw = line.partition("\t")
        try:
            data = json.loads(raw)
            stamp = datetime.datetime.fromisoformat(data["_stamp"]).replace(tzinfo=datetime.timezone.utc)
        except (ValueError, KeyError, TypeError):
            continue
        events.append((stamp.timestamp(), tag, data))
    return events


def join_timeline(name, events, t0):
    """Where a join of NAME went, from the master's events: seconds from the
    join command (T0) to its first accepted auth, its start event, the
    orchestration's start and end, and each job the orchestration published
    (its own duration)."""
    marks, jobs, orch = {}, {}, None
    for stamp, tag, data in events:
        if tag == f"salt/minion/{name}/start" and "start event" not in marks:
            marks["start event"] = stamp
        elif tag == "salt/auth" and data.get("id") == name and data.get("act") == "accept":
            marks.setdefault("first auth accepted", stamp)  # its key autosigned by the join token
        elif tag.startswith("salt/run/") and tag.endswith("/new") and data.get("fun") == "runner.state.orchestrate":
            if name in json.dumps(data.get("fun_args", [])) and orch is None:
                orch = {"jid": data.get("jid"), "start": stamp}
        elif orch and tag == f"salt/run/{orch['jid']}/ret" and "end" not in orch:
            orch["end"] = stamp
        elif (tag.startswith("salt/job/") and tag.endswith("/new") and orch and "end" not in orch
              and data.get("fun") not in ("test.ping", "saltutil.find_job")):  # the lab's waits, orch's polls
            arg = " ".join(str(a) for a in data.get("arg", []) if not isinstance(a, dict))
            jobs[data["jid"]] = {"what": f"{data.get('fun')} {arg} on {data.get('tgt')}".replace("  ", " "),
                                 "start": stamp, "end": stamp}  # fmt: skip
        elif tag.startswith("salt/job/") and "/ret/" in tag:
            jid = tag.split("/")[2]
            if jid in jobs:
                jobs[jid]["end"] = max(jobs[jid]["end"], stamp)
    parts = [f"{what} {stamp - t0:.1f} s" for what, stamp in sorted(marks.items(), key=lambda kv: kv[1])]
    if orch:
        parts.append(f"orchestration starts {orch['start'] - t0:.1f} s")
        parts += [f"[{j['what']}: {j['end'] - j['start']:.1f} s]" for j in jobs.values()]
        if "end" in orch:
            parts.append(f"orchestration ends {orch['end'] - t0:.1f} s")
    return parts


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--burst", type=int, default=3)
    args = parser.parse_args()
    ops.up()
    table, notes = Table(), []
    floors, ups, joins, leaves, phases = [], [], [], [], []
    for i in range(args.runs):
        name = f"node{90 + i}"
        floors.append(probes.floor())
        events_start()
        t0 = time.time()
        ops.join([name])
        ups.append(time.time() - t0)
        joins.append(until(lambda: probes.everywhere([name])) - t0)
        minion_start = _log_time(name, "/var/log/salt/minion", "Setting up the Salt Minion|Starting up the Salt Minion")
        timeline = join_timeline(name, events_stop(), t0)
        phases.append([f"salt-minion starts {minion_start - t0:.1f} s"] * bool(minion_start) + timeline
                      + [f"visible everywhere {joins[-1]:.1f} s"])  # fmt: skip
        t1 = time.time()
        ops.leave([name])
        stopped = time.time()
        leaves.append(until(lambda: probes.nowhere([name])) - stopped)
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
        ops.join(names)
        burst_join = until(lambda: probes.everywhere(names)) - t0
        ops.leave(names)
        stopped = time.time()
        burst_leave = until(lambda: probes.nowhere(names)) - stopped
        table.add(f"burst: {args.burst} nodes join at once, command to all visible everywhere", [burst_join],
                  ratio=f"{burst_join / f:.1f}x floor")  # fmt: skip
        table.add(f"burst: {args.burst} nodes leave at once, stopped to all gone", [burst_leave],
                  ratio=f"{burst_leave / f:.1f}x floor")  # fmt: skip

    for parts in phases:
        notes.append("join timeline (seconds after the join command; [job: its own duration]): " + ", ".join(parts))
    write_results("join", table.markdown() + "\n\n" + "\n".join(f"- {n}" for n in notes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
