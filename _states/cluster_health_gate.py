"""
A host's health at the end of its highstate: ``cluster_health.serving``.

A compute node enters the hostfile and the upstream only once it claims
``serving`` (``cluster_health.publish``, mine entry ``saltcluster_health``).
This state, last in a compute node's highstate (``cluster.health``), runs
the checks once everything they test is configured and admits a joining
node that passes: so every node, set up by the first ``salt '*'
state.apply`` or joined later, is listed only after its own highstate and
its health pass.  A node that fails is left out, and the state fails with
the failed checks named.

The file is not named cluster_health.py: the tests import modules by file
name from _modules and _states on one path, where a state module of that
name would hide the execution module.  Salt knows it by its virtual name.
"""

__virtualname__ = "cluster_health"


def __virtual__():
    if "cluster_health.publish" not in __salt__:
        return (False, "cluster_health: the cluster_health execution module is not loaded")
    return __virtualname__


def serving(name):
    """
    This host serves by its own health checks: ``cluster_health.publish``
    with ``admit=True`` (a joining host that passes is admitted at once; a
    drained one comes back only after ``health:pass_after`` passes in a
    row, as on its schedule).  Changes when its state changes; fails when
    the host does not serve.

    name
        anything (the state's ID)

    .. code-block:: yaml

        cluster-health-serving:
          cluster_health.serving:
            - order: last
    """
    ret = {"name": name, "changes": {}, "result": None, "comment": ""}
    if __opts__["test"]:
        ret["comment"] = "this host's health would be checked, and a joining host that passes admitted"
        return ret
    found = __salt__["cluster_health.publish"](admit=True)
    # publish sets the job's retcode when the host does not serve: this
    # state says so itself, in its result
    __context__.pop("retcode", None)
    if found["changed"]:
        ret["changes"] = {"health": {"old": found["previous"], "new": found["state"]}}
    failed = "; ".join(f"{check}: {why}" for check, why in found["failed"].items())
    if found["state"] == "serving":
        ret["result"] = True
        ret["comment"] = "serving: in the hostfile and the upstream" + (f" (failing now: {failed})" if failed else "")
    else:
        ret["result"] = False
        ret["comment"] = (
            f"{found['state']}: left out of the hostfile and the upstream "
            f"({found['fails']} failed checks in a row: {failed or 'none'})"
        )
    return ret
