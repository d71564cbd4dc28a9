#!/usr/bin/env python3
"""Benchmark: the lab's kernels side by side, in one run on one machine.

For each kernel (default: 6.12 in ptrace mode, then 7.3 in seccomp mode;
both boot the same Debian 13 image), from a fresh lab: every host answering
ssh, every minion answering Salt, the first whole-lab highstate; then, on
node1 against this host, a system call, the time per page fault of an
allocation and `import salt.minion`; a trivial `state.single` on all hosts
(the floor) and an idempotent re-apply; `salt master test.ping` against
`salt master mpi.run cpi np=4`; and one join, from the command to the node
being in every membership file.  A variant `7.3:master=2` boots the
master with two virtual CPUs (UML's SMP, seccomp mode only).  The last
table gives each variant against the first, figure by figure.  The host's CPU model and XSAVE size head the results: they
change guest speed more than anything else, so compare only within a run.

Writes bench/results-kernels.md.  Builds the kernels it lacks (about 8
minutes each on 2 cores).

    sudo $(scripts/bootstrap | tail -1)/bin/python bench/kernels.py [--runs N] [--kernels 6.12,7.3,7.3:master=2]
"""

import argparse
import shlex
import statistics
import sys
import time

from common import host_cpu, write_results
from join import until
from lab import ALLOC, GUEST_PYTHON, IMPORT, SYSCALL, reapply
from labkit import build, config, figures, ops, probes, remote
from mpi import lab_round


def variant(text):
    """`7.3` or `7.3:master=2,node1=2`: (kernel, {host: ncpus})."""
    kernel, _, cpus = text.partition(":")
    if kernel not in config.KERNELS:
        raise SystemExit(f"{text}: {kernel!r} is not a lab kernel ({', '.join(config.KERNELS)})")
    try:
        return kernel, {h: int(n) for h, n in (p.split("=") for p in cpus.split(",") if p)}
    except ValueError:
        raise SystemExit(f"{text}: CPUs go as host=N, e.g. 7.3:master=2") from None


def label(text):
    kernel, cpus = variant(text)
    mode = " ".join(config.KERNELS[kernel]["cmdline"]) or "ptrace mode"
    return f"kernel {kernel} ({mode}{''.join(f', {h} ncpus={n}' for h, n in cpus.items())})"


def measure(text, runs, quick=False):
    """{figure: [samples]} for one variant, from a fresh lab.  QUICK: lab up
    and the guest probes only (no highstate, re-apply, mpi.run or join)."""
    kernel, cpus = variant(text)
    config.KERNEL, config.NCPUS = kernel, cpus
    ops.down()
    build.build_kernel()
    ops.up()
    recorded = figures.load()
    out = {"lab up: every host answering ssh (s)": [recorded["boot_to_ssh_s"]],
           "lab up: every minion answering Salt (s)": [recorded["boot_to_minions_s"]]}  # fmt: skip
    if not quick:
        secs, _, failed = ops.highstate()
        if failed:
            raise SystemExit(f"{kernel}: first highstate failed:\n" + "\n".join(failed))
        out["first whole-lab highstate (s)"] = [secs]
    snippets = {"syscall": SYSCALL, "alloc": ALLOC, "import": IMPORT}
    rows = {key: [] for key in snippets}
    for _ in range(runs):
        for key, probe in snippets.items():
            res = remote.ssh("node1", f"{GUEST_PYTHON} -c {shlex.quote(probe)}", timeout=300)
            rows[key].append([float(v) for v in res.stdout.split()])
    out["guest: one system call, getppid (us)"] = [r[0] for r in rows["syscall"]]
    out["guest: time per minor page fault, allocating 1M objects (us)"] = [1e6 * s / f for s, f in rows["alloc"]]
    out["guest: import salt.minion (s)"] = [r[0] for r in rows["import"]]
    if quick:
        return out
    floors, reapplies = [], []
    for _ in range(runs):
        floors.append(probes.floor())
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
    name = "k" + "".join(c for c in text if c.isalnum())[:12]
    ops.join([name])
    out["join: command to visible everywhere (s)"] = [until(lambda: probes.everywhere([name])) - t0]
    ops.leave([name])
    return out


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--kernels", default="6.12,7.3,7.3:master=2",
                        help="variants: KERNEL or KERNEL:HOST=NCPUS,...; the first is the baseline")
    parser.add_argument("--quick", action="store_true", help="lab up and guest probes only")
    args = parser.parse_args()
    variants = _group(args.kernels)
    for text in variants:
        variant(text)
    model, xstate = host_cpu()
    head = f"Host CPU: {model}; XSAVE area {xstate} bytes; one run, same machine, same Debian 13 image."
    print(head, flush=True)
    results = {}
    for text in variants:
        print(f"== {label(text)}", flush=True)
        results[text] = measure(text, args.runs, args.quick)
    config.KERNEL, config.NCPUS = variant(variants[-1])
    ops.down()
    text = [head, ""]
    for v in variants:
        table = figures.Table()
        for figure, xs in results[v].items():
            table.add(f"[{v}] {figure}", xs, unit="")
        text += [f"## {label(v)}", "", table.markdown(), ""]
    if len(variants) > 1:
        base, rest = variants[0], variants[1:]
        text += [f"## against {base} (medians)", "",
                 "| figure | " + " | ".join(variants) + " | " + " | ".join(f"{v} / {base}" for v in rest) + " |",
                 "| --- |" + " ---: |" * (len(variants) + len(rest))]  # fmt: skip
        for figure in results[base]:
            meds = [statistics.median(results[v][figure]) for v in variants]
            text.append(f"| {figure} | " + " | ".join(f"{m:.3f}" for m in meds) + " | "
                        + " | ".join(f"{m / meds[0]:.2f}" for m in meds[1:]) + " |")  # fmt: skip
    write_results("kernels", "\n".join(text))
    return 0


def _group(text):
    """Split KERNEL[:HOST=N,...] variants on the commas that start a kernel."""
    out = []
    for part in text.split(","):
        if part.split(":")[0] in config.KERNELS or not out:
            out.append(part)
        else:
            out[-1] += "," + part
    return out


if __name__ == "__main__":
    sys.exit(main())
