"""
Build an MPI program from C source with ``mpicc``, only when the source (or
the build flags) changed: a stamp beside the binary records the sha256 of
source and command line.

With ``runas`` every file operation is the user's, through the ``userfs``
execution module (a child with the user's uid, gid and groups): the source
is read, the build output renamed into place and the stamp written as the
user, and a binary or stamp is only taken as up to date when it is a regular
file the user owns alone.  A symlink or hard link the user puts at any of
these names (or a symlink in place of the bin directory) is replaced or
refused by the kernel, never written, read or chowned through as root.
"""

import hashlib
import os

import salt.utils.path
from salt.exceptions import CommandExecutionError

__virtualname__ = "mpi_program"

BUILD_SUFFIX = ".saltcluster-build"


def __virtual__():
    # loaded even before MPICH is installed: the same highstate installs it
    return __virtualname__


def _digest(data, cmd):
    sha = hashlib.sha256()
    sha.update(data)
    sha.update("\0".join(cmd).encode())
    return sha.hexdigest()


def _fs(fun, *args, **kwargs):
    return __salt__[f"userfs.{fun}"](*args, **kwargs)


def built(name, source, mpicc="mpicc", cflags=("-O2",), libs=("-lm",), runas=None):
    """
    Ensure ``name`` (the binary's path) is built from ``source``, as
    ``runas`` (the owner of the bin directory) when given.

    .. code-block:: yaml

        cpi-binary:
          mpi_program.built:
            - name: /home/jobhandler/bin/cpi
            - source: /home/jobhandler/src/cpi.c
            - runas: jobhandler
    """
    ret = {"name": name, "changes": {}, "result": False, "comment": ""}
    test = __opts__["test"]
    try:
        # the source as the user reads it (the compiler will too)
        src = _fs("inspect", source, user=runas, read=True, follow=True)
    except CommandExecutionError as exc:
        if not test:
            ret["comment"] = f"cannot read {source} as {runas}: {exc}"
            return ret
        src = {"kind": None}
    # in test mode an earlier state of the same run may still provide these
    for missing, later, error in (
        (src["kind"] != "file" or "content" not in src, f"{source} exists", f"source {source} does not exist"),
        (
            salt.utils.path.which(mpicc) is None,
            f"{mpicc} is installed",
            f"{mpicc} not found: apply cluster.mpi.package",
        ),
    ):
        if missing:
            if test:
                ret.update(result=None, comment=f"{name} would be built once {later}", changes={"built": name})
            else:
                ret["comment"] = error
            return ret
    tmp = name + BUILD_SUFFIX
    cmd = [mpicc, *cflags, "-o", tmp, source, *libs]
    digest = _digest(src["content"], [mpicc, *cflags, *libs])
    stamp = name + ".sha256"
    try:
        binary = _fs("inspect", name, user=runas, read=False)
        recorded = _fs("inspect", stamp, user=runas, read=True)
    except CommandExecutionError as exc:
        ret["comment"] = f"cannot inspect {name} as {runas}: {exc}"
        return ret
    if (
        binary["owned_alone"]
        and recorded["owned_alone"]
        and recorded.get("content", b"").decode(errors="replace").strip() == digest
    ):
        ret["result"] = True
        ret["comment"] = f"{name} is up to date with {source}"
        return ret
    ret["changes"] = {"built": name, "sha256": digest}
    if test:
        ret["result"] = None
        ret["comment"] = f"{name} would be built from {source}"
        return ret
    try:
        _fs("remove", tmp, user=runas)  # whatever was planted there: a fresh output
        res = __salt__["cmd.run_all"](cmd, python_shell=False, runas=runas, cwd=os.path.dirname(name))
        if res["retcode"] != 0:
            ret["changes"] = {}
            ret["comment"] = f"mpicc failed for {source}: {res['stderr'] or res['stdout']}"
            _fs("remove", tmp, user=runas)
            return ret
        out = _fs("inspect", tmp, user=runas, read=False)
        if not out["owned_alone"]:
            ret["changes"] = {}
            ret["comment"] = f"{tmp} is not a file of {runas or 'this process'}'s alone after the build"
            _fs("remove", tmp, user=runas)
            return ret
        # swap in the new binary atomically so a running job keeps its own;
        # a rename replaces a link at `name`, never its target
        _fs("rename", tmp, name, user=runas)
        _fs("write", stamp, digest + "\n", user=runas, mode="0644")
    except CommandExecutionError as exc:
        ret["changes"] = {}
        ret["comment"] = f"building {name} as {runas}: {exc}"
        return ret
    ret["result"] = True
    ret["comment"] = f"built {name} from {source}"
    return ret
