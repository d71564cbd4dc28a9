#!/usr/bin/env python3
"""Benchmark: Slurm in the lab (issue 15), each figure beside mpi.run of the
same program in the same run.

- Latency of a tiny job (hellow np=2) on an idle cluster: `salt master
  mpi.submit hellow np=2`, timed on the master's clock from the CLI call to
  the job seen RUNNING and to the job seen ended (scontrol, read every 0.2 s
  on the master), and Slurm's own SubmitTime to StartTime.  Beside it `salt
  master mpi.run hellow np=2`: with scheduler: slurm, mpi.run runs in an
  salloc allocation (it takes its turn in the queue like a batch job, then
  Hydra starts its proxies through srun; no hostfile), timed as a whole CLI
  call and by the duration it reports itself (inside the minion: salloc's
  wait and the job); and Salt's round trip (`test.ping`), the floor of any
  call through the salt CLI.
- Throughput: BURST tiny jobs submitted at once, as a user would (BURST
  `salt --async master mpi.submit hellow np=2` in a row), timed from the
  first call to the last job ended in Slurm; the same with BURST `salt
  --async master mpi.run hellow np=2` (BURST allocations).
- Join: `saltlab join nodeX` timed until nodeX is in the master's hostfile
  and until Slurm lists it idle (usable: registered by its own slurmd,
  admitted by orch.join); then `saltlab leave nodeX`, timed until Slurm no
  longer lists it.

Medians over --runs.  Writes bench/results-slurm.md.  Needs a built lab whose
pillar turns Slurm on (pillar/lab.sls); boots it if it is down.

    sudo $(scripts/bootstrap | tail -1)/bin/python bench/slurm.py [--runs N] [--burst N]
"""

import argparse
import datetime
import json
import re
import statistics
import sys
import time

from common import host_cpu, write_results
from labkit import config, hosts, ops, probes, remote
from labkit.figures import Table, verdict

HOSTFILE = "/home/jobhandler/hosts"
ENDED = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "PREEMPTED", "BOOT_FAIL", "DEADLINE",
         "OUT_OF_MEMORY"}  # fmt: skip
POLL = 1  # seconds between two reads from this host (one ssh each)
GUEST_POLL = 0.2  # seconds between two scontrol reads on the master itself (the latency samples)
IDLE_WAIT = 300  # seconds: the queue empty before a measurement (a tiny job ends within seconds)
JOB_WAIT = 300  # seconds: a tiny job from its submission to ended
BURST_WAIT = 1200  # seconds: BURST tiny jobs (or mpi.run calls) from the first call to all ended
JOIN_WAIT = 900  # seconds: a join to listed in the hostfile and idle in Slurm (bench/results-join.md: 85-119 s)
LEAVE_WAIT = 600  # seconds: a leave to gone from Slurm and from every membership file

# On the master: submit one tiny job through the salt CLI, then read its
# state every GUEST_POLL s; prints "<id> <t0> <t1> <running> <ended> <state>"
# (times on the master's clock: before the CLI call, after it, when the job
# was first seen running, when it was first seen ended).
LATENCY = r"""
t0=$(date +%s.%N)
out=$(salt --out=json --static --timeout=120 master mpi.submit hellow np=2 name={name} | tr -d '\n')
t1=$(date +%s.%N)
id=$(printf '%s' "$out" | sed -n 's/.*"jobid": *"\([0-9][0-9]*\)".*/\1/p')
[ -n "$id" ] || {{ echo "refused: $out"; exit 1; }}
running=
i=0
while [ $i -lt {polls} ]; do
    st=$(scontrol show job -o "$id" 2>/dev/null | sed -n 's/.* JobState=\([A-Z_]*\) .*/\1/p')
    now=$(date +%s.%N)
    case $st in
        PENDING|CONFIGURING|"") ;;
        RUNNING|COMPLETING) [ -n "$running" ] || running=$now ;;
        *) [ -n "$running" ] || running=$now; echo "$id $t0 $t1 $running $now $st"; exit 0 ;;
    esac
    sleep {poll}
    i=$((i + 1))
done
echo "not ended: job $id"
exit 1
"""

# On the master: BURST `salt --async` calls in a row; prints the master's
# clock before the first and after the last.
BURST = r"""
t0=$(date +%s.%N)
for i in $(seq {n}); do
    salt --async master {call} >/dev/null || {{ echo "call $i failed"; exit 1; }}
done
echo "$t0 $(date +%s.%N)"
"""


def sh(node, command, timeout=120):
    res = remote.ssh(node, command, timeout=timeout)
    if res.returncode != 0:
        raise SystemExit(f"{node}: {command[:200]}: rc {res.returncode}: {(res.stderr or res.stdout).strip()[-2000:]}")
    return res.stdout


