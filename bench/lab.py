#!/usr/bin/env python3
"""Benchmark: the lab's speed and memory, every figure against a baseline
taken in the same run (these machines are noisy).

- lab up from the built image and the first (whole-lab) highstate, from a
  fresh lab (`--fresh N` times; each powers the lab off and boots it again);
- why Salt is slow in the guests: the cost of a page fault, of a system
  call and of `import salt.minion` on node1 against the host, same run;
- idempotent re-apply: 0 changes, wall time against a trivial `state.single`
  on all hosts (target <= 3x), and where the time goes (Salt's own per-state
  durations);
- peak memory (summed RSS of the service's processes, sampled every 0.2 s)
  of salt-master on the master and salt-minion on node1 during a highstate;
- wrk from the outside client through the gateway against straight to
  node1 (target p50 ratio <= 1.3x), the same at one connection (no
  queueing: what the extra hop itself costs), and the share of requests per backend
  from the gateway's access log (target: within 1 % of even).

Times are taken by the guests' own clocks around the command.  Writes
bench/results-lab.md.  Needs a built lab; boots it if it is down.

    sudo $(scripts/bootstrap | tail -1)/bin/python bench/lab.py [--runs N] [--fresh N]
"""

import argparse
import json
import re
import shlex
import statistics
import subprocess
import sys
import time

from common import write_results
from labkit import config, figures, ops, probes, remote
from labkit.figures import Table, verdict

PEAK_RSS = r"""
svc=$1; out=$2; : > $out
while [ -e /tmp/bench.sampling ]; do
  s=0
  for p in $(cat /sys/fs/cgroup/system.slice/$svc/cgroup.procs 2>/dev/null); do
    r=$(awk '/^VmRSS/ {print $2}' /proc/$p/status 2>/dev/null); s=$((s + ${r:-0}))
  done
  echo $s >> $out; sleep 0.2
done
"""

# seconds and minor page faults of one allocation-heavy line of Python
ALLOC = (
    "import resource, time\n"
    "f = resource.getrusage(resource.RUSAGE_SELF).ru_minflt; t = time.perf_counter()\n"
    "x = [object() for _ in range(10**6)]\n"
    "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f)"
)
# microseconds per system call
SYSCALL = (
    "import os, time; t = time.perf_counter(); [os.getppid() for _ in range(20000)]; "
    "print((time.perf_counter() - t) / 20000 * 1e6)"
)
IMPORT = "import time; t = time.perf_counter(); import salt.minion; print(time.perf_counter() - t)"
GUEST_PYTHON = "/opt/salt/bin/python3"
NODE1_URL = f"http://{config.address('node1')}/whoami"  # a backend, straight

SUMMARY = r"""
import json, collections, sys
data = json.load(open("/tmp/hs.json"))
changes, per_minion, per_state = 0, {}, collections.Counter()
for minion, states in data.items():
    if not isinstance(states, dict):
        print(json.dumps({"error": f"{minion}: {states}"})); sys.exit()
    per_minion[minion] = sum(s.get("duration", 0) for s in states.values()) / 1000
    for key, s in states.items():
        changes += bool(s.get("changes"))
        fun = key.split("_|-")[0] + "." + key.split("_|-")[-1]
        per_state[fun] += s.get("duration", 0) / 1000
print(json.dumps({"changes": changes, "per_minion": per_minion, "top": per_state.most_common(6)}))
"""


def reapply(sample_memory=False):
    if sample_memory:
        remote.ssh("master", f"cat > /tmp/peak.sh <<'EOF'\n{PEAK_RSS}\nEOF")
        remote.ssh("node1", f"cat > /tmp/peak.sh <<'EOF'\n{PEAK_RSS}\nEOF")
        for node, svc in (("master", "salt-master.service"), ("node1", "salt-minion.service")):
            remote.ssh(node, f"touch /tmp/bench.sampling; nohup bash /tmp/peak.sh {svc} /tmp/peak.txt >/dev/null 2>&1 &")
    secs, rc, out = remote.guest_time("master", "salt --static --out=json '*' state.apply queue=True > /tmp/hs.json")
    peaks = {}
    if sample_memory:
        for node in ("master", "node1"):
            res = remote.ssh(node, "rm -f /tmp/bench.sampling; sleep 0.5; sort -n /tmp/peak.txt | tail -1")
            peaks[node] = int(res.stdout.split()[0]) / 1024
    remote.ssh("master", f"cat > /tmp/summary.py <<'EOF'\n{SUMMARY}\nEOF")
    summary = json.loads(remote.ssh("master", "python3 /tmp/summary.py", timeout=60).stdout)
    if "error" in summary:
        raise SystemExit(f"highstate failed: {summary['error']}")
    return secs, summary, peaks


