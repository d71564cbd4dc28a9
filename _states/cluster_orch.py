"""
State runs from the master's orchestrations, one at a time on each minion.

Joins, leaves and health flips are orchestrations the reactor starts, each in
a process of its own, and several run at once (three nodes starting, a
salt-master restart bringing every minion back).  Their state runs meet on
the same minions: the master (the export, the hostfile), the gateway (the
upstream) and every member (membership).  Salt 3008.4's minion-side queue
cannot order them: with ``queue: true`` a run that meets another is filed
away and answers nothing, so the step fails ("did not return a state
result") and the join is lost; with ``queue: <n>`` every running state job
counts as blocking (``salt.utils.state.check_prior_running_states``), so two
waiting runs wait for each other for ever.

So the master orders them.  ``cluster_orch.state`` is ``salt.state`` that
first takes an exclusive lock per targeted minion
(``<cachedir>/saltcluster/state-locks/<id>``, ``flock``: a master that stops
drops them), in sorted order so two steps never hold one each of the same
pair, and holds them while its run goes on.  It publishes with
``queue: false``: a run started outside the orchestrations (an operator's
``state.apply``) fails the step at once with Salt's own comment naming that
job, instead of being filed away and lost.

A node in the middle of its join is left out of other joins' membership
runs until its own highstate has started (``skip_unstarted_joins``): that
highstate renders after this step starts, so it reads membership as it is
now, while a membership run before it would meet a node whose first
highstate has not synced this tree's modules yet.  Once its highstate has
started (``joining: <id>`` marks it, under the locks), membership runs wait
for it on its lock.

Loaded only in the master's orchestrations (``__role`` master); the master's
highstate syncs it there (``master_extmods.synced``).
"""

import errno
import fcntl
import logging
import os
import re
import time

import salt.utils.minions

log = logging.getLogger(__name__)

__virtualname__ = "cluster_orch"

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}\Z")
POLL = 0.5


def __virtual__():
    if __opts__.get("__role") != "master":
        return (False, "cluster_orch runs in the master's orchestrations only")
    return __virtualname__


def _state_dir():
    return os.path.join(__opts__["cachedir"], "saltcluster")


def _targets(tgt, tgt_type):
    """The accepted minions tgt matches, as the master sees them now."""
    found = salt.utils.minions.CkMinions(__opts__).check_minions(tgt, tgt_type)
    return sorted(set(found.get("minions", [])))


def _join_unstarted(minion):
    """True for a minion whose join is in progress and whose highstate in
    that join has not started."""
    lock = os.path.join(_state_dir(), "joining", minion)
    return os.path.isdir(lock) and not os.path.exists(os.path.join(lock, "highstate"))


def _narrowed(tgt, tgt_type, skip):
    """tgt without the minions in skip, as (tgt, tgt_type)."""
    if not skip:
        return tgt, tgt_type
    if tgt_type == "list":
        names = tgt.split(",") if isinstance(tgt, str) else list(tgt)
        return ",".join(n for n in names if n not in skip), "list"
    if tgt_type not in ("glob", "compound"):
        raise ValueError(f"cannot leave minions out of a {tgt_type} target")
    return f"( {tgt} ) and not L@{','.join(sorted(skip))}", "compound"


def _lock_path(minion):
    return os.path.join(_state_dir(), "state-locks", minion)


def _holder(path):
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read().strip() or "unknown"
    except OSError:
        return "unknown"


def _acquire(minions, name, timeout):
    """Lock every minion in sorted order; (fds, None) or ([], why)."""
    os.makedirs(os.path.dirname(_lock_path("x")), mode=0o700, exist_ok=True)
    fds = []
    deadline = time.monotonic() + timeout
    for minion in sorted(minions):
        path = _lock_path(minion)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                if time.monotonic() >= deadline:
                    why = (
                        f"{minion}'s state runs were still taken after {timeout} s "
                        f"(by {_holder(path)})"
                    )
                    os.close(fd)
                    _release(fds)
                    return [], why
                time.sleep(POLL)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}: {name}\n".encode(), 0)
        fds.append(fd)
    return fds, None


def _release(fds):
    for fd in fds:
        os.close(fd)


def state(
    name,
    tgt,
    tgt_type="glob",
    lock_timeout=1800,
    skip_unstarted_joins=False,
    joining=None,
    **kwargs,
):
    """
    Run ``salt.state`` (highstate or sls) on the minions tgt matches, holding
    each one's state lock (see the module's docstring).  Every other argument
    is ``salt.state``'s (``test`` runs the minions' dry run under the
    locks too); ``queue`` is always false.

    lock_timeout
        Seconds to wait for the locks before failing, naming the minion and
        the step that holds it.

    skip_unstarted_joins
        Leave out minions whose join runs and has not started its highstate.

    joining
        This step is the highstate of that minion's join: mark it started
        (``<cachedir>/saltcluster/joining/<id>/highstate``) once locked.

    .. code-block:: yaml

        saltcluster-orch-join-membership:
          cluster_orch.state:
            - tgt: '* and not node3'
            - tgt_type: compound
            - sls: cluster.membership
            - skip_unstarted_joins: true
    """
    ret = {"name": name, "changes": {}, "result": False, "comment": ""}
    if joining is not None and not (isinstance(joining, str) and NAME_RE.match(joining)):
        ret["comment"] = f"joining: {joining!r} is not a minion name"
        return ret
    try:
        lock_timeout = float(lock_timeout)
    except (TypeError, ValueError):
        ret["comment"] = f"lock_timeout: {lock_timeout!r} is not a number of seconds"
        return ret
    kwargs.pop("queue", None)

    minions = _targets(tgt, tgt_type)
    skip = {m for m in minions if m != joining and _join_unstarted(m)} if skip_unstarted_joins else set()
    try:
        tgt, tgt_type = _narrowed(tgt, tgt_type, skip)
    except ValueError as exc:
        ret["comment"] = str(exc)
        return ret
    minions = [m for m in minions if m not in skip]
    if not minions:
        ret["result"] = True
        ret["comment"] = "No minion to run on" + (
            f" (left out, their joins' highstates come later: {', '.join(sorted(skip))})" if skip else ""
        )
        return ret

    fds, why = _acquire(minions, name, lock_timeout)
    if why:
        ret["comment"] = why
        return ret
    try:
        if joining is not None and not __opts__.get("test"):
            lock = os.path.join(_state_dir(), "joining", joining)
            if not os.path.isdir(lock):
                ret["comment"] = f"no join of {joining} runs ({lock} is missing)"
                return ret
            with open(os.path.join(lock, "highstate"), "w", encoding="utf-8") as fh:
                fh.write(f"pid {os.getpid()}\n")
        log.debug("cluster_orch: %s holds %s", name, ", ".join(minions))
        ret = __states__["salt.state"](name=name, tgt=tgt, tgt_type=tgt_type, queue=False, **kwargs)
    finally:
        _release(fds)
    if skip:
        ret["comment"] = (
            f"{ret.get('comment', '')}\nLeft out, their joins' highstates come later: {', '.join(sorted(skip))}"
        ).strip()
    return ret
