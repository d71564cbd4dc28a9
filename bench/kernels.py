#!/usr/bin/env python3
"""Benchmark: the lab's kernels side by side, in one run on one machine.

For each kernel (default: 6.12 in ptrace mode, then 7.3 in seccomp mode;
both boot the same Debian 13 image), from a fresh lab: every host answering
ssh, every minion answering Salt, the first whole-lab highstate; then, on
node1 against this host, a system call, the time per page fault of an
allocation and `import salt.minion`; a trivial `state.single` on all hosts
(the floor) and an idempotent re-apply; `salt master test.ping` against
`salt master mpi.run cpi np=4`; and one join, from the command to the node
being in every membership file.  The last table gives new against old for
each figure.  The host's CPU model and XSAVE size head the results: they
change guest speed more than anything else, so compare only within a run.

Writes bench/results-kernels.md.  Builds the kernels it lacks (about 8
minutes each on 2 cores).

    sudo $(scripts/bootstrap | tail -1)/bin/python bench/kernels.py [--runs N] [--kernels 6.12,7.3]
"""

import argparse
import json
import shlex
import statistics
import sys
import time

from common import REPO, Table, host_cpu, saltlab
from join import everywhere, until
from lab import ALLOC, GUEST_PYTHON, IMPORT, SYSCALL, floor, reapply
from mpi import lab_round


def measure(kernel, runs, quick=False):
    """{figure: [samples]} for one kernel, from a fresh lab.  QUICK: lab up
    and the guest probes only (no highstate, re-apply, mpi.run or join)."""
    saltlab.KERNEL = kernel
    saltlab.cmd_down(None)
    saltlab.build_kernel()
    saltlab.cmd_up(None)
    figures = json.loads((saltlab.CACHE / "figures.json").read_text())
    out = {"lab up: every host answering ssh (s)": [figures["boot_to_ssh_s"]],
           "lab up: every minion answering Salt (s)": [figures["boot_to_minions_s"]]}  # fmt: skip
    if not quick:
        secs, _, failed = saltlab.highstate()
        if failed:
            raise SystemExit(f"{kernel}: first highstate failed:\n" + "\n".join(failed))
        out["first whole-lab highstate (s)"] = [secs]
    probes = {"syscall": SYSCALL, "alloc": ALLOC, "import": IMPORT}
    rows = {key: [] for key in probes}
    for _ in range(runs):
        for key, probe in probes.items():
            res = saltlab.ssh("node1", f"{GUEST_PYTHON} -c {shlex.quote(probe)}", timeout=300)
            rows[key].append([float(v) for v in res.stdout.split()])
    out["guest: one system call, getppid (us)"] = [r[0] for r in rows["syscall"]]
    out["guest: time per minor page fault, allocating 1M objects (us)"] = [1e6 * s / f for s, f in rows["alloc"]]
    out["guest: import salt.minion (s)"] = [r[0] for r in rows["import"]]
    if quick:
        return out
    floors, reapplies = [], []
    for _ in range(runs):
        floors.append(floor())
        reapplies.append(reapply()[0])
    out["salt '*' state.single test.succeed_without_changes (s)"] = floors
    out["idempotent re-apply, salt '*' state.apply (s)"] = reapplies
    pings, clis = [], []
    for _ in range(runs):
        ping, run, _bare = lab_round()
        pings.append(ping)
        if run is None:
            raise SystemExit(f"{kernel}: mpi.run cpi failed or hung")
        clis.append(run[0])
    out["salt master test.ping (s)"] = pings
    out["salt master mpi.run cpi np=4 (s)"] = clis
    t0 = time.time()
    name = f"k{kernel.replace('.', '')}"
    saltlab.cmd_join(argparse.Namespace(names=[name]))
    out["join: command to visible everywhere (s)"] = [until(everywhere([name])) - t0]
    saltlab.cmd_leave(argparse.Namespace(names=[name], verb="leave"))
    return out


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--kernels", default="6.12,7.3")
    parser.add_argument("--quick", action="store_true", help="lab up and guest probes only")
    args = parser.parse_args()
    kernels = args.kernels.split(",")
    model, xstate = host_cpu()
    head = f"Host CPU: {model}; XSAVE area {xstate} bytes; one run, same machine, same Debian 13 image."
    print(head, flush=True)
    results = {}
    for kernel in kernels:
        print(f"== kernel {kernel} ({' '.join(saltlab.KERNELS[kernel]['cmdline']) or 'ptrace mode'})", flush=True)
        results[kernel] = measure(kernel, args.runs, args.quick)
    saltlab.KERNEL = kernels[-1]
    saltlab.cmd_down(None)
    text = [head, ""]
    for kernel in kernels:
        table = Table()
        for figure, xs in results[kernel].items():
            table.add(f"[{kernel}] {figure}", xs, unit="")
        text += [f"## kernel {kernel} ({' '.join(saltlab.KERNELS[kernel]['cmdline']) or 'ptrace mode'})", "",
                 table.markdown(), ""]  # fmt: skip
    if len(kernels) == 2:
        old, new = kernels
        text += [f"## {new} against {old} (medians)", "", f"| figure | {old} | {new} | {new} / {old} |",
                 "| --- | ---: | ---: | ---: |"]  # fmt: skip
        for figure in results[old]:
            a, b = statistics.median(results[old][figure]), statistics.median(results[new][figure])
            text.append(f"| {figure} | {a:.3f} | {b:.3f} | {b / a:.2f} |")
    body = "\n".join(text)
    print("\n" + body)
    (REPO / "bench/results-kernels.md").write_text("# bench/kernels.py\n\n" + body + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
