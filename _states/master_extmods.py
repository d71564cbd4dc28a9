"""
The salt-master's own copy of this tree's runners and states.

The master's orchestrations (joins, leaves, health flips) run their state
runs through ``cluster_orch.state`` (``_states/``), and ``salt-run
cluster.status`` is a runner (``_runners/``).  Both run inside the
salt-master, which loads extension modules only from its own cache
(``extension_modules``), filled by ``salt-run saltutil.sync_runners`` /
``sync_states``.  The master's highstate keeps that copy equal to the tree
it serves, before it lets joins start (cluster.bootstrapped), so no join
runs against an older copy or none.

Runs on the salt-master's host only (its minion reads the master's config).
"""

import os

import salt.config
import salt.utils.hashutils

__virtualname__ = "master_extmods"

KINDS = ("runners", "states")


def __virtual__():
    if "saltutil.runner" not in __salt__:
        return (False, "master_extmods needs saltutil.runner")
    return __virtualname__


def _master_extmods():
    conf = os.path.join(os.path.dirname(__opts__["conf_file"]), "master")
    return salt.config.master_config(conf)["extension_modules"]


def _pending(saltenv):
    """{kind: [module file names that differ from the served tree]}."""
    extmods = _master_extmods()
    pending = {}
    for kind in KINDS:
        prefix = f"_{kind}/"
        for source in __salt__["cp.list_master"](saltenv=saltenv, prefix=prefix):
            if not source.endswith(".py") or "/" in source[len(prefix) :]:
                continue
            served = __salt__["cp.hash_file"](f"salt://{source}", saltenv=saltenv)
            local = os.path.join(extmods, kind, os.path.basename(source))
            if not served or not os.path.isfile(local):
                pending.setdefault(kind, []).append(os.path.basename(source))
            elif salt.utils.hashutils.get_hash(local, served["hash_type"]) != served["hsum"]:
                pending.setdefault(kind, []).append(os.path.basename(source))
    return pending


def synced(name, saltenv="base"):
    """
    Sync this tree's runners and states to the salt-master when the master's
    copy differs from what it serves.

    .. code-block:: yaml

        cluster-bootstrapped-master-extmods-synced:
          master_extmods.synced:
            - name: runners and states
    """
    ret = {"name": name, "changes": {}, "result": True, "comment": ""}
    pending = _pending(saltenv)
    if not pending:
        ret["comment"] = "The salt-master's runners and states are the served tree's"
        return ret
    what = "; ".join(f"{kind}: {', '.join(sorted(files))}" for kind, files in sorted(pending.items()))
    if __opts__["test"]:
        ret["result"] = None
        ret["comment"] = f"Would sync to the salt-master: {what}"
        ret["changes"] = {"pending": pending}
        return ret
    synced_now = {}
    for kind in sorted(pending):
        out = __salt__["saltutil.runner"](f"saltutil.sync_{kind}", saltenv=saltenv)
        synced_now[kind] = out
    left = _pending(saltenv)
    if left:
        ret["result"] = False
        ret["comment"] = f"The salt-master's copy still differs after a sync: {left}"
        return ret
    ret["changes"] = {"synced": synced_now}
    ret["comment"] = f"Synced to the salt-master: {what}"
    return ret
