"""Shared by the benchmarks: the repository (with lab/ on the import path,
so `from labkit import ...` works), this host's CPU, and the results file."""

import pathlib
import subprocess
import sys
import tempfile

REPO = pathlib.Path(__file__).resolve().parent.parent
if str(REPO / "lab") not in sys.path:
    sys.path.insert(0, str(REPO / "lab"))

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


def write_results(bench, text):
    """Print TEXT and write it to bench/results-BENCH.md."""
    print("\n" + text)
    (REPO / f"bench/results-{bench}.md").write_text(f"# bench/{bench}.py\n\n" + text + "\n")
