"""
saltcluster from the master's side: ``salt-run cluster.status``.

This file is ``saltcluster.py`` with the virtual name ``cluster``, not
``cluster.py``: Salt 3008.4 ships a runner module named ``cluster`` (its
own master clustering: ``cluster.members``, ``cluster.ring_info``, ...).
A custom ``cluster.py`` would replace that module whole; a module of
another file name under the same virtual name adds its functions beside
Salt's (the loader merges modules that share a virtual name).

Served like the execution modules: ``salt/_runners`` links to this folder,
and ``salt-run saltutil.sync_runners`` (or ``saltutil.sync_all``) copies it
into the master's extension modules.
"""

import logging
import os
import re
import time

import salt.key

log = logging.getLogger(__name__)

__virtualname__ = "cluster"

TIMEOUT = 10  # seconds a round of minion calls waits for answers
GATHER_JOB_TIMEOUT = 5  # seconds the find_job check of a slow minion waits
# <cachedir>/saltcluster/<what>/<id>: joined/, joining/ (salt/orch/join.sls), health/ (salt/orch/health.sls)
RECORDS_DIR = "saltcluster"
COLUMNS = ("HOST", "ROLES", "ADDRESS", "MINION", "HEALTH", "SERVES", "HOSTFILE", "UPSTREAM", "LAST CHANGE")


def __virtual__():
    return __virtualname__


# -- gathering -------------------------------------------------------------------


def _accepted():
    """The minion ids whose keys the master has accepted."""
    with salt.key.get_key(__opts__) as skey:
        return list(skey.list_status("accepted").get("minions", []))


def _ask(targets, fun, arg=(), timeout=TIMEOUT):
    """``{minion: return}`` of ``fun`` (a name, or a list for a compound
    call) on the minions ``targets``; those that did not answer are absent."""
    if not targets:
        return {}
    ret = __salt__["salt.execute"](
        sorted(targets), fun, arg=arg, tgt_type="list", timeout=timeout, gather_job_timeout=GATHER_JOB_TIMEOUT
    )
    return ret if isinstance(ret, dict) else {}


def _changes():
    """``{id: (what, mtime)}``: the newest membership record of each host
    under the master's ``<cachedir>/saltcluster/<what>/<id>`` (``joined``,
    written by orch.join when a join completed; ``joining``, a join under
    way; whatever else a later orchestration records there)."""
    base = os.path.join(__opts__["cachedir"], RECORDS_DIR)
    found = {}
    try:
        kinds = sorted(os.listdir(base))
    except OSError:
        return found
    for what in kinds:
        try:
            names = os.listdir(os.path.join(base, what))
        except OSError:  # not a directory
            continue
        for name in names:
            try:
                mtime = os.lstat(os.path.join(base, what, name)).st_mtime
            except OSError:
                continue
            if name not in found or mtime > found[name][1]:
                found[name] = (what, mtime)
    return found


def _gather(timeout):
    """Everything one table needs, in three rounds of minion calls: the
    health of every accepted minion; then, from the minions that answered
    as master, membership and the hostfile; from those that answered as
    gateway, the upstream."""
    accepted = _accepted()
    checks = _ask(accepted, "cluster_health.check", timeout=timeout)

    def holding(role):
        return [m for m, r in checks.items() if isinstance(r, dict) and role in (r.get("roles") or [])]

    members, hostfiles = {}, {}
    funs = ["cluster.members", "cluster_health.hostfile_slots"]
    answers = _ask(holding("master"), funs, arg=[[] for _ in funs], timeout=timeout)
    for master, ret in sorted(answers.items()):
        ret = ret if isinstance(ret, dict) else {}
        if isinstance(ret.get("cluster.members"), list) and not members:
            members = {m["name"]: m for m in ret["cluster.members"] if isinstance(m, dict) and "name" in m}
        hostfiles[master] = ret.get("cluster_health.hostfile_slots")
    upstreams = _ask(holding("gateway"), "cluster_health.upstream", timeout=timeout)
    return accepted, checks, members, hostfiles, upstreams, _changes()


