"""Slurm follows membership, driven through Salt (issue 15), on the booted
lab, whose pillar turns it on (pillar/lab.sls: saltcluster:scheduler:
slurm).  In file order: three jobs submitted at once run one after another;
mpi.cancel ends a running job on every node; mpi.run waits its turn behind a
full queue; bad input to the queue functions is refused with the value
named and starts nothing; node3 and node4 join at once (one ops.join: Slurm
lists both idle within their joins and a job places ranks on each); node3
leaves while idle (drained as leaving, then gone from Slurm, no job lost); node4 is killed under a
job (marked down by saltcluster and deleted, the job requeued, the next job
runs on the rest; the requeued job is cancelled rather than waited for:
Slurm holds it 121 s).  The lab is left as found: no joined node, an empty
queue.

Budget: about 8 minutes on the Debian 13 lab (UML 7.3: a salt CLI call
about 3 s, a join about 60-75 s, bench/results-kernels.md).  Roughly: the
fixture 20 s, three queued jobs 50 s, cancel 35 s, mpi.run behind the queue
30 s, bad input 70 s, node3 and node4 joining together 130 s, node3 leaving
55 s, node4 killed 85 s, the cleanup 15 s.

Jobs that must hold their slots run `slurmhold` (compiled below into the
shared home's bin/): each rank says where it runs and waits until a release
file exists on its own host (/tmp, local to each guest) or its own limit
passes; the tests create the file when they are done with the job.  So no
test depends on how fast a one-vCPU guest computes.

Every wait is bounded by a named constant saying why; nothing is retried: a
wait only reads again.  Each test prints what it measured."""

import datetime
import json
import re
import shlex
import threading
import time
from collections import Counter

import pytest
from labkit import config, hosts, ops, probes, remote

from tests.lab.conftest import sh
from tests.lab.conftest import wait_for as lab_wait_for

HOME = "/home/jobhandler"
HOSTFILE = f"{HOME}/hosts"
# slurm.conf.jinja: SlurmctldLogFile (slurmctld logs at info by default)
SLURMCTLD_LOG = "/var/log/slurm/slurmctld.log"
# salt/orch/join.sls writes this record last, after slurm_nodes.admit: its
# content starts with the joined node's boot id
JOINED_RECORD = "/var/cache/salt/master/saltcluster/joined/{}"
HOLD = "slurmhold"
RELEASE = "/tmp/slurm-test-release-{}"
HOLD_C = r"""
/* slurmhold (tests/lab/test_slurm.py): holds its slots until released.
 * Usage: slurmhold <max_seconds> <release>: every rank says where it runs,
 * then waits until /tmp/slurm-test-release-<release> exists on its own host
 * or max_seconds passed; then all meet and rank 0 says which it was. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
int main(int argc, char **argv)
{
    int rank, size, len, waited = 0, released = 0;
    char host[MPI_MAX_PROCESSOR_NAME], flag[256];
    int most = argc > 1 ? atoi(argv[1]) : 60;
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    MPI_Get_processor_name(host, &len);
    snprintf(flag, sizeof flag, "/tmp/slurm-test-release-%s", argc > 2 ? argv[2] : "none");
    printf("rank %d of %d on %s\n", rank, size, host);
    fflush(stdout);
    while (waited < most) {
        if (access(flag, F_OK) == 0) {
            released = 1;
            break;
        }
        sleep(1);
        waited++;
    }
    MPI_Barrier(MPI_COMM_WORLD);
    if (rank == 0)
        printf("held %d s: %s\n", waited, released ? "released" : "time is up");
    MPI_Finalize();
    return 0;
}
"""