def slurm_jobs():
    """(the master's clock, every job slurmctld holds, ended ones included
    until MinJobAge)."""
    out = sh("master", "date +%s.%N; scontrol show job -o")
    clock, _, rest = out.partition("\n")
    return float(clock), [r for r in probes.scontrol_records(rest) if r.get("JobId", "").isdigit()]


def slurm_node(name):
    out = remote.ssh("master", f"scontrol show node -o {name}", timeout=60).stdout
    found = [r for r in probes.scontrol_records(out) if r.get("NodeName") == name]
    return found[0] if found else None


def usable(node):
    words = (node or {}).get("State", "").split("+")
    return bool(node) and words[0] == "IDLE" and set(words[1:]) <= {"DYNAMIC_NORM"}


def queue_empty():
    return remote.ssh("master", "squeue -h | wc -l", timeout=60).stdout.strip() == "0"


def until(check, timeout, what):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if check():
            return time.monotonic() - t0
        time.sleep(POLL)
    raise SystemExit(f"{what}: not within {timeout} s")


def stamp(text):
    return datetime.datetime.fromisoformat(text).timestamp()


def latency(run):
    """One tiny batch job on an idle cluster: (CLI call, call to running,
    call to ended, Slurm's SubmitTime to StartTime, job id), or None."""
    until(queue_empty, IDLE_WAIT, "the queue empty before a latency sample")
    script = LATENCY.format(name=f"bench-latency-{run}", polls=int(JOB_WAIT / GUEST_POLL), poll=GUEST_POLL)
    res = remote.ssh("master", script, timeout=JOB_WAIT + 180)
    words = res.stdout.split()
    if res.returncode != 0 or len(words) != 6 or words[5] != "COMPLETED":
        print(f"  latency run {run}: failed: {res.stdout.strip()[-500:]} {res.stderr.strip()[-500:]}", flush=True)
        return None
    jobid, t0, t1, running, ended = words[0], *map(float, words[1:5])
    record = probes.scontrol_records(sh("master", f"scontrol show job -o {jobid}"))[0]
    queued = stamp(record["StartTime"]) - stamp(record["SubmitTime"])
    return t1 - t0, running - t0, ended - t0, queued, jobid


def mpi_run_once():
    """`salt master mpi.run hellow np=2`: (CLI seconds, its own duration,
    its allocation's SubmitTime to StartTime), or None."""
    until(queue_empty, IDLE_WAIT, "the queue empty before mpi.run")
    secs, rc, out = remote.guest_time("master", "salt --out=json --static --timeout=120 master mpi.run hellow np=2 "
                                      "timeout=120")  # fmt: skip
    try:
        ret = json.loads(out or "{}").get("master")
    except json.JSONDecodeError:
        ret = None
    if rc != 0 or not isinstance(ret, dict) or ret.get("retcode") != 0 or "rank 1 of 2" not in ret.get("stdout", ""):
        print(f"  mpi.run failed: {out.strip()[-500:]}", flush=True)
        return None
    found = probes.scontrol_records(sh("master", f"scontrol show job -o {int(ret['jobid'])}")) if ret.get("jobid") else []
    queued = stamp(found[0]["StartTime"]) - stamp(found[0]["SubmitTime"]) if found else None
    return secs, ret["duration"], queued


def burst(n, call, mine):
    """N `salt --async master CALL` in a row: seconds from the first call to
    N of the jobs MINE picks (from those made after the first call) ended in
    Slurm, the seconds the calls took, and the ended jobs {id: state}."""
    until(queue_empty, IDLE_WAIT, "the queue empty before a burst")
    _, known = slurm_jobs()
    before = max((int(r["JobId"]) for r in known), default=0)
    out = sh("master", BURST.format(n=n, call=call), timeout=n * 60)
    t0, t1 = map(float, out.split()[-2:])
    ended = {}
    deadline = time.monotonic() + BURST_WAIT
    while len(ended) < n:
        if time.monotonic() > deadline:
            raise SystemExit(f"burst of {n} x {call}: {len(ended)} ended within {BURST_WAIT} s")
        clock, jobs = slurm_jobs()
        for job in jobs:
            if int(job["JobId"]) > before and mine(job) and job.get("JobState") in ENDED:
                ended.setdefault(job["JobId"], (job["JobState"], clock))
        time.sleep(POLL)
    last = max(clock for _, clock in ended.values())
    return last - t0, t1 - t0, {jobid: st for jobid, (st, _) in ended.items()}


