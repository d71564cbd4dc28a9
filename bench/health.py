#!/usr/bin/env python3
"""Benchmark: health-gated membership in the lab.

Drain and recovery: each run breaks a compute node (nginx stopped on node2,
or the shared home unmounted on node1), times the fault to the node out of
both membership files (the gateway's upstream and the master's hostfile),
repairs it and times the repair to the node back in both.  Printed beside
the check interval and the hysteresis they follow from (pillar/health.sls,
saltcluster:health).

Idle cost: on an idle compute node, the CPU time over IDLE_WINDOW seconds
of the salt-minion service (its cgroup, so the checks' child processes
count) and of the whole guest, with the health schedule running and with
the scheduler paused (schedule.disable; enabled again after),
given as CPU seconds per minute.

    sudo $(scripts/bootstrap | tail -1)/bin/python bench/health.py [--runs N] [--idle-window S]
"""

import argparse
import statistics
import sys
import time

from common import host_cpu, write_results
from labkit import ops, probes, remote
from labkit.base import LabError
from labkit.figures import Table

JOB = "saltcluster-health"
HOSTFILE = "/home/jobhandler/hosts"
HOME = "/home/jobhandler"
POLL = 1
WAIT = 600  # seconds: no fault or repair waits longer (the lab tests' bounds are tighter)
MINION_CPU = "/sys/fs/cgroup/system.slice/salt-minion.service/cpu.stat"

# fault: (node, what breaks it, what repairs it)
FAULTS = {
    "nginx stopped": ("node2", "systemctl stop nginx", "systemctl start nginx"),
    "home unmounted": ("node1", f"umount -l {HOME}", f"mountpoint -q {HOME} || mount {HOME}"),
}


def sh(node, command):
    res = remote.ssh(node, command, timeout=120)
    if res.returncode != 0:
        raise LabError(f"{node}: {command}: rc {res.returncode}: {res.stderr.strip()}")
    return res.stdout


def listed(name):
    """(in the upstream, in the hostfile)."""
    upstream = remote.ssh("gateway", f"grep -c '# {name}$' {probes.GATEWAY_UPSTREAM}", timeout=60).stdout.strip()
    hostfile = remote.ssh("master", f"grep -c '^{name}:' {HOSTFILE}", timeout=60).stdout.strip()
    return upstream == "1", hostfile == "1"


def until(check, what):
    t0 = time.monotonic()
    while time.monotonic() - t0 < WAIT:
        if check():
            return time.monotonic() - t0
        time.sleep(POLL)
    raise LabError(f"{what}: not within {WAIT} s: {check()}")


def settings():
    ret = remote.salt_json(["node1", "schedule.list", "return_yaml=False"])
    interval = (ret["node1"].get(JOB) or {}).get("seconds")
    health = remote.salt_json(["node1", "cluster.settings"])["node1"]["health"]
    return interval, health["fail_after"], health["pass_after"]


def cpu_sample(node):
    """(salt-minion service CPU seconds, whole-guest busy CPU seconds) so far."""
    out = sh(node, f"grep '^usage_usec ' {MINION_CPU}; head -1 /proc/stat; getconf CLK_TCK")
    lines = out.split("\n")
    minion = int(lines[0].split()[1]) / 1e6
    fields = [int(v) for v in lines[1].split()[1:]]
    ticks = int(lines[2])
    busy = sum(fields) - fields[3] - fields[4]  # all but idle and iowait
    return minion, busy / ticks


def idle_cost(node, window):
    """CPU seconds per minute on NODE over WINDOW: (minion, guest)."""
    a = cpu_sample(node)
    time.sleep(window)
    b = cpu_sample(node)
    return tuple((y - x) * 60 / window for x, y in zip(a, b))


def schedule_enabled(node):
    """Whether NODE's scheduler runs (schedule.list shows enabled: False
    while it is paused)."""
    ret = remote.salt_json([node, "schedule.list", "return_yaml=False"])
    return ret[node].get("enabled", True) is not False


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--idle-window", type=int, default=120)
    args = parser.parse_args()
    ops.up()
    secs, _, failed = ops.highstate()
    if failed:
        raise SystemExit("highstate failed:\n  " + "\n  ".join(failed))
    interval, fail_after, pass_after = settings()
    model, xsave = host_cpu()
    table, notes = Table(), []
    for node in ("node1", "node2"):
        until(lambda node=node: all(listed(node)), f"{node} in both files before the runs")
    for fault, (node, breaks, repairs) in FAULTS.items():
        drained, back = [], []
        for i in range(args.runs):
            sh(node, breaks)
            try:
                drained.append(until(lambda: not any(listed(node)), f"{node} drained ({fault})"))
            finally:
                sh(node, repairs)
            back.append(until(lambda: all(listed(node)), f"{node} back ({fault})"))
            print(f"{fault} on {node}, run {i + 1}: drained after {drained[-1]:.1f} s, back after {back[-1]:.1f} s",
                  flush=True)  # fmt: skip
        table.add(f"{fault} ({node}): fault to out of upstream and hostfile", drained,
                  ratio=f"{statistics.median(drained) / interval:.1f}x interval")  # fmt: skip
        table.add(f"{fault} ({node}): repair to back in both", back,
                  ratio=f"{statistics.median(back) / interval:.1f}x interval")  # fmt: skip

    node = "node1"
    on = idle_cost(node, args.idle_window)
    # the job comes from pillar, which schedule.disable_job cannot change:
    # the minion's whole scheduler is paused instead (its only other job,
    # the hourly mine update, does not fall in the window)
    remote.salt_json([node, "schedule.disable"])
    try:
        if schedule_enabled(node):
            raise LabError(f"schedule.disable left the scheduler running on {node}")
        off = idle_cost(node, args.idle_window)
    finally:
        remote.salt_json([node, "schedule.enable"])
    if not schedule_enabled(node):
        raise LabError(f"schedule.enable left the scheduler paused on {node}")
    table.add(f"idle {node}, health checks every {interval} s: salt-minion CPU", [on[0]], unit="s/min")
    table.add(f"idle {node}, health checks disabled: salt-minion CPU", [off[0]], unit="s/min",
              ratio=f"checks cost {on[0] - off[0]:.2f} CPU s/min")  # fmt: skip
    table.add(f"idle {node}, health checks every {interval} s: whole guest CPU", [on[1]], unit="s/min")
    table.add(f"idle {node}, health checks disabled: whole guest CPU", [off[1]], unit="s/min",
              ratio=f"checks cost {on[1] - off[1]:.2f} CPU s/min")  # fmt: skip
    notes.append(f"check interval {interval} s; drained after {fail_after} failed checks in a row, "
                 f"back after {pass_after} passed ones (saltcluster:health); each fault {args.runs} runs")  # fmt: skip
    notes.append(f"idle windows {args.idle_window} s each, one vCPU guest; host CPU {model}, XSAVE {xsave} B")
    notes.append("drained/back: the fault or repair command to both files read as changed (polled every "
                 f"{POLL} s from outside the guests)")
    write_results("health", table.markdown() + "\n\n" + "\n".join(f"- {n}" for n in notes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