# Bounds, in seconds.
POLL = 1  # between two reads of Slurm's state (each read is one ssh)
# A base compute node idle in Slurm before the tests: an earlier test's
# health drain is resumed by orch.health (slurm_nodes.follow_health) after
# its membership run (up to a minute on a busy one-vCPU master), with room.
SETTLE_BOUND = 180
# A job on free slots from submit to RUNNING: slurmctld schedules a batch
# job within batch_sched_delay (3 s) and a pass of its main scheduler; the
# launch on a one-vCPU guest takes a few seconds.  Generous.
START_BOUND = 60
# A RUNNING job's ranks present on its nodes: srun starts Hydra's proxies,
# which start the ranks (MPI_Init over UCX) on one-vCPU guests.
RANKS_BOUND = 60
# A tiny job (hellow, or a released slurmhold) from submit to ended: start,
# run, and the epilog on every node of it.
JOB_BOUND = 180
# cpi's intervals for the three queued jobs: on one-vCPU guests (two ranks
# per vCPU) a few seconds of work each, long enough for mpi.jobs (one salt
# CLI call, 1-3 s) to see one run while the others wait; bounded below.
CPI_INTERVALS = 2_000_000_000
# Three of those one after another: each within a start and a tiny job's
# bound (the intervals add seconds, not minutes, even at 10x slower).
THREE_JOBS_BOUND = 3 * (START_BOUND + JOB_BOUND)
# Three salt CLI calls at once on the one-vCPU master.
SUBMIT_BOUND = 180
# A holder's own limit (slurmhold's max_seconds) and its Slurm time_limit
# (minutes): only reached if a test fails before releasing it.
HOLD_MAX = 900
HOLD_TIME_LIMIT = 16
CPI_TIME_LIMIT = 10  # minutes: the Slurm limit of each queued cpi job
# How long the queue holder keeps every slot once mpi.run's allocation was
# seen waiting behind it (and no cpi rank anywhere): a few more looks'
# worth, so the wait is seen to last.
HOLD_SECONDS = 5
# mpi.run's own timeout (it counts the wait in the queue too): seeing it
# wait, the hold, then cpi's start and run.
RUN_TIMEOUT = START_BOUND + HOLD_SECONDS + START_BOUND + JOB_BOUND
# A join of node3 and node4 together from `saltlab join` to both
# orch.join's ends: bench/results-join.md has 85-119 s to visible
# everywhere for one and 265 s for three at once on the older lab (60-75 s
# for one on UML 7.3, bench/results-kernels.md); each join now also starts
# slurmd and waits for it to register (slurm:register_timeout, 120 s at
# most).  As tests/lab/test_membership.py's bound.
JOIN_BOUND = 600
# A node that left (powered off, key deleted) or died (killed) until Slurm
# no longer lists it: the master notices within loop_interval (10 s) and
# the heartbeat timeout (6 s); orch.leave renders (a ping of 3 + 2 s), runs
# the NFS export and membership states (11-30 s in bench/results-join.md),
# then slurm_nodes.leave/lost (which waits up to 60 s for the node to hold
# no job before deleting it).  Doubled for a one-vCPU master.
LEAVE_BOUND = 300
# Slurm 24.11 lets a requeued batch job start again only after the launch
# credential's lifetime (cred_expire, 120 s by default) + 1 s
# (batch_requeue_fini: BeginTime = now + 121).  Not waited out: the killed
# node's job is cancelled while it waits; only a run slower than this
# sees it start again (then it ends at once, released, on the rest).
REQUEUE_DELAY = 121
# slurm_nodes.REASON_LEAVING: the reason a node drained for its leave shows
LEAVING = "saltcluster: leaving the cluster"

ENDED = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "PREEMPTED", "BOOT_FAIL", "DEADLINE",
         "OUT_OF_MEMORY"}  # fmt: skip
# scontrol's one-line records: Key=Value pairs; a value may hold spaces
# (Reason=), so a pair ends where the next " Key=" starts
RANK_RE = re.compile(r"^(?:Hello world from )?rank \d+ of \d+ on (\S+)$|^Process \d+ of \d+ is on (\S+)$", re.M)

# every job this module queued (their files in the jobs directory go at the end)
SUBMITTED = []


# -- reading Slurm and the cluster


def slurm_nodes():
    """Every node slurmctld knows: {name: {state, base, flags, cpus, reason}}."""
    rc, out, err = sh("master", "scontrol show node -o")
    assert rc == 0, f"scontrol show node: {err or out}"
    nodes = {}
    for record in probes.scontrol_records(out):
        if record.get("NodeName"):
            words = record.get("State", "").split("+")
            nodes[record["NodeName"]] = {
                "state": record.get("State", ""), "base": words[0].rstrip("*~#%$@^-!"), "flags": set(words[1:]),
                "cpus": int(record.get("CPUTot") or 0), "reason": record.get("Reason", ""),
            }  # fmt: skip
    return nodes


def usable(node):
    """Idle and takes jobs: no DRAIN, DOWN, NOT_RESPONDING... (a dynamic
    node carries DYNAMIC_NORM)."""
    return bool(node) and node["base"] == "IDLE" and node["flags"] <= {"DYNAMIC_NORM"}


def sinfo_names():
    rc, out, err = sh("master", "sinfo -h -N -o %N")
    assert rc == 0, f"sinfo: {err or out}"
    return set(out.split())


def job(jobid):
    """Slurm's record of a job (scontrol show job), or None once slurmctld
    has forgotten it (MinJobAge: 300 s after it ended)."""
    rc, out, err = sh("master", f"scontrol show job -o {int(jobid)}")
    if rc != 0:
        assert "invalid job id" in f"{out} {err}".lower(), f"scontrol show job {jobid}: {err or out}"
        return None
    found = [r for r in probes.scontrol_records(out) if r.get("JobId") == str(jobid)]
    return found[0] if found else None


def state(jobid):
    found = job(jobid)
    return found["JobState"] if found else "FORGOTTEN"


def stamp(text):
    return datetime.datetime.fromisoformat(text)


def hostnames(nodelist):
    """A Slurm node list (node[1-2],node4) as names."""
    names = []
    for part in re.findall(r"[^,\[]+(?:\[[^\]]*\])?", nodelist or ""):
        found = re.fullmatch(r"(.*?)\[(.*)\]", part)
        if not found:
            names.append(part)
            continue
        prefix, ranges = found.groups()
        for span in ranges.split(","):
            first, _, last = span.partition("-")
            names += [f"{prefix}{str(i).zfill(len(first))}" for i in range(int(first), int(last or first) + 1)]
    return names


def hostfile():
    """The master's Hydra hostfile: {host: slots}."""
    rc, out, err = sh("master", f"grep -v '^#' {HOSTFILE}")
    assert rc == 0, err
    return {host: int(slots) for host, _, slots in (line.partition(":") for line in out.split())}


def placed(stdout):
    """Where a job's ranks ran, by host, from what hellow, cpi or slurmhold print."""
    return Counter(a or b for a, b in RANK_RE.findall(stdout))


