"""
Make sure a uid is free for the cluster's MPI user before ``user.present``.

Debian hands low uids to system accounts (uid 100 is ``messagebus`` once dbus
is installed).  ``uid_free`` fails with a message naming the holder, or, when
asked to, moves that system account to a free system uid: its services are
stopped, the account and its group-less files renumbered, the services
started again.  It never picks a different uid for the cluster user.
"""

import pwd

__virtualname__ = "cluster_user"

SYSTEM_UID_RANGE = range(999, 100, -1)


def __virtual__():
    return __virtualname__


def _free_system_uid():
    used = {p.pw_uid for p in pwd.getpwall()}
    for uid in SYSTEM_UID_RANGE:
        if uid not in used:
            return uid
    return None


def uid_free(name, uid, relocate=False, restart_services=()):
    """
    Ensure ``uid`` is free or already belongs to ``name``.

    name
        the user that is to have ``uid``
    uid
        the uid
    relocate
        move a system account (uid < 1000) holding ``uid`` to a free system uid
    restart_services
        services to stop before and start after the move (e.g. ``dbus``)

    .. code-block:: yaml

        jobhandler-uid:
          cluster_user.uid_free:
            - name: jobhandler
            - uid: 100
    """
    ret = {"name": name, "changes": {}, "result": False, "comment": ""}
    uid = int(uid)
    try:
        holder = pwd.getpwuid(uid)
    except KeyError:
        ret["result"] = True
        ret["comment"] = f"uid {uid} is free for {name}"
        return ret
    if holder.pw_name == name:
        ret["result"] = True
        ret["comment"] = f"uid {uid} already belongs to {name}"
        return ret
    if not relocate:
        ret["comment"] = (
            f"uid {uid} wanted for {name} is held by {holder.pw_name!r}; set "
            "saltcluster:user:relocate_uid_holder: true to move that system account "
            "to a free system uid, or choose another saltcluster:user:uid"
        )
        return ret
    if holder.pw_uid >= 1000:
        ret["comment"] = f"uid {uid} is held by the regular user {holder.pw_name!r}; not moving it"
        return ret
    new_uid = _free_system_uid()
    if new_uid is None:
        ret["comment"] = f"no free system uid to move {holder.pw_name!r} to"
        return ret
    ret["changes"] = {holder.pw_name: {"old": uid, "new": new_uid}}
    if __opts__["test"]:
        ret["result"] = None
        ret["comment"] = f"{holder.pw_name!r} would move from uid {uid} to {new_uid} to free it for {name}"
        return ret
    stopped = [svc for svc in restart_services if __salt__["service.stop"](svc)]
    try:
        res = __salt__["cmd.run_all"](["usermod", "-u", str(new_uid), holder.pw_name], python_shell=False)
        if res["retcode"] != 0:
            ret["changes"] = {}
            ret["comment"] = f"usermod failed to move {holder.pw_name!r}: {res['stderr']}"
            return ret
        # files outside the home usermod does not know about (e.g. /run, /var)
        __salt__["cmd.run_all"](
            ["find", "/", "-xdev", "-uid", str(uid), "-exec", "chown", "-h", str(new_uid), "{}", "+"],
            python_shell=False,
            ignore_retcode=True,
        )
    finally:
        for svc in stopped:
            __salt__["service.start"](svc)
    ret["result"] = True
    ret["comment"] = f"moved {holder.pw_name!r} from uid {uid} to {new_uid}; uid {uid} is free for {name}"
    return ret