def wrk(url, seconds=8, connections=8):
    threads = min(2, connections)
    res = remote.ssh("client", f"wrk -t{threads} -c{connections} -d{seconds}s --latency {url}", timeout=seconds + 60)
    p50 = re.search(r"^\s+50%\s+([\d.]+)(us|ms|s)\s*$", res.stdout, re.M)
    reqs = re.search(r"(\d+) requests in", res.stdout)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)|Socket errors: (.*)", res.stdout)
    if not p50:
        raise SystemExit(f"wrk {url}: no latency in output:\n{res.stdout}{res.stderr}")
    scale = {"us": 1e-3, "ms": 1.0, "s": 1e3}[p50.group(2)]
    return float(p50.group(1)) * scale, int(reqs.group(1)), errors.group(0) if errors else None


def backend_shares(before):
    time.sleep(2)  # the access log is buffered: flushed every second
    out = remote.ssh("gateway", f"tail -n +{before + 1} /var/log/nginx/access.log | awk '{{print $NF}}' | sort | uniq -c").stdout
    counts = {addr: int(n) for n, addr in (line.split() for line in out.splitlines())}
    total = sum(counts.values())
    return {addr: n / total for addr, n in counts.items()}, total


def log_lines():
    return int(remote.ssh("gateway", "wc -l < /var/log/nginx/access.log").stdout.strip() or 0)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--fresh", type=int, default=1, help="fresh-lab boots (each about 3 minutes)")
    args = parser.parse_args()
    table, notes = Table(), []

    # -- lab up and first highstate, from a fresh lab
    ups_ssh, ups_salt, firsts = [], [], []
    for _ in range(args.fresh):
        ops.down()
        ops.up()
        recorded = figures.load()
        ups_ssh.append(recorded["boot_to_ssh_s"])
        ups_salt.append(recorded["boot_to_minions_s"])
        secs, changed, failed = ops.highstate(everyone=True)  # the operator's `salt '*' state.apply`
        if failed:
            raise SystemExit("first highstate failed:\n" + "\n".join(failed))
        firsts.append(secs)
    if args.fresh:
        table.add("lab up from the built image: every host answering ssh", ups_ssh,
                  target=f"<= 30 s: {verdict(statistics.median(ups_ssh) <= 30)}")  # fmt: skip
        table.add("lab up from the built image: every minion answering Salt", ups_salt,
                  target=f"<= 30 s: {verdict(statistics.median(ups_salt) <= 30)}")  # fmt: skip
        table.add("whole-lab first highstate (one state.apply; fresh lab)", firsts)
    else:  # the figures the last fresh `saltlab up` / first highstate recorded
        ops.up()
        ops.highstate()
        recorded = figures.load()
        for key, label in (("boot_to_ssh_s", "lab up: every host answering ssh (last fresh saltlab up)"),
                           ("boot_to_minions_s", "lab up: every minion answering Salt (last fresh saltlab up)"),
                           ("first_highstate_s", "whole-lab first highstate (last saltlab demo)")):  # fmt: skip
            if key in recorded:
                table.add(label, [recorded[key]])
    recorded = figures.load()
    for key, label in (("kernel_build_s", "UML kernel build (recorded when built)"),
                       ("image_build_s", "host image build (recorded when built)")):  # fmt: skip
        if key in recorded:
            table.add(label, [recorded[key]])

    # -- why Salt is slow in the guests: page faults, system calls and imports, guest against host
    snippets = {"alloc": ALLOC, "syscall": SYSCALL, "import": IMPORT}
    guest, host = {key: [] for key in snippets}, {key: [] for key in snippets}
    for _ in range(args.runs):
        for key, probe in snippets.items():
            out = remote.ssh("node1", f"{GUEST_PYTHON} -c {shlex.quote(probe)}", timeout=300).stdout
            guest[key].append([float(v) for v in out.split()])
            out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
            host[key].append([float(v) for v in out.split()])

    def first(rows):
        return [row[0] for row in rows]

    def per_fault(rows):  # the alloc probe prints seconds and minor faults
        return [1e6 * secs / faults for secs, faults in rows]

    def vs_host(g, h, unit=None):
        text = f"{statistics.median(g) / statistics.median(h):.0f}x host"
        return f"{text} ({statistics.median(h):.2f} {unit})" if unit else text

    table.add("Python allocating 1M objects on node1 (guest)", first(guest["alloc"]),
              ratio=vs_host(first(guest["alloc"]), first(host["alloc"])))  # fmt: skip
    # in a guest the faults are most of that time; on the host the objects are
    table.add("that allocation's time per minor page fault, guest", per_fault(guest["alloc"]), unit="us",
              ratio=vs_host(per_fault(guest["alloc"]), per_fault(host["alloc"]), "us"))  # fmt: skip
    table.add("cost of one system call (getppid) in a guest", first(guest["syscall"]), unit="us",
              ratio=vs_host(first(guest["syscall"]), first(host["syscall"]), "us"))  # fmt: skip
    table.add("import salt.minion on node1 (guest)", first(guest["import"]),
              ratio=vs_host(first(guest["import"]), first(host["import"])))  # fmt: skip

    # -- idempotent re-apply against a trivial state on all hosts
    floors, reapplies, changes, peaks = [], [], [], {"master": [], "node1": []}
    summary = None
    for i in range(args.runs):
        floors.append(probes.floor())
        secs, summary, peak = reapply(sample_memory=True)
        reapplies.append(secs)
        changes.append(summary["changes"])
        for node, mb in peak.items():
            peaks[node].append(mb)
    f = statistics.median(floors)
    r = statistics.median(reapplies) / f
    table.add("floor: salt '*' state.single test.succeed_without_changes", floors)
    table.add("idempotent re-apply: salt '*' state.apply", reapplies, ratio=f"{r:.2f}x floor",
              target=f"<= 3x floor: {verdict(r <= 3)}; changes {max(changes)} (0: {verdict(max(changes) == 0)})")  # fmt: skip
    notes.append("Where a re-apply's time goes (Salt's per-state durations, last run): per host "
                 + ", ".join(f"{m} {s:.1f} s" for m, s in sorted(summary["per_minion"].items()))
                 + "; top state functions summed over hosts: "
                 + ", ".join(f"{fun} {s:.1f} s" for fun, s in summary["top"]) + ".")  # fmt: skip
    table.add("peak memory: salt-master service on the master during a highstate", peaks["master"], unit="MB")
    table.add("peak memory: salt-minion service on node1 during a highstate", peaks["node1"], unit="MB")

    # -- load balancer: wrk through the gateway vs straight to node1; backend shares
    via, direct, shares_all = [], [], []
    for _ in range(args.runs):
        before = log_lines()
        p50, n, err = wrk(config.lb_url())
        shares, total = backend_shares(before)
        if not shares:
            raise SystemExit("the gateway's access log shows no proxied requests")
        shares_all.append(max(abs(s - 1 / len(shares)) for s in shares.values()))
        via.append(p50)
        p50, n2, err2 = wrk(NODE1_URL)
        direct.append(p50)
        if err or err2:
            notes.append(f"wrk errors: {err or ''} {err2 or ''}")
    ratio = statistics.median(via) / statistics.median(direct)
    table.add("wrk p50 latency straight to node1 (from the client)", direct, unit="ms")
    table.add("wrk p50 latency through the gateway (from the client)", via, unit="ms", ratio=f"{ratio:.2f}x direct",
              target=f"<= 1.3x: {verdict(ratio <= 1.3)}")  # fmt: skip
    # one connection: no queueing, what the extra hop itself costs
    via1, direct1 = [], []
    for _ in range(args.runs):
        via1.append(wrk(config.lb_url(), seconds=5, connections=1)[0])
        direct1.append(wrk(NODE1_URL, seconds=5, connections=1)[0])
    table.add("wrk p50 latency, one connection, straight to node1", direct1, unit="ms")
    ratio1 = statistics.median(via1) / statistics.median(direct1)
    table.add("wrk p50 latency, one connection, through the gateway", via1, unit="ms",
              ratio=f"{ratio1:.2f}x direct", target=f"<= 1.3x: {verdict(ratio1 <= 1.3)}")  # fmt: skip
    worst = max(shares_all)
    table.add("round robin: largest deviation of a backend's share from even", [100 * s for s in shares_all],
              unit="%", target=f"<= 1 %: {verdict(worst <= 0.01)}")  # fmt: skip

    write_results("lab", table.markdown() + "\n\n" + "\n".join(f"- {n}" for n in notes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
