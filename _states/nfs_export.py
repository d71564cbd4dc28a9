"""
Manage one export line in /etc/exports and re-export only when it changes.

Salt 3008 has no core ``nfs_export`` state; this one owns exactly the
line for ``name`` (other lines of the file are kept as they are), validates
the clients and options before writing, and runs ``exportfs -ra`` only after
a change.  A new file that ``exportfs -ra`` refuses never stays live: the
previous file is put back and exported again.
"""

import ipaddress
import os
import re

import salt.utils.files
import salt.utils.path

__virtualname__ = "nfs_export"

CLIENT_RE = re.compile(r"^[A-Za-z0-9.*?:/_-]+$")
OPTION_RE = re.compile(r"^[a-z_]+(=[A-Za-z0-9:._-]+)?$")


def __virtual__():
    return __virtualname__


def _everyone(client):
    """True for a client spec that admits every host: a wildcard with no
    fixed part, or a network with prefix length 0."""
    client = str(client)
    if not client.strip("*?."):
        return True
    try:
        return ipaddress.ip_network(client, strict=False).prefixlen == 0
    except ValueError:
        return False


def _write(path, lines):
    with salt.utils.files.fopen(path + ".saltcluster.tmp", "w") as fh:
        fh.write("".join(line + "\n" for line in lines))
    os.replace(path + ".saltcluster.tmp", path)


def _reexport():
    return __salt__["cmd.run_all"](["exportfs", "-ra"], python_shell=False)


def _line(name, clients, options):
    opts = ",".join(options)
    return name + " " + " ".join(f"{c}({opts})" for c in clients)


def _read(path):
    if not os.path.exists(path):
        return []
    with salt.utils.files.fopen(path) as fh:
        return fh.read().splitlines()


def _export_path(line):
    stripped = line.strip()
    if not stripped or stripped.startswith("#"):
        return None
    return stripped.split()[0]


def present(name, clients, options=("rw", "sync", "no_subtree_check", "root_squash"),
            exports="/etc/exports", reload=True):  # fmt: skip
    """
    Ensure ``name`` is exported to ``clients`` with ``options``.

    name
        the absolute directory to export
    clients
        list of client specs (address, cidr, host name, wildcard); one that
        admits every host (``*``, ``0.0.0.0/0``) is refused
    options
        exports(5) options, applied to every client
    exports
        the exports file
    reload
        run ``exportfs -ra`` after a change

    .. code-block:: yaml

        home-export:
          nfs_export.present:
            - name: /home/jobhandler
            - clients: [10.5.5.0/24]
    """
    ret = {"name": name, "changes": {}, "result": False, "comment": ""}
    if not os.path.isabs(name) or any(c.isspace() for c in name):
        ret["comment"] = f"export path {name!r} must be absolute and contain no blanks"
        return ret
    if not clients:
        ret["comment"] = f"export {name}: no clients given"
        return ret
    for client in clients:
        if not CLIENT_RE.match(str(client)):
            ret["comment"] = f"export {name}: client {client!r} is not a host, wildcard or cidr"
            return ret
        if _everyone(client):
            ret["comment"] = f"export {name}: client {client!r} admits every host"
            return ret
    for opt in options:
        if not OPTION_RE.match(str(opt)):
            ret["comment"] = f"export {name}: option {opt!r} is not an exports(5) option"
            return ret
    wanted = _line(name, clients, options)
    lines = _read(exports)
    current = [line for line in lines if _export_path(line) == name]
    if current == [wanted]:
        ret["result"] = True
        ret["comment"] = f"{name} is exported as wanted"
        return ret
    ret["changes"] = {"old": "\n".join(current) or None, "new": wanted}
    if __opts__["test"]:
        ret["result"] = None
        ret["comment"] = f"{name} would be exported: {wanted}"
        return ret
    kept = [line for line in lines if _export_path(line) != name]
    existed = os.path.exists(exports)
    _write(exports, kept + [wanted])
    ret["comment"] = f"{name} exported: {wanted}"
    if reload:
        if not salt.utils.path.which("exportfs"):
            # the server reads the file when it starts
            ret["comment"] += "; exportfs not found, not re-exported"
            ret["result"] = True
            return ret
        res = _reexport()
        if res["retcode"] != 0:
            # never leave a refused export live: put the last file back
            if existed:
                _write(exports, lines)
            else:
                os.unlink(exports)
            back = _reexport()
            ret["changes"] = {}
            ret["comment"] = (
                f"{name}: exportfs -ra refused {wanted!r}: {res['stderr'].strip()}; previous export kept"
                + ("" if back["retcode"] == 0 else f" (re-exporting it failed too: {back['stderr'].strip()})")
            )
            return ret
        ret["comment"] += "; re-exported"
    ret["result"] = True
    return ret


def absent(name, exports="/etc/exports", reload=True):
    """
    Ensure ``name`` has no line in the exports file.

    .. code-block:: yaml

        old-export:
          nfs_export.absent:
            - name: /srv/old
    """
    ret = {"name": name, "changes": {}, "result": True, "comment": f"{name} is not exported"}
    lines = _read(exports)
    current = [line for line in lines if _export_path(line) == name]
    if not current:
        return ret
    ret["changes"] = {"old": "\n".join(current), "new": None}
    if __opts__["test"]:
        ret["result"] = None
        ret["comment"] = f"{name} would be unexported"
        return ret
    with salt.utils.files.fopen(exports + ".saltcluster.tmp", "w") as fh:
        fh.write("\n".join(line for line in lines if _export_path(line) != name) + "\n")
    os.replace(exports + ".saltcluster.tmp", exports)
    ret["comment"] = f"{name} unexported"
    if reload and salt.utils.path.which("exportfs"):
        res = __salt__["cmd.run_all"](["exportfs", "-ra"], python_shell=False)
        if res["retcode"] != 0:
            ret["result"] = False
            ret["comment"] += f"; exportfs -ra failed: {res['stderr']}"
    return ret