# -- the rows --------------------------------------------------------------------


def _natural(name):
    """node2 sorts before node10.  Names come from the key store and the
    gateway's file, not only from validated membership: a part is a number
    only if it is what ``\\d`` matched (``str.isdigit`` also takes '²',
    which int() refuses)."""
    return [int(p) if p.isdecimal() else p for p in re.split(r"(\d+)", name)]


def _stamp(mtime):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(mtime)) if mtime is not None else None


def _readable(ret):
    """A hostfile_slots / upstream answer that read its file."""
    return isinstance(ret, dict) and not ret.get("error")


def _upstream_weights(ret, members):
    """``{host: weight}`` of an upstream() answer; 0 for a server marked
    down.  A server line without a member comment is matched by address."""
    by_addr = {m.get("addr"): name for name, m in members.items()}
    weights = {}
    for server in ret.get("servers") or []:
        name = server.get("name") or by_addr.get(server.get("addr")) or server.get("addr")
        weights[name] = 0 if server.get("down") else server.get("weight")
    return weights


def _health(answer):
    """``(healthy, failed)`` from one minion's check() answer."""
    if not isinstance(answer, dict) or not isinstance(answer.get("checks"), dict):
        # not a check result: the module is not synced there, or it failed
        return None, {"check": " ".join(str(answer).split())[:200]}
    failed = {n: c.get("reason", "") for n, c in answer["checks"].items() if not (isinstance(c, dict) and c.get("ok"))}
    return bool(answer.get("healthy")) and not failed, failed


def _rows(accepted, checks, members, hostfiles, upstreams, changes):
    """One row per host any source names: accepted keys, membership, the
    hostfile, the upstream.  ``hostfile`` and ``upstream`` map each master
    or gateway that read its file to the host's slots or weight there (None:
    not listed); an empty mapping means no such host answered."""
    slots = {m: ret.get("slots") or {} for m, ret in hostfiles.items() if _readable(ret)}
    weights = {g: _upstream_weights(ret, members) for g, ret in upstreams.items() if _readable(ret)}
    hosts = set(accepted) | set(members) | set(checks)
    for table in (*slots.values(), *weights.values()):
        hosts |= set(table)
    rows = []
    for host in sorted(hosts, key=_natural):
        answer = checks.get(host)
        healthy, failed = _health(answer) if host in checks else (None, {})
        own = answer if isinstance(answer, dict) else {}
        roles = members[host].get("roles") if host in members else own.get("roles")
        what, mtime = changes.get(host, (None, None))
        rows.append(
            {
                "host": host,
                "roles": list(roles) if isinstance(roles, list) else [],
                "address": members.get(host, {}).get("addr"),
                "accepted": host in accepted,
                "answering": host in checks,
                "healthy": healthy,
                "failed": failed,
                # what the host claims for itself in the mine, as the master's
                # cluster.members read it: joining, serving, drained (None:
                # no claim, or no member)
                "serves": members.get(host, {}).get("health"),
                "hostfile": {m: table.get(host) for m, table in sorted(slots.items())},
                "upstream": {g: table.get(host) for g, table in sorted(weights.items())},
                "last_change": {"what": what, "at": _stamp(mtime)} if what else None,
            }
        )
    return rows


# -- the table -------------------------------------------------------------------


def _cell_places(places, zero="0"):
    """One cell for a host's value in each hostfile (or upstream): the value
    when all agree, ``-`` when none lists it, ``?`` when none was read;
    ``zero`` stands for 0 (an upstream server marked down)."""
    if not places:
        return "?"

    def show(value):
        return "-" if value is None else zero if value == 0 else str(value)

    shown = {show(v) for v in places.values()}
    if len(shown) == 1:
        return shown.pop()
    return " ".join(f"{src}:{show(v)}" for src, v in places.items())


