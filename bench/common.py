"""Shared by the lab benchmarks: the saltlab module, timing inside a guest
(so ssh from the host is not counted), and the results table."""

import importlib.machinery
import importlib.util
import pathlib
import statistics
import subprocess
import tempfile

REPO = pathlib.Path(__file__).resolve().parent.parent


def load_saltlab():
    loader = importlib.machinery.SourceFileLoader("saltlab", str(REPO / "lab/saltlab"))
    spec = importlib.util.spec_from_loader("saltlab", loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


saltlab = load_saltlab()


def guest_time(node, command, timeout=900):
    """Run COMMAND on NODE; (seconds measured by the guest's own clock, rc, stdout)."""
    wrapped = (
        "s=$(date +%s%N); (" + command + ") >/tmp/bench.out 2>&1; rc=$?; e=$(date +%s%N); "
        "echo \"$(( (e - s) / 1000000 )) $rc\"; cat /tmp/bench.out"
    )
    res = saltlab.ssh(node, wrapped, timeout=timeout)
    head, _, out = res.stdout.partition("\n")
    ms, rc = head.split()
    return int(ms) / 1000, int(rc), out


class Table:
    """Rows of (metric, samples, unit, ratio text, target text)."""

    def __init__(self):
        self.rows = []

    def add(self, metric, samples, unit="s", ratio="-", target="-"):
        self.rows.append((metric, list(samples), unit, ratio, target))
        xs = list(samples)
        print(f"  {metric}: median {statistics.median(xs):.3f} {unit} over {len(xs)} ({ratio}; {target})", flush=True)

    def markdown(self):
        lines = [
            "| metric | median | min | max | runs | unit | ratio | target |",
            "| --- | ---: | ---: | ---: | ---: | --- | --- | --- |",
        ]
        for metric, xs, unit, ratio, target in self.rows:
            lines.append(
                f"| {metric} | {statistics.median(xs):.3f} | {min(xs):.3f} | {max(xs):.3f} | {len(xs)} "
                f"| {unit} | {ratio} | {target} |"
            )
        return "\n".join(lines)


def verdict(ok):
    return "met" if ok else "MISSED"


XSTATE_C = r"""
#include <cpuid.h>
#include <stdio.h>
int main(void) {
    unsigned a, b, c, d;  /* CPUID 0xD.0 EBX: the XSAVE area for the enabled features */
    if (!__get_cpuid_count(0xd, 0, &a, &b, &c, &d)) return 1;
    printf("%u\n", b);
    return 0;
}
"""


def host_cpu():
    """This host's CPU model and the size of its XSAVE area in bytes: the
    two things that change a UML guest's speed most (a guest in ptrace mode
    moves that area on every stop), recorded beside every lab figure."""
    model = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
                 "unknown")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        src, exe = pathlib.Path(tmp, "xstate.c"), pathlib.Path(tmp, "xstate")
        src.write_text(XSTATE_C)
        built = subprocess.run(["cc", "-o", str(exe), str(src)], capture_output=True).returncode == 0
        out = subprocess.run([str(exe)], capture_output=True, text=True).stdout.strip() if built else ""
    return model, int(out) if out.isdigit() else None
