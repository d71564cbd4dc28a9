"""
State runs from the master's orchestrations, one at a time on each minion.

Joins, leaves and health flips are orchestrations the reactor starts (on
its pool of threads inside the salt-master), and several run at once (three
nodes starting, a salt-master restart bringing every minion back).  Their
state runs meet on the same minions: the master (the export, the hostfile),
the gateway (the upstream) and every member (membership).  Salt 3008.4's
minion-side queue cannot order them: with ``queue: true`` a run that meets
another is filed away and answers nothing, so the step fails ("did not
return a state result") and the join is lost; with ``queue: <n>`` every
running state job counts as blocking
(``salt.utils.state.check_prior_running_states``), so two waiting runs wait
for each other for ever.

So the master orders them.  ``cluster_orch.state`` is ``salt.state`` that
first takes an exclusive lock per targeted minion
(``<cachedir>/saltcluster/state-locks/<id>``, ``flock`` on a descriptor of
its own: other threads and processes wait, a salt-master that stops drops
them), in sorted order so two steps never hold one each of the same pair,
holds them while its run goes on, and publishes to exactly the minions it
locked (a list target), with ``queue: false``: a run started outside the
orchestrations (an operator's ``state.apply``) fails the step at once with
Salt's own comment naming that job, instead of being filed away and lost.

``skip_unsynced`` (membership runs) leaves out a minion that has never
published its health claim (``saltcluster_health`` in the master's mine:
its first highstate has not synced this tree's modules yet) and runs no
state run now (its lock is free): its own highstate starts later, so it
renders membership as it is by then, while a membership run now would fail
there ("has no attribute 'cluster.settings'").  One whose highstate runs
(its lock is taken) is waited for like any other.

Loaded only in the master's orchestrations (``__role`` master); the master's
highstate syncs it there (``master_extmods.synced``).
"""

import errno
import fcntl
import logging
import os
import threading
import time

import salt.utils.minions

log = logging.getLogger(__name__)

__virtualname__ = "cluster_orch"

POLL = 0.5
HEALTH_ENTRY = "saltcluster_health"  # the mine entry cluster_health.publish sends


def __virtual__():
    if __opts__.get("__role") != "master":
        return (False, "cluster_orch runs in the master's orchestrations only")
    return __virtualname__


def _lock_dir():
    return os.path.join(__opts__["cachedir"], "saltcluster", "state-locks")


def _targets(tgt, tgt_type):
    """The accepted minions tgt matches, as the master sees them now."""
    found = salt.utils.minions.CkMinions(__opts__).check_minions(tgt, tgt_type)
    return sorted(set(found.get("minions", [])))


def _synced(minions):
    """The minions that published their health claim (cluster_health, synced
    by their first highstate) in the master's copy of the mine."""
    mine = __salt__["saltutil.runner"]("cache.mine", tgt=",".join(minions), tgt_type="list")
    mine = mine if isinstance(mine, dict) else {}
    return {m for m in minions if isinstance(mine.get(m), dict) and HEALTH_ENTRY in mine[m]}


def _lock_path(minion):
    return os.path.join(_lock_dir(), minion)


def _holder(path):
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read().strip() or "unknown"
    except OSError:
        return "unknown"


def _lock(minion, holder, deadline):
    """(fd, None) with minion's lock held, or (None, why) at the deadline
    (deadline None: one try)."""
    path = _lock_path(minion)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                if deadline is None or time.monotonic() >= deadline:
                    os.close(fd)
                    return None, f"{minion}'s state runs are taken (by {_holder(path)})"
                time.sleep(POLL)
        os.ftruncate(fd, 0)
        os.pwrite(fd, holder.encode(), 0)
    except BaseException:
        os.close(fd)
        raise
    return fd, None


def _acquire(minions, holder, timeout, unsynced=()):
    """Lock the minions in sorted order: (fds, locked minions, skipped, None)
    or ([], [], [], why).  A minion in unsynced whose lock is free is skipped
    (not held); one whose lock is taken is waited for."""
    os.makedirs(_lock_dir(), mode=0o700, exist_ok=True)
    fds, locked, skipped = [], [], []
    deadline = time.monotonic() + timeout
    try:
        for minion in sorted(minions):
            if minion in unsynced:
                fd, _ = _lock(minion, holder, None)
                if fd is not None:
                    os.close(fd)
                    skipped.append(minion)
                    continue
            fd, why = _lock(minion, holder, deadline)
            if fd is None:
                _release(fds)
                return [], [], [], f"{why} after {timeout:g} s"
            fds.append(fd)
            locked.append(minion)
    except BaseException:
        _release(fds)
        raise
    return fds, locked, skipped, None


def _release(fds):
    for fd in fds:
        os.close(fd)


def state(name, tgt, tgt_type="glob", lock_timeout=1800, skip_unsynced=False, **kwargs):
    """
    Run ``salt.state`` (highstate or sls) on the minions tgt matches now,
    holding each one's state lock (see the module's docstring).  Every other
    argument is ``salt.state``'s (``test`` runs the minions' dry run under
    the locks too); ``queue`` is always false.

    lock_timeout
        Seconds to wait for the locks before failing, naming the minion and
        the step that holds it.

    skip_unsynced
        Leave out minions whose first highstate has not synced this tree's
        modules and that run no state run now.

    .. code-block:: yaml

        saltcluster-orch-join-membership:
          cluster_orch.state:
            - tgt: '* and not node3'
            - tgt_type: compound
            - sls: cluster.membership
            - skip_unsynced: true
    """
    ret = {"name": name, "changes": {}, "result": False, "comment": ""}
    try:
        lock_timeout = float(lock_timeout)
    except (TypeError, ValueError):
        ret["comment"] = f"lock_timeout: {lock_timeout!r} is not a number of seconds"
        return ret
    kwargs.pop("queue", None)

    minions = _targets(tgt, tgt_type)
    if not minions:
        ret["comment"] = f"No minion matches {tgt!r} ({tgt_type})"
        return ret
    unsynced = set(minions) - _synced(minions) if skip_unsynced else set()
    jid = globals().get("__orchestration_jid__", "-")
    holder = f"{name} (orchestration {jid}, pid {os.getpid()}, thread {threading.get_ident()})\n"
    fds, locked, skipped, why = _acquire(minions, holder, lock_timeout, unsynced)
    if why:
        ret["comment"] = why
        return ret
    left_out = (
        f"Left out, their first highstate comes later: {', '.join(skipped)}" if skipped else ""
    )
    try:
        if not locked:
            ret["result"] = True
            ret["comment"] = left_out
            return ret
        log.debug("cluster_orch: %s holds %s", name, ", ".join(locked))
        ret = __states__["salt.state"](name=name, tgt=locked, tgt_type="list", queue=False, **kwargs)
    finally:
        _release(fds)
    if left_out:
        ret["comment"] = f"{ret.get('comment', '')}\n{left_out}".strip()
    return ret