def _cells(row, members_known=True):
    if not row["answering"]:
        minion, health = ("down" if row["accepted"] else "no key"), "?"
    elif row["healthy"] is None:
        minion, health = "up", "?"
    else:
        minion, health = "up", "ok" if row["healthy"] else "FAIL " + ",".join(row["failed"])
    change = row["last_change"]
    serves = {"serving": "yes", "drained": "DRAINED", "joining": "joining"}.get(row["serves"], "-")
    if not members_known:  # no master answered for membership
        serves = "?"
    return (
        row["host"],
        ",".join(row["roles"]) or "-",
        row["address"] or "-",
        minion,
        health,
        serves,
        _cell_places(row["hostfile"]),
        _cell_places(row["upstream"], zero="down"),
        f"{change['what']} {change['at']}" if change else "-",
    )


def _file_line(kind, answers):
    if not answers:
        return f"{kind}: no host holding its role answered"
    parts = []
    for src, ret in sorted(answers.items()):
        if _readable(ret):
            parts.append(f"{src}:{ret.get('path')}, changed {_stamp(ret.get('mtime'))}")
        elif isinstance(ret, dict):
            parts.append(f"{src}:{ret.get('path')}: cannot read: {ret.get('error')}")
        else:
            parts.append(f"{src}: {' '.join(str(ret).split())[:120]}")
    return f"{kind}: " + "; ".join(parts)


def _table(rows, hostfiles, upstreams):
    """The rows as aligned text, then each failed check's reason and where
    the hostfile and the upstream live."""
    known = any(r["address"] for r in rows)  # membership came from a master
    lines = [COLUMNS, *(_cells(r, known) for r in rows)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(COLUMNS))]
    out = ["  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip() for line in lines]
    reasons = [f"  {r['host']} {name}: {why}" for r in rows for name, why in r["failed"].items()]
    if reasons:
        out += ["", "failed checks:", *reasons]
    out += ["", _file_line("hostfile", hostfiles), _file_line("upstream", upstreams)]
    return "\n".join(out)


def status(timeout=TIMEOUT, table=None):
    """
    One row per host: ``host``, ``roles``, ``address`` (its cluster address,
    from the master's ``cluster.members``), ``accepted`` (its key),
    ``answering`` (it answered ``cluster_health.check`` within ``timeout``
    seconds), ``healthy`` (None when it did not answer or gave no check
    result), ``failed`` (``{check: reason}``), ``serves`` (the state the
    host claims in the mine, as ``cluster_health.publish`` decided it with
    hysteresis: ``serving``, ``drained`` (out of the hostfile and the
    upstream), ``joining`` (not admitted yet), or None: no claim; the
    table's SERVES column), ``hostfile`` (``{master:
    slots}``: None when not listed; ``{}`` when no master answered),
    ``upstream`` (``{gateway: weight}``, 0 for a server marked down),
    ``last_change`` (``{what, at}``: the host's newest membership record in
    the master's ``<cachedir>/saltcluster/`` (``joined``: its last completed
    join; ``joining``: a join under way; ``health``: the last membership
    run that followed its health), UTC; None for a host set up by the
    bootstrap highstate and never joined or drained since).

    table
        None (default): the table when ``salt-run cluster.status`` is called
        without ``--out``, the rows otherwise (``--out=json``, other runners,
        orchestrations); True: always the table (text); False: always the
        rows

    The table is returned as ``{"outputter": "txt", "data": <text>}``, which
    salt-run prints as is: the columns, the reason of each failed check, and
    the path and last change of the hostfile and the upstream.

    CLI Example:

    .. code-block:: bash

        salt-run cluster.status
        salt-run cluster.status --out=json
        salt-run cluster.status timeout=20
    """
    accepted, checks, members, hostfiles, upstreams, changes = _gather(timeout)
    rows = _rows(accepted, checks, members, hostfiles, upstreams, changes)
    if table is None:
        table = __opts__.get("fun") == "cluster.status" and "output" not in __opts__
    if table:
        return {"outputter": "txt", "data": _table(rows, hostfiles, upstreams)}
    return rows