def join_once(name):
    """Join NAME: (command to up and answering Salt, to in the hostfile, to
    idle in Slurm); then it leaves: (`saltlab leave` -- drained and deleted
    by slurm_nodes.leave, powered off, key deleted -- from the command to
    gone from Slurm)."""
    t0 = time.monotonic()
    ops.join([name])
    up = time.monotonic() - t0
    seen = {}

    def both():
        now = time.monotonic() - t0
        if "hostfile" not in seen and re.search(rf"^{name}:", remote.ssh("master", f"cat {HOSTFILE}", timeout=60).stdout,
                                                 re.M):  # fmt: skip
            seen["hostfile"] = now
        if "slurm" not in seen and usable(slurm_node(name)):
            seen["slurm"] = now
        return len(seen) == 2

    until(both, JOIN_WAIT, f"{name} in the hostfile and idle in Slurm")
    stopped = time.monotonic()  # the leave command
    ops.leave([name])
    until(lambda: slurm_node(name) is None, LEAVE_WAIT, f"{name} gone from Slurm")
    gone = time.monotonic() - stopped
    until(lambda: probes.nowhere([name]) is True, LEAVE_WAIT, f"{name} gone from every membership file")
    return up, seen["hostfile"], seen["slurm"], gone, stopped


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--burst", type=int, default=20)
    args = parser.parse_args()
    if not all(hosts.running(n) for n in hosts.specs()):
        ops.up()
        secs, _, failed = ops.highstate()
        if failed:
            raise SystemExit("highstate failed:\n" + "\n".join(failed))
    settings = remote.salt_json(["master", "cluster.settings"])["master"]
    if settings.get("scheduler") != "slurm":
        raise SystemExit(f"bench/slurm.py needs Slurm in the lab (pillar/lab.sls: saltcluster:scheduler: slurm); "
                         f"the master says scheduler={settings.get('scheduler')!r}")  # fmt: skip
    model, xsave = host_cpu()
    table, notes, made = Table(), [], []
    pings, calls, to_running, to_ended, queued, runs_cli, runs_own, runs_queued = [], [], [], [], [], [], [], []
    bad = {"mpi.submit": 0, "mpi.run": 0}
    tput_submit, tput_run, publish_submit, publish_run = [], [], [], []
    failed_jobs = {"mpi.submit": 0, "mpi.run": 0}
    joins = {"up": [], "hostfile": [], "slurm": [], "gone": []}
    for i in range(args.runs):
        ping, rc, out = remote.guest_time("master", "salt master test.ping")
        if rc != 0:
            raise SystemExit(f"salt master test.ping failed: {out[-1000:]}")
        pings.append(ping)
        sample = latency(i)
        if sample is None:
            bad["mpi.submit"] += 1
        else:
            calls.append(sample[0])
            to_running.append(sample[1])
            to_ended.append(sample[2])
            queued.append(sample[3])
            made.append(sample[4])
        run = mpi_run_once()
        if run is None:
            bad["mpi.run"] += 1
        else:
            runs_cli.append(run[0])
            runs_own.append(run[1])
            if run[2] is not None:
                runs_queued.append(run[2])
        name = f"bench-burst-{i}"
        secs, publish, ended = burst(args.burst, f"mpi.submit hellow np=2 name={name}",
                                     lambda job, name=name: job.get("JobName") == name)  # fmt: skip
        tput_submit.append(secs)
        publish_submit.append(publish)
        made += list(ended)
        failed_jobs["mpi.submit"] += sum(st != "COMPLETED" for st in ended.values())
        secs, publish, ended = burst(args.burst, "mpi.run hellow np=2 timeout=1200",
                                     lambda job: job.get("JobName", "").startswith("saltcluster-run-"))  # fmt: skip
        tput_run.append(secs)
        publish_run.append(publish)
        failed_jobs["mpi.run"] += sum(st != "COMPLETED" for st in ended.values())
        up, in_hostfile, in_slurm, gone, _ = join_once(f"node{70 + i}")
        for key, value in zip(("up", "hostfile", "slurm", "gone"), (up, in_hostfile, in_slurm, gone)):
            joins[key].append(value)
        print(f"run {i + 1}: ping {ping:.2f} s; submit->running {sample[1] if sample else float('nan'):.2f} s, "
              f"->ended {sample[2] if sample else float('nan'):.2f} s; mpi.run {run[0] if run else float('nan'):.2f} s; "
              f"{args.burst} jobs {tput_submit[-1]:.1f} s, {args.burst} mpi.run {tput_run[-1]:.1f} s; join: hostfile "
              f"{in_hostfile:.1f} s, Slurm idle {in_slurm:.1f} s; leave: gone from Slurm {gone:.1f} s",
              flush=True)  # fmt: skip
    n = args.runs
    table.add("salt master test.ping (Salt's round trip)", pings)
    table.add("tiny job: salt master mpi.submit hellow np=2, the CLI call (job id back)", calls or [0.0],
              target=f"failed: {bad['mpi.submit']} of {n}")  # fmt: skip
    table.add("tiny job: mpi.submit call to RUNNING (master's clock, read every 0.2 s)", to_running or [0.0])
    table.add("tiny job: Slurm's own SubmitTime to StartTime (1 s resolution)", queued or [0.0])
    ended_median = statistics.median(to_ended or [0.0])
    table.add("tiny job: mpi.submit call to ended", to_ended or [0.0])
    run_median = statistics.median(runs_cli or [0.0])
    table.add("same program: salt master mpi.run hellow np=2 (salloc allocation, Hydra over srun), the CLI call",
              runs_cli or [0.0], ratio=f"{run_median / ended_median:.2f}x submit to ended" if ended_median else "-",
              target=f"failed: {bad['mpi.run']} of {n} (0: {verdict(bad['mpi.run'] == 0)})")  # fmt: skip
    table.add("mpi.run's own duration (in the minion: salloc's wait + the job)", runs_own or [0.0])
    table.add("mpi.run: Slurm's SubmitTime to StartTime of its allocation (1 s resolution)", runs_queued or [0.0])
    b = args.burst
    submit_median, run_tput_median = statistics.median(tput_submit), statistics.median(tput_run)
    table.add(f"throughput: {b} x salt --async mpi.submit hellow np=2, first call to all ended", tput_submit,
              ratio=f"{b * 60 / submit_median:.1f} jobs/min",
              target=f"not COMPLETED: {failed_jobs['mpi.submit']} of {b * n}")  # fmt: skip
    table.add(f"throughput: {b} x salt --async mpi.run hellow np=2 (salloc each), first call to all ended", tput_run,
              ratio=f"{b * 60 / run_tput_median:.1f} jobs/min, {run_tput_median / submit_median:.2f}x mpi.submit",
              target=f"not COMPLETED: {failed_jobs['mpi.run']} of {b * n}")  # fmt: skip
    table.add(f"throughput: the {b} salt --async mpi.submit calls themselves", publish_submit)
    table.add(f"throughput: the {b} salt --async mpi.run calls themselves", publish_run)
    table.add("join: command to host up and answering Salt", joins["up"])
    table.add("join: command to listed in the master's hostfile", joins["hostfile"])
    gap = statistics.median(joins["slurm"]) - statistics.median(joins["hostfile"])
    table.add("join: command to idle (usable) in Slurm", joins["slurm"], ratio=f"{gap:+.1f} s vs the hostfile")
    table.add("leave: saltlab leave (drain, delete, poweroff, key) to gone from Slurm", joins["gone"])
    notes.append("mpi.run under Slurm (scheduler: slurm) runs `salloc --ntasks=<np> ... mpiexec`: it waits its turn "
                 "in the queue like a batch job, then Hydra starts its proxies through srun on the allocated nodes "
                 "(no hostfile); its CLI time includes that allocation and Salt's round trip")  # fmt: skip
    notes.append("latency: the master's clock before the salt CLI call to the job first read RUNNING or COMPLETING "
                 f"(and to ended) by scontrol every {GUEST_POLL} s on the master; Slurm's SubmitTime/StartTime are "
                 "whole seconds")  # fmt: skip
    notes.append(f"throughput: {b} `salt --async` calls in a row on the master (the lab's one-vCPU master "
                 "publishes them one after another, the jobs start meanwhile), then every job's end read from "
                 f"`scontrol show job` every {POLL} s from this host")  # fmt: skip
    notes.append("join: `saltlab join` to the node in the master's hostfile (the membership run of orch.join) and "
                 "to idle in Slurm (its slurmd registered, slurm_nodes.admit done), read every "
                 f"{POLL} s; leave: `saltlab leave` (slurm_nodes.leave on the master, poweroff, key deleted) from the "
                 "command to Slurm no longer listing it")  # fmt: skip
    notes.append(f"{n} runs; host CPU {model}, XSAVE {xsave} B; lab kernel {config.KERNEL}; one vCPU per guest, "
                 f"two slots per compute node")  # fmt: skip
    jobs_dir = settings["slurm"]["jobs_dir"]
    files = " ".join(f"{jobs_dir}/{i}.{ext}" for i in made for ext in ("sh", "out", "err"))
    if files:
        remote.ssh("master", f"rm -f {files}", timeout=120)
    write_results("slurm", table.markdown() + "\n\n" + "\n".join(f"- {note}" for note in notes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
