"""
Build an MPI program from C source with ``mpicc``, only when the source (or
the build flags) changed: a stamp beside the binary records the sha256 of
source and command line.
"""

import hashlib
import os
import pwd

import salt.utils.files
import salt.utils.path

__virtualname__ = "mpi_program"


def __virtual__():
    # loaded even before MPICH is installed: the same highstate installs it
    return __virtualname__


def _digest(source, cmd):
    sha = hashlib.sha256()
    with salt.utils.files.fopen(source, "rb") as fh:
        sha.update(fh.read())
    sha.update("\0".join(cmd).encode())
    return sha.hexdigest()


def built(name, source, mpicc="mpicc", cflags=("-O2",), libs=("-lm",), runas=None):
    """
    Ensure ``name`` (the binary's path) is built from ``source``.

    .. code-block:: yaml

        cpi-binary:
          mpi_program.built:
            - name: /home/jobhandler/bin/cpi
            - source: /home/jobhandler/src/cpi.c
            - runas: jobhandler
    """
    ret = {"name": name, "changes": {}, "result": False, "comment": ""}
    # in test mode an earlier state of the same run may still provide these
    for missing, later, error in (
        (not os.path.isfile(source), f"{source} exists", f"source {source} does not exist"),
        (
            salt.utils.path.which(mpicc) is None,
            f"{mpicc} is installed",
            f"{mpicc} not found: apply cluster.mpi.package",
        ),
    ):
        if missing:
            if __opts__["test"]:
                ret.update(result=None, comment=f"{name} would be built once {later}", changes={"built": name})
            else:
                ret["comment"] = error
            return ret
    tmp = name + ".saltcluster-build"
    cmd = [mpicc, *cflags, "-o", tmp, source, *libs]
    digest = _digest(source, [mpicc, *cflags, *libs])
    stamp = name + ".sha256"
    if os.path.isfile(name) and os.path.isfile(stamp):
        with salt.utils.files.fopen(stamp) as fh:
            if fh.read().strip() == digest:
                ret["result"] = True
                ret["comment"] = f"{name} is up to date with {source}"
                return ret
    ret["changes"] = {"built": name, "sha256": digest}
    if __opts__["test"]:
        ret["result"] = None
        ret["comment"] = f"{name} would be built from {source}"
        return ret
    res = __salt__["cmd.run_all"](cmd, python_shell=False, runas=runas, cwd=os.path.dirname(name))
    if res["retcode"] != 0:
        ret["changes"] = {}
        ret["comment"] = f"mpicc failed for {source}: {res['stderr'] or res['stdout']}"
        if os.path.exists(tmp):
            os.remove(tmp)
        return ret
    # swap in the new binary atomically so a running job keeps its own
    os.replace(tmp, name)
    with salt.utils.files.fopen(stamp, "w") as fh:
        fh.write(digest + "\n")
    if runas:
        os.chown(stamp, pwd.getpwnam(runas).pw_uid, -1)
    ret["result"] = True
    ret["comment"] = f"built {name} from {source}"
    return ret
