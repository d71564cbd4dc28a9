"""
Slurm's view of the cluster's compute nodes, kept in step with membership.

With ``saltcluster:scheduler: slurm`` every compute node runs slurmd as a
dynamic node (``slurmd -Z``, state ``cluster.slurm``): it registers itself
with slurmctld when its highstate starts slurmd, and nothing in slurm.conf
lists it.  The orchestrations call these functions on the master (where
slurmctld and ``scontrol`` live) to do the rest:

- a node joined: :py:func:`admit` waits until it is registered, resumes
  it if saltcluster had drained or downed it (a rejoin), and fails unless
  Slurm can use it;
- a node left (its key deleted): :py:func:`leave` drains it, lets its jobs
  finish or requeues them (``slurm:leave_policy``), then deletes it;
- a node died (lost from presence): :py:func:`lost` marks it down at once
  (Slurm requeues its batch jobs, whatever the leave policy), then deletes
  it;
- a node's health flipped: :py:func:`follow_health` drains it in Slurm too,
  or resumes it once it serves again.

A leave and a loss of the same node may run at once (a node powered off,
then its key deleted): a node slurmctld no longer lists, wherever either
finds it gone, is done, not an error; the one that deleted it says so.

Only what saltcluster itself set is undone: a node is resumed only when
its reason is one of saltcluster's (``saltcluster: ...``), never one an
operator gave with ``scontrol update``.  Node names are checked as
``mpi.run`` checks host names before anything is asked of Slurm.
"""

import logging
import re
import time

import salt.utils.path
from salt.exceptions import CommandExecutionError, SaltInvocationError

log = logging.getLogger(__name__)

__virtualname__ = "slurm_nodes"

# as mpi.HOST_RE (used with fullmatch): a host name, never an option, a list
# or a Slurm hostlist expression
HOST_RE = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?")
JOB_ID_RE = re.compile(r"[0-9]{1,10}")
# every reason saltcluster gives starts so; only those are ever undone
REASON_PREFIX = "saltcluster:"
REASON_LEAVING = "saltcluster: leaving the cluster"
REASON_LOST = "saltcluster: lost (no longer connected to the salt-master)"
REASON_HEALTH = "saltcluster: health checks failing"
LEAVE_POLICIES = ("requeue", "finish")
# node states (the first word of scontrol's State=) in which jobs still run
BUSY_STATES = {"ALLOCATED", "MIXED", "COMPLETING"}
# a node Slurm starts jobs on: one of these states...
USABLE_STATES = {"IDLE", "MIXED", "ALLOCATED"}
# ...with none of these flags (scontrol's words after the state)
UNUSABLE_FLAGS = {
    "DRAIN", "FAIL", "INVALID_REG", "NOT_RESPONDING", "MAINTENANCE", "POWERED_DOWN", "POWER_DOWN",
    "POWERING_DOWN", "REBOOT_REQUESTED", "REBOOT_ISSUED",
}  # fmt: skip
# job states squeue shows for a job that holds no node (waiting, or back in
# the queue)
WAITING_STATES = {"PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED"}
# seconds between two looks at a node while waiting
POLL = 2.0
# seconds a node whose jobs were requeued or killed gets to be left with
# none before it is deleted anyway (the deletion then fails, saying so)
SETTLE_TIMEOUT = 60
SCONTROL_TIMEOUT = 30
# scontrol's one-line records: Key=Value pairs; a value may hold spaces
# (Reason=, OS=), so a pair ends where the next " Key=" starts
FIELD_RE = re.compile(r"(?:^|(?<=\s))([A-Za-z][A-Za-z0-9_]*)=")
# the "[user@time]" Slurm appends to a reason it shows
REASON_STAMP_RE = re.compile(r"\s*\[[^\]]*@[^\]]*\]\s*$")


def __virtual__():
    if salt.utils.path.which("scontrol") is None:
        return (False, "slurm_nodes: scontrol not found; install slurm-client (cluster.slurm, scheduler: slurm)")
    return __virtualname__


def _name(node):
    node = str(node) if isinstance(node, (str, int)) and not isinstance(node, bool) else node
    if not isinstance(node, str) or not HOST_RE.fullmatch(node):
        raise SaltInvocationError(f"slurm_nodes: node {node!r} is not a host name")
    return node


def _settings():
    return __salt__["cluster.settings"](cached=True)


