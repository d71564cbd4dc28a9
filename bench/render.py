#!/usr/bin/env python3
"""Benchmark: render the membership-driven files (hosts block, hostfile,
known_hosts, upstream) through real Salt loaders from synthetic mine data of
10, 100 and 1,000 compute nodes, in one `state.show_sls cluster.membership`
on a host with the master and gateway roles: what a join or leave renders,
in one call, so Salt's fixed cost per call counts once.  Prints a table and
writes it to bench/results-render.md.  Baseline in the same run: rendering a
trivial SLS (one file.managed with static text), so the ratio shows what
membership costs beyond Salt's own rendering.

Run with the project venv:  $(scripts/bootstrap | tail -1)/bin/python bench/render.py
"""

import json
import pathlib
import statistics
import sys
import tempfile
import time

from common import REPO, write_results

sys.path.insert(0, str(REPO))

import salt.config  # noqa: E402
from labkit.figures import Table, verdict  # noqa: E402
from saltfactories.utils.functional import Loaders  # noqa: E402

from tests.support.mine import published, synthetic  # noqa: E402

SIZES = (10, 100, 1000)
RUNS = 5
# includes cluster.hosts, ssh.known_hosts, mpi.hostfile, lb.config (+ nginx.service) for these roles
MEMBERSHIP_SLS = "cluster.membership"


def loaders_for(tmp, n):
    mine = synthetic(n)
    (tmp / f"mine-{n}.json").write_text(json.dumps(published(mine)))
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
                assert isinstance(high, dict) and "cluster-lb-config-file-managed-site" in high, high

            base = timed(lambda: mods.state.show_sls("trivial"))
            work = timed(render)
            backends = len(mods.cluster.upstream())
            assert backends == n, backends
            rows.append((n, work, statistics.median(base)))
    table = Table()
    for n, work, base in rows:
        med = statistics.median(work)
        table.add(f"render cluster.membership (hosts, known_hosts, hostfile, upstream), {n} compute nodes", work,
                  ratio=f"{med / base:.1f}x trivial SLS ({base * 1000:.0f} ms)",
                  target=f"<= 1 s: {verdict(med <= 1.0)}" if n == SIZES[-1] else "-")  # fmt: skip
    first, last = statistics.median(rows[0][1]), statistics.median(rows[-1][1])
    write_results("render", table.markdown() + f"\n\ngrowth {SIZES[0]} -> {SIZES[-1]} nodes: {last / first:.1f}x; "
                  f"target: <= 1 s at {SIZES[-1]:,} nodes ({verdict(last <= 1.0)}: {last:.3f} s)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
