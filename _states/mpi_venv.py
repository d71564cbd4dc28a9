"""
MPICH from PyPI (the ``mpich`` wheel: MPICH with its own UCX, relocatable) in
a Python venv at one fixed prefix, so ``PREFIX/bin/mpiexec``,
``PREFIX/bin/mpicc`` and ``PREFIX/lib/libmpi.so.12`` sit at the same paths on
every host (Hydra starts ``hydra_pmi_proxy`` from its own bin directory).

pip runs only when the requirement changed: a stamp in the prefix records the
requirement (and the sha256 of a local wheel file), so a re-apply changes
nothing and costs no index round trip.
"""

import hashlib
import os

import salt.utils.files
import salt.utils.path

__virtualname__ = "mpi_venv"

STAMP = ".saltcluster-requirement"
# what the cluster uses from the prefix; a wheel without them is not MPICH
LAYOUT = ("bin/mpiexec", "bin/mpicc", "bin/hydra_pmi_proxy", "lib/libmpi.so.12")


def __virtual__():
    return __virtualname__


def _local_file(requirement):
    path = requirement[len("file://") :] if requirement.startswith("file://") else requirement
    return path if os.path.isabs(path) else None


def _wanted(requirement):
    """The stamp's text: the requirement, and the content hash of a local
    file, so a wheel replaced under the same name is installed again."""
    text = requirement + "\n"
    path = _local_file(requirement)
    if path and os.path.isfile(path):
        sha = hashlib.sha256()
        with salt.utils.files.fopen(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                sha.update(block)
        text += f"sha256:{sha.hexdigest()}\n"
    return text


def _read(path):
    try:
        with salt.utils.files.fopen(path) as fh:
            return fh.read()
    except OSError:
        return None


def installed(name, requirement, python="/usr/bin/python3"):
    """
    Ensure a venv at ``name`` (the prefix) holds ``requirement``.

    name
        the prefix, an absolute path; created with ``python -m venv``
    requirement
        what pip installs: ``mpich==5.0.2``, a wheel URL, or a local wheel
        path (sites without internet)
    python
        the interpreter the venv is made from (Debian: python3-venv)

    .. code-block:: yaml

        mpich-in-prefix:
          mpi_venv.installed:
            - name: /opt/saltcluster/mpich
            - requirement: mpich==5.0.2
    """
    ret = {"name": name, "changes": {}, "result": False, "comment": ""}
    if not os.path.isabs(name):
        ret["comment"] = f"prefix {name!r} is not an absolute path"
        return ret
    venv_python = os.path.join(name, "bin", "python")
    has_venv = os.path.isfile(os.path.join(name, "pyvenv.cfg")) and os.access(venv_python, os.X_OK)
    stamp = os.path.join(name, STAMP)
    wanted = _wanted(requirement)
    current = _read(stamp) if has_venv else None
    missing = [rel for rel in LAYOUT if not os.path.exists(os.path.join(name, rel))]
    if has_venv and current == wanted and not missing:
        ret["result"] = True
        ret["comment"] = f"{requirement} is installed in {name}"
        return ret
    changes = {}
    if not has_venv:
        changes["venv"] = f"{name} from {python}"
    changes["installed"] = {"old": current.splitlines()[0] if current else None, "new": requirement}
    ret["changes"] = changes
    if __opts__["test"]:
        ret["result"] = None
        ret["comment"] = f"{requirement} would be installed in {name}" + (
            "" if has_venv else f" (a new venv from {python})"
        )
        return ret
    # ranks run as the MPI user: everything in the prefix readable by all
    run = {"python_shell": False, "umask": "022", "ignore_retcode": True}
    if not has_venv:
        if not (os.path.isfile(python) and os.access(python, os.X_OK)) and not salt.utils.path.which(python):
            ret.update(changes={}, comment=f"python {python} not found (install python3-venv)")
            return ret
        res = __salt__["cmd.run_all"]([python, "-m", "venv", name], **run)
        if res["retcode"] != 0:
            ret.update(changes={}, comment=f"venv at {name} failed: {res['stderr'] or res['stdout']}")
            return ret
    # --force-reinstall: the artifact asked for lands even if pip thinks an
    # equal version is there (a replaced local wheel, files removed by hand)
    cmd = [venv_python, "-m", "pip", "install", "--disable-pip-version-check", "--no-input",
           "--force-reinstall", requirement]  # fmt: skip
    res = __salt__["cmd.run_all"](cmd, **run)
    if res["retcode"] != 0:
        ret["changes"] = {"venv": changes["venv"]} if "venv" in changes else {}
        ret["comment"] = f"pip install {requirement} into {name} failed: {res['stderr'] or res['stdout']}"
        return ret
    missing = [rel for rel in LAYOUT if not os.path.exists(os.path.join(name, rel))]
    if missing:
        ret["comment"] = f"{requirement} installed into {name} but {', '.join(missing)} missing: is it MPICH's wheel?"
        return ret
    with salt.utils.files.fopen(stamp, "w") as fh:
        fh.write(wanted)
    os.chmod(stamp, 0o644)
    ret["result"] = True
    ret["comment"] = f"installed {requirement} in {name}"
    return ret