def _run(cmd, timeout=SCONTROL_TIMEOUT):
    return __salt__["cmd.run_all"](cmd, python_shell=False, ignore_retcode=True, timeout=timeout)


def _fail(ret, comment):
    """``ret`` marked failed: the job's retcode too, so salt.function in an
    orchestration sees it."""
    ret.update(result=False, comment=comment)
    __context__["retcode"] = 1
    log.error("slurm_nodes: %s", comment)
    return ret


def parse_records(text):
    """
    scontrol's one-line records (``scontrol show node -o``) as dicts of
    their ``Key=Value`` fields, one per non-empty line.

    CLI Example:

    .. code-block:: bash

        salt master slurm_nodes.parse_records 'NodeName=node1 State=IDLE'
    """
    records = []
    for line in str(text).splitlines():
        line = line.strip()
        if not line:
            continue
        marks = list(FIELD_RE.finditer(line))
        record = {}
        for index, mark in enumerate(marks):
            end = marks[index + 1].start() if index + 1 < len(marks) else len(line)
            record[mark.group(1)] = line[mark.end() : end].strip()
        if record:
            records.append(record)
    return records


def _int(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _node(record):
    """One of scontrol's node records as saltcluster reads it."""
    words = [w for w in record.get("State", "").split("+") if w]
    base = words[0].rstrip("*~#%$@^-!") if words else "UNKNOWN"
    reason = REASON_STAMP_RE.sub("", record.get("Reason", "") or "")
    return {
        "name": record.get("NodeName", ""),
        "state": base,
        "flags": sorted({w.rstrip("*~#%$@^-!") for w in words[1:]}),
        "cpus": _int(record.get("CPUTot")),
        "alloc_cpus": _int(record.get("CPUAlloc")) or 0,
        "features": [f for f in (record.get("AvailableFeatures") or "").split(",") if f and f != "(null)"],
        "reason": "" if reason in ("", "(null)", "none") else reason,
        "address": record.get("NodeAddr", ""),
    }


def _busy(node):
    return node["state"] in BUSY_STATES or "COMPLETING" in node["flags"] or node["alloc_cpus"] > 0


def _drained(node):
    return "DRAIN" in node["flags"] or node["state"] in ("DRAINED", "DRAINING")


def _ours(node):
    return node["reason"].startswith(REASON_PREFIX)


def _usable(node):
    """Slurm starts jobs on it: idle or running some, nothing setting it
    aside."""
    return node["state"] in USABLE_STATES and not set(node["flags"]) & UNUSABLE_FLAGS


def _refused(node):
    """Slurm itself will not use it, whatever reason it shows: an invalid
    registration (the node reports less than it claims), a failed node, or
    a state scontrol has no name for."""
    return bool({"INVALID_REG", "FAIL"} & set(node["flags"]) or node["state"] in ("INVALID", "ERROR"))


def _set_aside(node):
    """Refused, drained or down (not a passing state such as a registration
    still being processed)."""
    return _refused(node) or _drained(node) or node["state"] == "DOWN"


def _described(node):
    state = "+".join([node["state"], *node["flags"]])
    return f"{state} (reason: {node['reason'] or 'none given'})"


def nodes():
    """
    Every node slurmctld knows, as a list of ``{name, state, flags, cpus,
    alloc_cpus, features, reason, address}`` (``state`` is the first word
    of scontrol's ``State=``, ``flags`` the rest: ``DRAIN``,
    ``DYNAMIC_NORM``, ``NOT_RESPONDING``...).

    CLI Example:

    .. code-block:: bash

        salt master slurm_nodes.nodes
    """
    res = _run(["scontrol", "show", "node", "-o"])
    if res["retcode"] != 0:
        raise CommandExecutionError(f"slurm_nodes: scontrol show node failed: {res.get('stderr', '').strip()}")
    return [_node(r) for r in parse_records(res["stdout"]) if r.get("NodeName")]


def show(node):
    """
    One node as :py:func:`nodes` lists it, or None when slurmctld does not
    know it (not registered yet, or deleted).

    CLI Example:

    .. code-block:: bash

        salt master slurm_nodes.show node1
    """
    node = _name(node)
    res = _run(["scontrol", "show", "node", "-o", node])
    if res["retcode"] != 0:
        text = f"{res.get('stdout', '')} {res.get('stderr', '')}"
        if "not found" in text.lower() or "invalid node name" in text.lower():
            return None
        raise CommandExecutionError(f"slurm_nodes: scontrol show node {node} failed: {text.strip()}")
    for record in parse_records(res["stdout"]):
        if record.get("NodeName") == node:
            return _node(record)
    return None


def jobs_on(node):
    """
    The jobs slurmctld has on ``node`` (running, completing, and so on), as
    a list of ``{"id", "state"}``; none when slurmctld does not list the
    node (deleted meanwhile).

    CLI Example:

    .. code-block:: bash

        salt master slurm_nodes.jobs_on node1
    """
    node = _name(node)
    res = _run(["squeue", "--noheader", "--nodelist", node, "--format=%i|%T"])
    if res["retcode"] != 0:
        if _gone(node):
            # squeue refuses a node slurmctld does not list ("Invalid node
            # name"): deleted meanwhile, it holds no job
            return []
        raise CommandExecutionError(f"slurm_nodes: squeue on {node} failed: {res.get('stderr', '').strip()}")
    found = []
    for line in res["stdout"].splitlines():
        job, _, state = line.strip().partition("|")
        if JOB_ID_RE.fullmatch(job):
            found.append({"id": job, "state": state})
    return found


def _gone(node):
    """Whether slurmctld no longer lists ``node``, asked again after a
    command on it failed: a leave (key deleted) and a loss (presence) of the
    same node can run at once, and what one removed is done for the other.
    An unanswered question is not "gone"."""
    try:
        return show(node) is None
    except CommandExecutionError:
        return False


def _update(node, *fields):
    """``scontrol update nodename=<node> <fields>``: True once done, False
    when slurmctld no longer lists the node (deleted meanwhile)."""
    res = _run(["scontrol", "update", f"nodename={node}", *fields])
    if res["retcode"] != 0:
        if _gone(node):
            return False
        raise CommandExecutionError(
            f"slurm_nodes: scontrol update nodename={node} {' '.join(fields)} failed: "
            f"{(res.get('stderr') or res.get('stdout') or '').strip()}"
        )
    return True


def _wait(check, timeout):
    """Ask ``check()`` every POLL seconds until it returns something true or
    ``timeout`` seconds have passed; its last answer.  A question slurmctld
    leaves unanswered (``check`` raises: unreachable for a moment, as while
    ``scontrol reconfigure`` hands over) is "not yet" within the bound; when
    the last one at the bound is unanswered, its error is raised."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            found, error = check(), None
        except CommandExecutionError as exc:
            found, error = None, exc
        if found or time.monotonic() >= deadline:
            if error is not None:
                raise error
            return found
        time.sleep(POLL)


def _timeout(value, default, what):
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 7 * 86400:
        raise SaltInvocationError(f"slurm_nodes: {what}={value!r} must be a number of seconds from 0 to 604800")
    return value


def admit(node, timeout=None):
    """
    A node joined (orch.join, after its highstate started its slurmd and its
    health passed): wait until slurmctld lists it (up to ``timeout``
    seconds, default ``slurm:register_timeout``), resume it if saltcluster
    had drained or downed it (a node that rejoins), then wait (within the
    same bound) until Slurm can start jobs on it: IDLE, MIXED or ALLOCATED
    with no DRAIN, FAIL, INVALID_REG, NOT_RESPONDING... flag.

    It fails (``result`` False, the job's retcode 1, so orch.join does not
    record the join) when the node did not register, when Slurm set it
    aside for a reason that is not saltcluster's (DRAIN or DOWN by an
    operator or by Slurm itself, an INVALID_REG registration, a FAIL or an
    INVALID state: left as it is, and named with its reason in the
    comment), or when it is still not usable at the end of the bound.
    Returns ``{result, node, state, changes, comment}``.

    CLI Example:

    .. code-block:: bash

        salt master slurm_nodes.admit node3
    """
    node = _name(node)
    cfg = _settings()
    timeout = _timeout(timeout, cfg["slurm"]["register_timeout"], "timeout")
    ret = {"result": True, "node": node, "state": None, "changes": {}, "comment": ""}
    deadline = time.monotonic() + timeout
    found = _wait(lambda: show(node), timeout)
    if not found:
        return _fail(ret, f"{node} did not register with slurmctld within {timeout} s (is its slurmd running?)")
    ret["state"] = "+".join([found["state"], *found["flags"]])
    resumed = ""
    if (_drained(found) or found["state"] == "DOWN") and _ours(found) and not _refused(found):
        if not _update(node, "state=resume"):
            return _fail(ret, f"{node} registered with slurmctld, then was deleted before it was resumed")
        ret["changes"] = {"state": {"old": ret["state"], "new": "resumed"}, "reason": found["reason"]}
        resumed = f" (resumed: saltcluster had set {found['reason']})"
    elif _set_aside(found):
        return _fail(ret, f"{node} is registered but Slurm cannot use it: {_described(found)}; left as it is "
                          f"(once fixed: scontrol update nodename={node} state=resume)")  # fmt: skip
    # usable now, or after a passing state (NOT_RESPONDING while its
    # registration is processed, UNKNOWN...): within the rest of the bound
    seen = {}

    def usable_or_final():
        seen["node"] = now = show(node)
        return now is None or _usable(now) or _refused(now) or (_set_aside(now) and not _ours(now))

    _wait(usable_or_final, max(0.0, deadline - time.monotonic()))
    found = seen["node"]
    if found is None:
        return _fail(ret, f"{node} registered with slurmctld, then was deleted (a leave or a loss of it meanwhile)")
    ret["state"] = "+".join([found["state"], *found["flags"]])
    if not _usable(found):
        return _fail(ret, f"{node} is registered but Slurm cannot use it: {_described(found)}")
    ret["comment"] = f"{node} is registered and usable: {ret['state']}{resumed}"
    return ret


def _requeue_or_cancel(job, node):
    """Requeue ``job`` (a batch job goes back to the queue); a job Slurm
    cannot requeue (an allocation, like mpi.run's, or --no-requeue) is
    cancelled, if it still holds ``node``: a loss of the same node may have
    requeued it meanwhile (it waits in the queue then, and stays there).
    What was done."""
    res = _run(["scontrol", "requeue", job])
    if res["retcode"] == 0:
        return "requeued"
    if job not in {j["id"] for j in jobs_on(node) if j["state"] not in WAITING_STATES}:
        return "already off the node"
    res = _run(["scancel", job])
    return "cancelled" if res["retcode"] == 0 else f"left: {(res.get('stderr') or '').strip()}"


# what _busy() reads of a node slurmctld no longer lists
_GONE = {"state": "GONE", "flags": [], "alloc_cpus": 0}

# a leave (key deleted) and a loss (presence) of the same node may run at
# once: whichever deletes it, the other finds it gone
_GONE_MEANWHILE = "{node} was removed from Slurm meanwhile (a leave or a loss of it at the same time): nothing to do"


def _delete(node, ret):
    """Wait (up to SETTLE_TIMEOUT) for ``node`` to hold no job, then delete
    it; slurmctld itself refuses to delete a node that still has one.  A
    node slurmctld no longer lists was deleted meanwhile (by a leave or a
    loss of it running at the same time): done, and not counted here."""
    settled = _wait(lambda: not jobs_on(node) and not _busy(show(node) or _GONE), SETTLE_TIMEOUT)
    res = _run(["scontrol", "delete", f"nodename={node}"])
    if res["retcode"] != 0:
        if _gone(node):
            ret["comment"] = _GONE_MEANWHILE.format(node=node)
            return ret
        why = (res.get("stderr") or res.get("stdout") or "").strip()
        still = "" if settled else f" (it still had jobs {SETTLE_TIMEOUT} s after they were ended)"
        return _fail(ret, f"scontrol delete nodename={node} failed{still}: {why}")
    ret["changes"]["deleted"] = node
    return ret


def leave(node, policy=None, timeout=None):
    """
    A node leaves the cluster for good: drain it in Slurm, deal with its
    running jobs by ``policy`` (default ``slurm:leave_policy``), then delete
    it from slurmctld.  An operator runs it while the node still runs,
    before shutting it down and deleting its key; orch.leave runs it again
    for the key delete (and finds nothing left to do).

    requeue
        its jobs are requeued at once (a batch job goes back to the queue
        and runs elsewhere; a job Slurm cannot requeue, such as an
        ``mpi.run`` allocation, is cancelled)
    finish
        its jobs run on for up to ``timeout`` seconds (default
        ``slurm:leave_timeout``); whatever still runs then is requeued as
        above

    A node slurmctld does not know is nothing to do, and so is one that
    disappears while this runs (a loss of the same node, slurm_nodes.lost,
    deleted it: a node shut down without this first is a loss to the
    master).  Returns ``{result, node,
    changes, comment}``; the job's retcode is 1 when the node could not be
    deleted.

    CLI Example:

    .. code-block:: bash

        salt master slurm_nodes.leave node3
        salt master slurm_nodes.leave node3 policy=finish timeout=600
    """
    node = _name(node)
    cfg = _settings()
    policy = cfg["slurm"]["leave_policy"] if policy is None else policy
    if policy not in LEAVE_POLICIES:
        raise SaltInvocationError(f"slurm_nodes: policy={policy!r} must be one of {', '.join(LEAVE_POLICIES)}")
    timeout = _timeout(timeout, cfg["slurm"]["leave_timeout"], "timeout")
    ret = {"result": True, "node": node, "changes": {}, "comment": ""}
    found = show(node)
    if found is None:
        ret["comment"] = f"{node} is not a Slurm node: nothing to do"
        return ret
    if not _drained(found):
        if not _update(node, "state=drain", f"reason={REASON_LEAVING}"):
            ret["comment"] = _GONE_MEANWHILE.format(node=node)
            return ret
        ret["changes"]["drained"] = REASON_LEAVING
    if policy == "finish":
        _wait(lambda: not jobs_on(node), timeout)
    ended = {job["id"]: _requeue_or_cancel(job["id"], node) for job in jobs_on(node)}
    if ended:
        ret["changes"]["jobs"] = ended
    _delete(node, ret)
    if ret["result"] and "deleted" in ret["changes"]:
        ret["comment"] = f"{node} drained ({policy}) and deleted from Slurm"
    return ret


def lost(node):
    """
    A node died (lost from the salt-master's presence; orch.leave): mark it
    DOWN at once, so slurmctld ends its jobs now instead of after
    SlurmdTimeout (batch jobs are requeued, as JobRequeue=1 allows; an
    ``mpi.run`` allocation on it ends), then delete it.  ``slurm:leave_policy``
    does not apply: a dead node's jobs cannot finish there, so they are
    requeued whatever it says.  If it comes back, its join registers it
    anew.  A node slurmctld does not know, or that disappears while this
    runs (a leave of the same node deleted it), is nothing to do.

    CLI Example:

    .. code-block:: bash

        salt master slurm_nodes.lost node4
    """
    node = _name(node)
    ret = {"result": True, "node": node, "changes": {}, "comment": ""}
    found = show(node)
    if found is None:
        ret["comment"] = f"{node} is not a Slurm node: nothing to do"
        return ret
    if found["state"] != "DOWN":
        if not _update(node, "state=down", f"reason={REASON_LOST}"):
            ret["comment"] = _GONE_MEANWHILE.format(node=node)
            return ret
        ret["changes"]["down"] = REASON_LOST
    _delete(node, ret)
    if ret["result"] and "deleted" in ret["changes"]:
        ret["comment"] = f"{node} marked down and deleted from Slurm"
    return ret


def follow_health(node, state):
    """
    A compute node's own health claim changed (orch.health): ``drained`` →
    DRAIN in Slurm too (running jobs finish, no new ones start there);
    ``serving`` → resumed, if it was saltcluster's health drain; anything
    else (``joining``) changes nothing.  A node slurmctld does not know is
    nothing to do.

    CLI Example:

    .. code-block:: bash

        salt master slurm_nodes.follow_health node2 drained
    """
    node = _name(node)
    if state not in ("joining", "serving", "drained"):
        raise SaltInvocationError(f"slurm_nodes: state={state!r} must be joining, serving or drained")
    ret = {"result": True, "node": node, "changes": {}, "comment": ""}
    found = show(node)
    if found is None:
        ret["comment"] = f"{node} is not a Slurm node: nothing to do"
    elif state == "drained" and not _drained(found):
        if _update(node, "state=drain", f"reason={REASON_HEALTH}"):
            ret["changes"]["drained"] = REASON_HEALTH
            ret["comment"] = f"{node} drained in Slurm: its health checks fail"
        else:
            ret["comment"] = f"{node} is not a Slurm node (deleted meanwhile): nothing to do"
    elif state == "serving" and found["reason"] == REASON_HEALTH and (_drained(found) or found["state"] == "DOWN"):
        if _update(node, "state=resume"):
            ret["changes"]["resumed"] = found["reason"]
            ret["comment"] = f"{node} resumed in Slurm: it serves again"
        else:
            ret["comment"] = f"{node} is not a Slurm node (deleted meanwhile): nothing to do"
    else:
        ret["comment"] = f"{node} stays {'+'.join([found['state'], *found['flags']])} in Slurm"
    return ret
