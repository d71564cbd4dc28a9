#!/usr/bin/env python3
"""Benchmark: render the membership-driven files (hosts block, hostfile,
known_hosts, upstream) through real Salt loaders from synthetic mine data of
10, 100 and 1,000 compute nodes, in one `state.show_sls cluster.membership`
on a host with the master and gateway roles: what a join or leave renders
(before, this summed four separate show_sls calls, each paying Salt's fixed
cost of about 0.23 s again).  Prints a table and writes it to
bench/results-render.md.  Baseline in the same run: rendering a trivial SLS
(one file.managed with static text), so the ratio shows what membership costs
beyond Salt's own rendering.

Run with the project venv:  $(scripts/bootstrap | tail -1)/bin/python bench/render.py
"""

import json
import pathlib
import statistics
import sys
import tempfile
import time

REPO = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import salt.config  # noqa: E402
from saltfactories.utils.functional import Loaders  # noqa: E402

from tests.support.mine import synthetic  # noqa: E402

SIZES = (10, 100, 1000)
RUNS = 5
# includes cluster.hosts, ssh.known_hosts, mpi.hostfile, lb.config (+ lb.service) for these roles
MEMBERSHIP_SLS = "cluster.membership"


def loaders_for(tmp, n):
    mine = synthetic(n)
    (tmp / f"mine-{n}.json").write_text(json.dumps({m: {"saltcluster_host": e} for m, e in mine.items()}))
    pillar = tmp / "pillar"
    pillar.mkdir(exist_ok=True)
    (pillar / "top.sls").write_text("base:\n  '*':\n    - saltcluster\n    - bench\n")
    (pillar / "bench.sls").write_text("saltcluster:\n  network:\n    cidr: 10.5.0.0/16\n")
    trivial = tmp / "states"
    trivial.mkdir(exist_ok=True)
    (trivial / "trivial.sls").write_text("trivial-file:\n  file.managed:\n    - name: /tmp/x\n    - contents: hello\n")
    opts = salt.config.minion_config(None)
    opts.update(
        id="master",
        root_dir=str(tmp / f"root-{n}"),
        cachedir=str(tmp / f"root-{n}/cache"),
        pki_dir=str(tmp / f"root-{n}/pki"),
        file_client="local",
        file_roots={"base": [str(REPO / "salt"), str(trivial)]},
        pillar_roots={"base": [str(pillar), str(REPO / "pillar")]},
        module_dirs=[str(REPO / "tests/functional/fakes")],
        saltcluster_fake_mine=str(tmp / f"mine-{n}.json"),
        enable_fqdns_grains=False,
        log_level="quiet",
    )
    loaders = Loaders(opts)
    # Loaders computes the grains afresh: the roles go in afterwards
    loaders.grains["roles"] = ["master", "gateway"]
    return loaders


def timed(fn, runs=RUNS):
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return samples


def main():
    rows = []
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = pathlib.Path(tmpdir)
        for n in SIZES:
            loaders = loaders_for(tmp, n)
            mods = loaders.modules

            def render():
                high = mods.state.show_sls(MEMBERSHIP_SLS)
                assert isinstance(high, dict) and "cluster-lb-config-file-managed-nginx-conf" in high, high

            base = timed(lambda: mods.state.show_sls("trivial"))
            work = timed(render)
            backends = len(mods.cluster.upstream())
            assert backends == n, backends
            rows.append((n, statistics.median(work), min(work), max(work), statistics.median(base)))
    lines = [
        "| compute nodes | metric | median | min | max | runs | unit | ratio to trivial SLS |",
        "| ---: | --- | ---: | ---: | ---: | ---: | --- | ---: |",
    ]
    for n, med, lo, hi, base in rows:
        lines.append(
            f"| {n} | render cluster.membership (hosts, known_hosts, hostfile, upstream) | {med:.3f} | {lo:.3f} | {hi:.3f} | {RUNS} | s "
            f"| {med / base:.1f}x ({base * 1000:.0f} ms) |"
        )
    growth = rows[-1][1] / rows[0][1]
    lines.append("")
    lines.append(f"growth 10 -> {SIZES[-1]} nodes: {growth:.1f}x; target: <= 1 s at 1,000 nodes "
                 f"({'met' if rows[-1][1] <= 1.0 else 'MISSED'}: {rows[-1][1]:.3f} s)")  # fmt: skip
    text = "\n".join(lines)
    print(text)
    (REPO / "bench/results-render.md").write_text("# bench/render.py\n\n" + text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