def processes(node):
    """jobhandler's processes on NODE that are there in two looks 2 s apart
    ({pid: command line}): a health check's short-lived probe (it runs as
    jobhandler for a moment every 10 s) is not one of them."""
    rc, out, _ = sh(node, "pgrep -a -u jobhandler; echo ==; sleep 2; pgrep -a -u jobhandler")
    first, _, second = out.partition("==\n")
    one = dict(line.split(" ", 1) for line in first.splitlines() if " " in line)
    two = dict(line.split(" ", 1) for line in second.splitlines() if " " in line)
    return {pid: cmd for pid, cmd in two.items() if one.get(pid) == cmd}


def processes_everywhere(nodes):
    """processes() of every node in NODES, read at once (one thread each)."""
    found = {}
    threads = [threading.Thread(target=lambda n=n: found.__setitem__(n, processes(n))) for n in nodes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return found


def holders_on(node):
    rc, out, _ = sh(node, f"pgrep -c -u jobhandler -x {HOLD} || true")
    return int(out.strip() or 0)


def release(nodes, name):
    for node in nodes:
        rc, _, err = sh(node, f"touch {RELEASE.format(name)}")
        assert rc == 0, (node, err)


def log_size():
    rc, out, _ = sh("master", f"stat -c %s {SLURMCTLD_LOG}")
    return int(out.strip() or 0)


def log_since(offset, word):
    """slurmctld's log lines naming WORD written after byte OFFSET."""
    rc, out, _ = sh("master", f"tail -c +{offset + 1} {SLURMCTLD_LOG} | grep -F -- {shlex.quote(word)} || true")
    return out.splitlines()


def joined_record(node):
    rc, out, _ = sh("master", f"cat {JOINED_RECORD.format(node)} 2>/dev/null || true")
    return out.strip()


# -- acting through Salt


def salt_master(fun, *args, check=True, timeout=config.SALT_CALL_TIMEOUT):
    """`salt master FUN ARGS`: what the master returned (an error is a string
    starting with ERROR)."""
    return remote.salt_json(["master", fun, *args], check=check, timeout=timeout).get("master")


def submit(program, np, *extra):
    ret = salt_master("mpi.submit", program, f"np={np}", *extra)
    assert isinstance(ret, dict) and ret.get("jobid"), ret
    SUBMITTED.append(ret["jobid"])
    return ret["jobid"]


def queue_ids():
    rows = salt_master("mpi.jobs")
    assert isinstance(rows, list), rows
    return [row["id"] for row in rows]


def wait_for(check, bound, what, every=None):
    """conftest.wait_for, reading every POLL seconds."""
    return lab_wait_for(check, bound, what, every, poll=POLL)


def wait_running(jobid, bound=START_BOUND):
    return wait_for(lambda: state(jobid) == "RUNNING" or job(jobid), bound, f"job {jobid} running")


def wait_ended(jobid, bound=JOB_BOUND):
    return wait_for(lambda: state(jobid) in ENDED or job(jobid), bound, f"job {jobid} ended")


def wait_joins(nodes, t0):
    """Wait until orch.join of every node in NODES is done (its record names
    the node's boot id), reading meanwhile when Slurm first lists each
    usable and when the hostfile first lists it.  Returns those seconds
    after T0, by node."""
    boot_ids = {}
    for node in nodes:
        rc, boot_id, err = sh(node, "cat /proc/sys/kernel/random/boot_id")
        assert rc == 0 and boot_id.strip(), err
        boot_ids[node] = boot_id.strip()
    seen = {node: {} for node in nodes}

    def done():
        now = time.monotonic() - t0
        found, listed = slurm_nodes(), hostfile()
        for node in nodes:
            if usable(found.get(node)):
                seen[node].setdefault("slurm", now)
            if node in listed:
                seen[node].setdefault("hostfile", now)
            if "done" not in seen[node] and joined_record(node).startswith(boot_ids[node]):
                seen[node]["done"] = now
        left = [node for node in nodes if "done" not in seen[node]]
        return True if not left else {node: {"slurm": found.get(node), **seen[node]} for node in left}

    wait_for(done, JOIN_BOUND, f"orch.join of {' and '.join(nodes)} done (their join records)")
    return seen


@pytest.fixture(scope="module")
def slurm(lab, highstated):
    """The lab runs Slurm: its pillar says so (a lab without it fails here,
    never skips), every base compute node of the hostfile is idle in Slurm
    with its slots as CPUs, no node is joined and the queue is empty.
    Compiles slurmhold.  At the end: whatever a failed test left (jobs,
    joined nodes, release files, slurmhold, the jobs' files) is removed."""
    settings = salt_master("cluster.settings")
    scheduler = settings.get("scheduler") if isinstance(settings, dict) else settings
    if scheduler != "slurm":
        pytest.fail(f"tests/lab/test_slurm.py needs Slurm in the lab: pillar/lab.sls must set saltcluster:scheduler: "
                    f"slurm, but the master's settings say scheduler={scheduler!r}", pytrace=False)  # fmt: skip
    extra = hosts.joined()
    if extra:
        pytest.fail(f"the lab has joined hosts ({', '.join(extra)}): this module joins node3 and node4 itself "
                    "(`lab/saltlab leave` them first)", pytrace=False)  # fmt: skip

    def settled():
        slots, nodes = hostfile(), slurm_nodes()
        same = {name: node["cpus"] for name, node in nodes.items()} == slots
        return same and all(usable(node) for node in nodes.values()) or {"hostfile": slots, "slurm": nodes}

    # Slurm's nodes are the hostfile's, each with its slots as CPUs, idle
    took = wait_for(settled, SETTLE_BOUND, "Slurm's nodes the hostfile's, idle, with its slots as CPUs")
    slots = hostfile()
    assert sinfo_names() == set(slots)
    for node in slots:
        # an aborted run's release files would release this run's holders at once
        sh(node, f"rm -f {RELEASE.format('*')}")
    queue = salt_master("mpi.jobs")
    assert queue == [], f"the queue is not empty before the Slurm tests: {queue}"
    script = f"cat > /tmp/{HOLD}.c <<'EOF'\n{HOLD_C}\nEOF\nmpicc -O2 -o bin/{HOLD} /tmp/{HOLD}.c && rm -f /tmp/{HOLD}.c"
    rc, _, err = sh("master", f"su - jobhandler -c {shlex.quote(script)}")
    assert rc == 0, err
    print(f"\nslurm: {', '.join(f'{n}:{c}' for n, c in slots.items())} idle in Slurm (waited {took:.1f} s), "
          f"leave policy {settings['slurm']['leave_policy']}")  # fmt: skip
    yield {"settings": settings, "slots": slots}

    # leave the lab as found
    sh("master", "scancel --user=jobhandler")
    for name in ("node3", "node4"):
        if hosts.running(name):
            ops.leave([name])
    accepted = remote.salt_keys().get("minions", [])
    for name in ("node3", "node4"):
        if name in accepted:
            sh("master", f"salt-key -y -d {name}")
    wait_for(lambda: probes.nowhere(["node3", "node4"]), LEAVE_BOUND, "node3 and node4 gone after the Slurm tests")
    wait_for(lambda: not {"node3", "node4"} & set(slurm_nodes()) or slurm_nodes(), LEAVE_BOUND,
             "node3 and node4 gone from Slurm after the Slurm tests")  # fmt: skip
    wait_for(lambda: not queue_ids() or queue_ids(), JOB_BOUND, "the queue empty after the Slurm tests")
    for node in slots:
        sh(node, f"rm -f {RELEASE.format('*')}")
    jobs_dir = settings["slurm"]["jobs_dir"]
    files = " ".join(f"{jobs_dir}/{i}.{ext}" for i in SUBMITTED if i.isdigit() for ext in ("sh", "out", "err"))
    sh("master", f"rm -f {HOME}/bin/{HOLD} {files}")


def test_three_jobs_at_once_run_one_after_another(slurm):
    """Three cpi jobs, each asking for every slot, submitted at once:
    mpi.jobs shows one running while the others wait, they never run
    together (their start and end times follow one another), all complete,
    and each output file holds pi from every slot and no more."""
    slots = slurm["slots"]
    n = sum(slots.values())
    rets = {}

    def submit_one(i):
        rets[i] = salt_master("mpi.submit", "cpi", f"np={n}", f"args=[{CPI_INTERVALS}]",
                              f"time_limit={CPI_TIME_LIMIT}", f"name=slurm-test-pi{i}", check=False)  # fmt: skip

    t0 = time.monotonic()
    threads = [threading.Thread(target=submit_one, args=(i,)) for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(SUBMIT_BOUND)
    t_submitted = time.monotonic() - t0
    for i in range(3):
        assert isinstance(rets.get(i), dict) and rets[i].get("jobid"), rets.get(i)
        SUBMITTED.append(rets[i]["jobid"])
    ids = [rets[i]["jobid"] for i in range(3)]
    snapshots = []

    def never_two_at_once():
        rows = salt_master("mpi.jobs")
        mine = {row["id"]: f"{row['state']}({row['reason']})" for row in rows if row["id"] in ids}
        snapshots.append(mine)
        running = [i for i, st in mine.items() if st.startswith("RUNNING")]
        assert len(running) <= 1, f"two of the jobs ran at once: {mine}"

    took = wait_for(lambda: not snapshots[-1] or snapshots[-1], THREE_JOBS_BOUND, "the three jobs through the queue",
                    every=never_two_at_once)  # fmt: skip

    def one_running_others_waiting(snapshot):
        states = [v.split("(")[0] for v in snapshot.values()]
        return states.count("RUNNING") == 1 and "PENDING" in states

    shown = [snapshot for snapshot in snapshots if one_running_others_waiting(snapshot)]
    assert shown, f"mpi.jobs never showed one job running and another waiting: {snapshots}"
    found = {i: job(i) for i in ids}
    for i, record in found.items():
        assert record and record["JobState"] == "COMPLETED" and record["ExitCode"] == "0:0", (i, record)
    order = sorted(ids, key=lambda i: stamp(found[i]["StartTime"]))
    for before, after in zip(order, order[1:]):
        assert stamp(found[after]["StartTime"]) >= stamp(found[before]["EndTime"]), (
            f"job {after} started before job {before} ended: {found[before]} {found[after]}"
        )
    for i in ids:
        out = salt_master("mpi.output", i)
        assert isinstance(out, dict) and "pi is approximately 3.14159" in (out["stdout"] or ""), out
        where = placed(out["stdout"])
        assert sum(where.values()) == n and all(where[h] <= slots.get(h, 0) for h in where), (i, where)
    spans = [f"{i}: {found[i]['StartTime'][11:]}-{found[i]['EndTime'][11:]}" for i in order]
    print(f"\nthree jobs at once: submitted in {t_submitted:.1f} s, all through the queue {took:.1f} s later; "
          f"one after another ({'; '.join(spans)}); waiting seen in {len(shown)} of {len(snapshots)} looks: "
          f"{shown[0]}")  # fmt: skip


def test_cancel_ends_a_running_job_on_every_node(slurm):
    """mpi.cancel on a job holding every slot (it would hold them for
    HOLD_MAX s): it leaves the queue, Slurm says CANCELLED, and no process
    of jobhandler is left on any node (but those there before it)."""
    slots = slurm["slots"]
    n = sum(slots.values())
    nodes = [*slots, "master"]
    before = processes_everywhere(nodes)
    jobid = submit(HOLD, n, f"args=[{HOLD_MAX}, cancel]", f"time_limit={HOLD_TIME_LIMIT}", "name=slurm-test-cancel")
    t_start = wait_running(jobid)

    def ranks_up():
        found = {h: holders_on(h) for h in slots}
        return found == slots or found

    t_ranks = wait_for(ranks_up, RANKS_BOUND, f"job {jobid}'s ranks on every compute node")
    t0 = time.monotonic()
    ret = salt_master("mpi.cancel", jobid, check=False)
    took = time.monotonic() - t0
    assert isinstance(ret, dict) and ret["cancelled"] is True and ret["state"] in (None, "CANCELLED"), ret
    assert jobid not in queue_ids()
    assert state(jobid) in ("CANCELLED", "FORGOTTEN"), job(jobid)
    after = processes_everywhere(nodes)
    left = {node: {pid: cmd for pid, cmd in after[node].items() if pid not in before[node]} for node in nodes}
    assert not any(left.values()), f"jobhandler's processes left after mpi.cancel {jobid}: {left}"
    print(f"\ncancel: job {jobid} running {t_start:.1f} s after submit, ranks up {t_ranks:.1f} s later; "
          f"mpi.cancel returned in {took:.1f} s (waited {ret['waited']} s for the queue), nothing left on "
          f"{', '.join(nodes)}")  # fmt: skip


def test_mpi_run_waits_its_turn_behind_a_full_queue(slurm):
    """A batch job holds every slot; mpi.run cpi asking for every slot
    meanwhile waits in the queue (its allocation PENDING, no cpi rank on any
    node; the holder is released HOLD_SECONDS after that was seen) and
    starts only after the holder ended."""
    slots = slurm["slots"]
    n = sum(slots.values())
    holder = submit(HOLD, n, f"args=[{HOLD_MAX}, queue]", f"time_limit={HOLD_TIME_LIMIT}", "name=slurm-test-holder")
    wait_running(holder)
    t_held = time.monotonic()
    out = {}

    def run():
        out["ret"] = salt_master("mpi.run", "cpi", f"np={n}", f"timeout={RUN_TIMEOUT}", check=False,
                                 timeout=RUN_TIMEOUT + 120)  # fmt: skip

    runner = threading.Thread(target=run)
    t_run = time.monotonic()
    runner.start()

    def waiting():
        rows = salt_master("mpi.jobs")
        alloc = [r for r in rows if r["name"].startswith("saltcluster-run-")]
        mine = [r for r in rows if r["id"] == holder]
        if alloc and alloc[0]["state"] == "PENDING" and mine and mine[0]["state"] == "RUNNING":
            return True
        return rows

    t_wait = wait_for(waiting, START_BOUND, "mpi.run's allocation waiting behind the holder")
    time.sleep(HOLD_SECONDS)
    cpis = {node: sh(node, "pgrep -c -u jobhandler -x cpi || true")[1].strip() for node in slots}
    assert set(cpis.values()) == {"0"}, f"cpi ranks run while every slot is held: {cpis}"
    t_released = time.monotonic() - t_held
    release(slots, "queue")
    runner.join(RUN_TIMEOUT + 180)
    took = time.monotonic() - t_run
    ret = out.get("ret")
    assert isinstance(ret, dict) and ret["retcode"] == 0 and not ret["timed_out"], ret
    assert "pi is approximately 3.14159" in ret["stdout"] and ret.get("jobid"), ret
    where = placed(ret["stdout"])
    assert sum(where.values()) == n and all(where[h] <= slots.get(h, 0) for h in where), where
    held, alloc = job(holder), job(ret["jobid"])
    assert held["JobState"] == "COMPLETED", held
    assert alloc and alloc["JobName"].startswith("saltcluster-run-"), alloc
    assert stamp(alloc["SubmitTime"]) < stamp(held["EndTime"]) <= stamp(alloc["StartTime"]), (held, alloc)
    queued = (stamp(alloc["StartTime"]) - stamp(alloc["SubmitTime"])).total_seconds()
    print(f"\nmpi.run behind a full queue: waiting seen {t_wait:.1f} s after the call, holder released after "
          f"{t_released:.1f} s, mpi.run returned {took:.1f} s after the call (its duration {ret['duration']} s, "
          f"{queued:.0f} s of it in the queue), allocation {ret['jobid']} started {alloc['StartTime'][11:]} after "
          f"holder {holder} ended {held['EndTime'][11:]}")  # fmt: skip


def test_bad_input_refused_naming_the_value_and_nothing_started(slurm):
    """Each new function refuses bad input with an error naming the value;
    no job is queued for any of them: the queue is unchanged, Slurm's next
    job id follows the one before, and no script was left."""
    slots = slurm["slots"]
    max_time = slurm["settings"]["slurm"]["max_time"]
    calls = [
        (("mpi.submit", "cpi;touch /tmp/slurm-test-pwned"), "'cpi;touch /tmp/slurm-test-pwned'"),
        (("mpi.submit", "../../usr/bin/id"), "'../../usr/bin/id'"),
        (("mpi.submit", "cpi", "np=0"), "np=0"),
        (("mpi.submit", "cpi", f"np={sum(slots.values()) + 1}"), f"np={sum(slots.values()) + 1}"),
        (("mpi.submit", "cpi", 'args=[":", "-n", "1", "/usr/bin/id"]'), "':'"),
        (("mpi.submit", "cpi", "hosts=node9"), "'node9'"),
        (("mpi.submit", "cpi", "time_limit=soon"), "time_limit='soon'"),
        (("mpi.submit", "cpi", "time_limit=0"), "time_limit=0"),
        (("mpi.submit", "cpi", f"time_limit={max_time + 1}"), f"time_limit={max_time + 1}"),
        (("mpi.submit", "cpi", "name=-x"), "name='-x'"),
        (("mpi.submit", "cpi", "name=a b"), "name='a b'"),
        (("mpi.cancel", "jobid=1,2"), "'1,2'"),
        (("mpi.cancel", "jobid=--signal=KILL"), "'--signal=KILL'"),
        (("mpi.cancel", "jobid=0"), "job id 0 "),
        (("mpi.cancel", "jobid=-3"), "job id -3 "),
        (("mpi.output", "jobid=../../etc/shadow"), "'../../etc/shadow'"),
        (("mpi.output", "jobid=1.out"), "'1.out'"),
        # mpi.jobs takes no argument: Salt refuses one, naming it
        (("mpi.jobs", "state=RUNNING"), "state=RUNNING"),
    ]
    first = submit("hellow", 1, "name=slurm-test-marker")
    queued = set(queue_ids())
    # every call in one ssh (one salt CLI call each), one JSON line per call
    script = "; ".join(
        "salt --out=json --static master " + " ".join(shlex.quote(a) for a in args) + " | tr -d '\\n'; echo"
        for args, _ in calls
    )
    t0 = time.monotonic()
    rc, out, err = sh("master", script, timeout=len(calls) * 60)
    took = time.monotonic() - t0
    answers = [json.loads(line).get("master") for line in out.splitlines() if line.strip()]
    assert len(answers) == len(calls), (out[-3000:], err[-2000:])
    for (args, named), answer in zip(calls, answers):
        assert isinstance(answer, str) and answer.startswith("ERROR") and args[0] in answer, (args, answer)
        assert named in answer, f"{' '.join(args)}: the refusal does not name {named}: {answer}"
    assert set(queue_ids()) <= queued, "a refused call queued a job"
    second = submit("hellow", 1, "name=slurm-test-marker")
    assert int(second) == int(first) + 1, f"Slurm made jobs between {first} and {second}: a refused call started one"
    rc, left, _ = sh("master", f"ls -A {slurm['settings']['slurm']['jobs_dir']} | grep '^\\.submit-' || true")
    assert left.strip() == "", f"scripts left by refused submissions: {left}"
    for node in ["master", *slots]:
        rc, found, _ = sh(node, "test -e /tmp/slurm-test-pwned && echo found || true")
        assert found.strip() == "", node
    for jobid in (first, second):
        wait_ended(jobid)
        assert state(jobid) in ("COMPLETED", "FORGOTTEN"), job(jobid)
    print(f"\nbad input: {len(calls)} calls refused in {took:.1f} s, each naming its value; job ids {first} "
          f"and {second} follow one another")  # fmt: skip


def test_cpi_the_two_ways_a_user_types_it(slurm):
    """As the MPI user on the master, outside Salt: `srun -n N bin/cpi`
    (ranks started by slurmd through PMI-2, MpiDefault=pmi2), and an sbatch
    script of the user's own that calls mpiexec (Hydra inside the
    allocation).  Each prints pi from every slot of every compute node."""
    slots = slurm["slots"]
    n = sum(slots.values())
    rc, out, err = sh("master", f"su - jobhandler -c 'srun -n {n} --time=5 bin/cpi'", timeout=START_BOUND + JOB_BOUND)
    assert rc == 0 and "pi is approximately 3.14159" in out, (rc, out, err)
    assert placed(out) == Counter(slots), out
    script = (f"#!/bin/sh\n#SBATCH --ntasks={n}\n#SBATCH --time=5\n#SBATCH --job-name=slurm-test-user\n"
              f"#SBATCH --output={HOME}/slurm-test-user-%j.out\nmpiexec bin/cpi\n")  # fmt: skip
    as_user = f"printf %s {shlex.quote(script)} > cpi.sbatch && sbatch --parsable --wait cpi.sbatch"
    rc, out, err = sh("master", f"su - jobhandler -c {shlex.quote(as_user)}", timeout=START_BOUND + JOB_BOUND)
    jobid = out.strip().split(";")[0]
    assert rc == 0 and jobid.isdigit(), (rc, out, err)
    user_out = f"{HOME}/slurm-test-user-{jobid}.out"
    rc, text, err = sh("master", f"cat {user_out}; rm -f {user_out} {HOME}/cpi.sbatch")
    assert "pi is approximately 3.14159" in text and placed(text) == Counter(slots), text
    print(f"\nthe user's way: srun -n {n} bin/cpi and sbatch (job {jobid}) of a script calling mpiexec: "
          f"pi from {dict(placed(text))}")


def test_node3_and_node4_join_slurm_within_their_join_and_take_ranks(slurm):
    """node3 and node4 join together (one ops.join, as an operator boots
    two): when each orch.join is done Slurm lists the node idle with its
    hostfile slots as CPUs (no slurmctld restart), and a job asking for
    every slot, now theirs too, places ranks on both."""
    new = ["node3", "node4"]
    t0 = time.monotonic()
    assert ops.join(new) == 0
    t_up = time.monotonic() - t0
    seen = wait_joins(new, t0)
    found, slots = slurm_nodes(), hostfile()
    for name in new:
        assert usable(found.get(name)), f"orch.join of {name} is done but Slurm lists it as {found.get(name)}"
        assert name in slots and found[name]["cpus"] == slots[name], (name, found[name], slots)
    n = sum(slots.values())
    jobid = submit("hellow", n, "name=slurm-test-joined")
    took = wait_ended(jobid)
    assert job(jobid)["JobState"] == "COMPLETED", job(jobid)
    out = salt_master("mpi.output", jobid)
    where = placed(out["stdout"] or "")
    assert all(where[name] >= 1 for name in new) and sum(where.values()) == n, out
    assert all(where[h] <= slots.get(h, 0) for h in where), where
    joined = "; ".join(
        f"{name} in the hostfile after {seen[name].get('hostfile', float('nan')):.1f} s, idle in Slurm after "
        f"{seen[name].get('slurm', float('nan')):.1f} s, orch.join done after {seen[name]['done']:.1f} s"
        for name in new
    )
    print(f"\njoin node3 and node4: up and answering Salt {t_up:.1f} s after the command; {joined}; hellow "
          f"np={n} ran {where['node3']} rank(s) on node3 and {where['node4']} on node4 "
          f"({took:.1f} s from submit)")  # fmt: skip


def test_node3_leaves_idle_gone_from_slurm_and_no_job_lost(slurm):
    """node3 leaves while idle, decommissioned as an operator does
    (ops.leave: `salt master slurm_nodes.leave node3` while it runs, then a
    clean shutdown and its key deleted): drained first (DRAIN with
    saltcluster's leaving reason in slurmctld's log, never DOWN), then
    Slurm no longer lists it (scontrol, sinfo), and a job running meanwhile
    on node1 and node2 is untouched (never requeued, completes).  node4,
    joined with node3, stays."""
    assert hosts.running("node3"), "node3 did not join (the join test)"
    assert usable(slurm_nodes().get("node3")), slurm_nodes().get("node3")
    base = list(slurm["slots"])
    bystander = submit(HOLD, sum(slurm["slots"].values()), f"hosts={','.join(base)}", f"args=[{HOLD_MAX}, bystander]",
                       f"time_limit={HOLD_TIME_LIMIT}", "name=slurm-test-bystander")  # fmt: skip
    wait_running(bystander)
    assert sorted(hostnames(job(bystander)["NodeList"])) == sorted(base), job(bystander)
    offset = log_size()
    t0 = time.monotonic()
    assert ops.leave(["node3"]) == 0
    t_stopped = time.monotonic() - t0
    states = []

    def gone():
        found = slurm_nodes().get("node3")
        if found and (not states or states[-1] != found["state"]):
            states.append(found["state"])
        return True if found is None and "node3" not in sinfo_names() else found

    took = wait_for(gone, LEAVE_BOUND, "node3 gone from Slurm")
    assert not [s for s in states if s.startswith("DOWN")], f"node3 went DOWN on its way out: {states}"
    record = job(bystander)
    assert record["JobState"] == "RUNNING" and record["Restarts"] == "0", record
    release(base, "bystander")
    wait_ended(bystander)
    record = job(bystander)
    assert record["JobState"] == "COMPLETED" and record["Restarts"] == "0" and record["ExitCode"] == "0:0", record
    out = salt_master("mpi.output", bystander)
    assert "released" in (out["stdout"] or ""), out
    lines = log_since(offset, "node3")
    assert any(f"node node3 reason set to: {LEAVING}" in line for line in lines), (
        f"slurmctld's log shows node3 never drained as leaving: {lines}"
    )
    assert not any("node node3 state set to DOWN" in line for line in lines), (
        f"node3 went DOWN: it was lost, not drained: {lines}"
    )
    t_nowhere = wait_for(lambda: probes.nowhere(["node3"]), LEAVE_BOUND, "node3 gone from every membership file")
    assert usable(slurm_nodes().get("node4")), slurm_nodes().get("node4")
    print(f"\nleave node3: stopped in {t_stopped:.1f} s, gone from Slurm {took:.1f} s later (states seen: "
          f"{' -> '.join(states) or 'none'}), from every membership file {t_nowhere:.1f} s after that; "
          f"bystander job {bystander} completed, never requeued; slurmctld: "
          + " | ".join(line.split("] ", 1)[-1] for line in lines))  # fmt: skip


def test_node4_killed_under_a_job_down_deleted_job_requeued(slurm):
    """node4 (joined with node3) runs a job that holds its slots (node1
    and node2 held by another); node4 is killed: saltcluster marks it DOWN
    at once and deletes it, the job is requeued (PENDING, Restarts=1, the
    reason Slurm gives shown); the next job runs on the others.  Slurm holds
    a requeued job REQUEUE_DELAY s before it may start again: it is
    cancelled while it waits, not waited out.  Then node4's key is deleted:
    the second leave event of the same node finds nothing to do in Slurm."""
    slots = slurm["slots"]
    base = list(slots)
    assert hosts.running("node4"), "node4 did not join (the join test)"
    assert usable(slurm_nodes().get("node4")), slurm_nodes().get("node4")
    node4_slots = hostfile()["node4"]
    # a rerun of the job (only if this run is slower than REQUEUE_DELAY)
    # ends at once where its release file is (node1, node2); on node4 it
    # holds until node4 dies
    release(base, "victim")
    blocker = submit(HOLD, sum(slots.values()), f"hosts={','.join(base)}", f"args=[{HOLD_MAX}, blocker]",
                     f"time_limit={HOLD_TIME_LIMIT}", "name=slurm-test-blocker")  # fmt: skip
    wait_running(blocker)
    victim = submit(HOLD, node4_slots, f"args=[{HOLD_MAX}, victim]", f"time_limit={HOLD_TIME_LIMIT}",
                    "name=slurm-test-victim")  # fmt: skip
    wait_running(victim)
    assert hostnames(job(victim)["NodeList"]) == ["node4"], job(victim)
    wait_for(lambda: holders_on("node4") == node4_slots or holders_on("node4"), RANKS_BOUND,
             f"job {victim}'s ranks on node4")  # fmt: skip
    offset = log_size()
    t_kill = time.monotonic()
    assert ops.leave(["node4"], hard=True) == 0
    states = []

    def gone():
        found = slurm_nodes().get("node4")
        now = f"node4 {found['state'] if found else 'gone'}, job {state(victim)}"
        if not states or states[-1] != now:
            states.append(now)
        return True if found is None and "node4" not in sinfo_names() else found

    took = wait_for(gone, LEAVE_BOUND, "killed node4 gone from Slurm")
    lines = log_since(offset, "node4")
    assert any("node node4 state set to DOWN" in line for line in lines), f"node4 never set DOWN: {lines}"
    assert any("node node4 reason set to: saltcluster: lost" in line for line in lines), lines
    requeued = job(victim)
    assert requeued["JobState"] in ("PENDING", "REQUEUED") and requeued["Restarts"] == "1", (
        f"the job on node4 is not requeued (leave policy {slurm['settings']['slurm']['leave_policy']}; a death "
        f"requeues batch jobs whatever it says: JobRequeue=1, mpi.submit --requeue): {requeued}"
    )
    # why it waits (BeginTime: Slurm's hold) is set by the scheduler's next
    # look at it, a pass the requeue itself triggers
    wait_for(lambda: job(victim).get("Reason") not in (None, "", "None") or job(victim), START_BOUND,
             f"the requeued job {victim} showing why it waits")  # fmt: skip
    requeued = job(victim)
    assert requeued["JobState"] in ("PENDING", "REQUEUED") and requeued["Restarts"] == "1", requeued
    row = [r for r in salt_master("mpi.jobs") if r["id"] == victim]
    assert row and row[0]["state"] in ("PENDING", "REQUEUED") and row[0]["reason"] not in ("", "None"), row
    # the next job runs on the rest
    release(base, "blocker")
    wait_ended(blocker)
    rest = sum(slots.values())
    following = submit("hellow", rest, "name=slurm-test-next")
    wait_ended(following)
    assert job(following)["JobState"] == "COMPLETED", job(following)
    where = placed(salt_master("mpi.output", following)["stdout"] or "")
    assert set(where) == set(base) and sum(where.values()) == rest, where
    # the requeued job waits out Slurm's hold (BeginTime): cancelled, not waited for
    if state(victim) in ("PENDING", "REQUEUED"):
        ret = salt_master("mpi.cancel", victim, check=False)
        assert isinstance(ret, dict) and ret["cancelled"] is True, ret
        assert state(victim) in ("CANCELLED", "FORGOTTEN"), job(victim)
        fate = f"cancelled while held {time.monotonic() - t_kill:.1f} s after the kill"
    else:
        # a run slower than REQUEUE_DELAY: it started again on the rest,
        # where it is released, and ends at once
        wait_ended(victim)
        record = job(victim)
        assert record["JobState"] == "COMPLETED" and record["Restarts"] == "1", record
        assert set(hostnames(record["NodeList"])) <= set(base), record
        fate = f"ran again on {record['NodeList']} (this run took longer than the {REQUEUE_DELAY} s hold)"
    # node4 is not coming back: the operator deletes its key (a leave event
    # too: slurm_nodes.leave finds node4 already gone from Slurm)
    rc, _, err = sh("master", "salt-key -y -d node4")
    assert rc == 0, err
    t_nowhere = wait_for(lambda: probes.nowhere(["node4"]), LEAVE_BOUND, "node4 gone from every membership file")
    assert "node4" not in slurm_nodes()
    print(f"\nkill node4: killed {time.monotonic() - t_kill:.1f} s ago: gone from Slurm after {took:.1f} s "
          f"({' -> '.join(states)}); job {victim} requeued ({requeued['JobState']}, Restarts={requeued['Restarts']}, "
          f"reason {requeued['Reason']}, BeginTime {requeued.get('BeginTime', '?')[11:]}), then {fate}; the next job "
          f"{following} ran on {', '.join(sorted(where))}; key deleted, gone everywhere after {t_nowhere:.1f} s; "
          "slurmctld: " + " | ".join(line.split("] ", 1)[-1] for line in lines))  # fmt: skip
