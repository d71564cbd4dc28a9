"""saltlab demo: build, boot, two highstates, the MPI programs, the load
balancer from inside and outside the cluster, and a summary."""

import time

from labkit import config, figures, ops, probes, remote
from labkit.base import LabError, need_root, say

PROGRAMS = (("cpi", ["np=4"]), ("hellow", ["np=4"]), ("mandel", ["np=4"]))
LB_REQUESTS = 6  # enough answers to see strict round robin over two nodes


def demo():
    need_root()
    t0 = time.monotonic()
    ops.build()
    ops.up()
    summary = []
    say("highstate: salt '*' state.apply (first run configures everything)")
    secs, changed, failed = ops.highstate()
    if failed:
        raise LabError("highstate failed:\n  " + "\n  ".join(failed))
    summary.append(f"first highstate: {changed} changes in {secs:.0f} s")
    figures.record("first_highstate_s", secs)
    secs, changed, failed = ops.highstate()
    summary.append(f"second highstate: {changed} changes in {secs:.0f} s")
    figures.record("second_highstate_s", secs)
    for prog, extra in PROGRAMS:
        say(f"salt master mpi.run {prog} {' '.join(extra)}")
        ret = ops.mpi_run(prog, *extra)
        if not isinstance(ret, dict) or ret.get("retcode") != 0:
            raise LabError(f"mpi.run {prog} failed: {ret}")
        print(ret["stdout"].rstrip())
        summary.append(f"mpi.run {prog}: retcode 0 in {ret['duration']:.2f} s on {', '.join(ret['hosts'])} "
                       "(one attempt)")
    for origin, url in (("master", "http://gateway/whoami"), ("client", config.lb_url())):
        answers = []
        for _ in range(LB_REQUESTS):
            res = remote.ssh(origin, f"curl -s --max-time {config.CURL_TIMEOUT} {url}", timeout=config.CURL_SSH_TIMEOUT)
            answers.append(res.stdout.split()[0] if res.stdout.strip() else "(no answer)")
        say(f"gateway from {origin}: {' '.join(answers)}")
        summary.append(f"load balancer from {origin}: {' '.join(answers)}")
    summary.append(f"lab memory: {probes.memory_mb():.0f} MB peak resident (sum of the hosts' UML kernels)")
    print("\n== saltlab demo summary")
    for line in summary:
        print(f"  {line}")
    print(f"  total {time.monotonic() - t0:.0f} s; figures in {figures.FIGURES}")
    return 0
