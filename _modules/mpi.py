"""
Run MPI jobs on the saltcluster through MPICH's Hydra process manager.

Jobs run as the cluster's MPI user (``saltcluster:user:name``, never root)
from its shared home, over the Hydra hostfile the ``cluster.mpi`` states keep
from membership.  Program names resolve inside ``mpi:bin_dir`` (or one of
``mpi:allowed_dirs``); everything is passed to ``mpiexec`` as an argument
list, never through a shell.  ``mpiexec`` is the configured provider's
(``mpi:mpiexec``: Debian's, or the PyPI wheel's in ``mpi:pypi:prefix``).
"""

import logging
import os
import pwd
import re
import shlex
import time

import salt.utils.files
import salt.utils.path
from salt.exceptions import CommandExecutionError, SaltInvocationError

log = logging.getLogger(__name__)

__virtualname__ = "mpi"

PROGRAM_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.+-]*$")
SHELL_META = set(";&|`$<>(){}\\\n\r*?![]~'\"")
HELLOW_RE = re.compile(r"rank (\d+) of (\d+) on (\S+)")
TIMED_OUT = "timed out"


def __virtual__():
    # mpiexec is not looked for here: the pypi provider's is not on PATH, and
    # which one counts is a setting (checked per call, see _mpiexec)
    if salt.utils.path.which("setpriv") is None:
        return (False, "mpi: setpriv not found; install util-linux")
    return __virtualname__


def _as_user(cfg, cmd, **kwargs):
    """Run ``cmd`` (an argument list) as the MPI user, without a shell.

    Salt's ``runas=`` first starts ``su - USER -c python`` to capture the
    user's login environment: in the lab's guests that cost more than the
    whole MPI job.  ``setpriv`` drops to the user's uid, gid and groups and
    execs the command (same pid, so a timeout kills mpiexec itself) with a
    small fixed environment."""
    user = cfg["user"]["name"]
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        raise CommandExecutionError(f"mpi: user {user!r} does not exist on this host (apply cluster.users)")
    if entry.pw_uid == 0:
        raise CommandExecutionError(f"mpi: user {user!r} has uid 0: jobs never run as root")
    home = cfg["user"]["home"]
    env = {
        "HOME": home,
        "USER": user,
        "LOGNAME": user,
        "SHELL": entry.pw_shell,
        # the provider's bin first (pypi: its mpiexec, hydra_pmi_proxy)
        "PATH": ":".join([*cfg["mpi"]["path_dirs"], "/usr/local/bin", "/usr/bin", "/bin"]),
        "LANG": "C.UTF-8",
    }
    if cfg["mpi"]["library_dirs"]:
        # programs built by Debian's mpicc find the provider's libmpich.so.12
        env["LD_LIBRARY_PATH"] = ":".join(cfg["mpi"]["library_dirs"])
    wrapped = ["setpriv", f"--reuid={entry.pw_uid}", f"--regid={entry.pw_gid}", "--init-groups", "--", *cmd]
    return __salt__["cmd.run_all"](
        wrapped, python_shell=False, clean_env=True, env=env, cwd=home, **kwargs
    )


def _settings():
    # the defaults this host's last state run used: a job pays no
    # fileserver round trip for them
    return __salt__["cluster.settings"](cached=True)


def _executable(path):
    return os.path.isfile(path) and os.access(path, os.X_OK)


def _mpiexec(cfg):
    """The configured mpiexec, or an error naming it and the provider."""
    path = cfg["mpi"]["mpiexec"]
    if not _executable(path):
        raise CommandExecutionError(
            f"mpi: mpiexec {path} (saltcluster:mpi:mpiexec, provider {cfg['mpi']['provider']}) is not an "
            "executable on this host: apply cluster.mpi"
        )
    return path


def _as_list(value, what):
    if value is None:
        return []
    if isinstance(value, str):
        return shlex.split(value) if what == "args" else [v for v in value.split(",") if v]
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    raise SaltInvocationError(f"mpi.run: {what}={value!r} must be a list or a string")


def hostfile(path=None):
    """
    The Hydra hostfile as a list of ``{"host", "slots"}``.

    CLI Example:

    .. code-block:: bash

        salt master mpi.hostfile
    """
    path = path or _settings()["mpi"]["hostfile"]
    if not os.path.isfile(path):
        raise CommandExecutionError(f"mpi: hostfile {path} does not exist (apply cluster.mpi)")
    entries = []
    with salt.utils.files.fopen(path) as fh:
        for raw in fh:
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            host, _, slots = line.partition(":")
            entries.append({"host": host, "slots": int(slots) if slots.isdigit() else 1})
    return entries


def _allowed_dirs(cfg):
    return [os.path.realpath(d) for d in [cfg["mpi"]["bin_dir"], *cfg["mpi"]["allowed_dirs"]]]


def resolve(program):
    """
    The absolute path ``program`` stands for, or an error that names it: a
    plain name is looked up in ``mpi:bin_dir``; an absolute path must lie in
    ``mpi:bin_dir`` or ``mpi:allowed_dirs``.

    CLI Example:

    .. code-block:: bash

        salt master mpi.resolve cpi
    """
    cfg = _settings()
    allowed = _allowed_dirs(cfg)
    program = str(program)
    if not program or set(program) & SHELL_META or ".." in program.split("/"):
        raise SaltInvocationError(f"mpi.run: program {program!r} is refused: not a plain program name")
    if os.path.isabs(program):
        real = os.path.realpath(program)
        if not any(real.startswith(d + os.sep) for d in allowed):
            raise SaltInvocationError(
                f"mpi.run: program {program!r} is outside the allowed directories {allowed}"
            )
    elif PROGRAM_RE.match(program):
        real = os.path.realpath(os.path.join(allowed[0], program))
        if not real.startswith(allowed[0] + os.sep):
            raise SaltInvocationError(f"mpi.run: program {program!r} escapes {allowed[0]}")
    else:
        raise SaltInvocationError(f"mpi.run: program {program!r} is refused: not a plain program name")
    if not (os.path.isfile(real) and os.access(real, os.X_OK)):
        raise SaltInvocationError(f"mpi.run: program {program!r} not found as an executable ({real})")
    return real


def programs():
    """
    The MPI programs that ``mpi.run`` may start by name (executables in
    ``mpi:bin_dir``).

    CLI Example:

    .. code-block:: bash

        salt master mpi.programs
    """
    bin_dir = _settings()["mpi"]["bin_dir"]
    if not os.path.isdir(bin_dir):
        return []
    return sorted(
        name
        for name in os.listdir(bin_dir)
        if os.path.isfile(os.path.join(bin_dir, name)) and os.access(os.path.join(bin_dir, name), os.X_OK)
    )


def _check_np(np, total, oversubscribe):
    if isinstance(np, bool):
        raise SaltInvocationError(f"mpi.run: np={np!r} must be a positive integer")
    try:
        np = int(np)
    except (TypeError, ValueError):
        raise SaltInvocationError(f"mpi.run: np={np!r} must be a positive integer")
    if np <= 0:
        raise SaltInvocationError(f"mpi.run: np={np} must be a positive integer")
    if np > total and not oversubscribe:
        raise SaltInvocationError(
            f"mpi.run: np={np} is more than the {total} slots of the chosen hosts "
            "(pass oversubscribe=True to allow it)"
        )
    return np


def _check_env(env):
    if env is None:
        return {}
    if not isinstance(env, dict):
        raise SaltInvocationError(f"mpi.run: env={env!r} must be a mapping of NAME: value")
    for key, value in env.items():
        if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", str(key)):
            raise SaltInvocationError(f"mpi.run: env name {key!r} is not a variable name")
        if set(str(value)) & {"\n", "\r", "\0"}:
            raise SaltInvocationError(f"mpi.run: env {key}={value!r} holds a line break")
    return {str(k): str(v) for k, v in env.items()}


def build_command(program, np=None, args=None, hosts=None, env=None, oversubscribe=False, ppn=None):
    """
    The ``mpiexec`` argument list ``mpi.run`` would execute, after every
    check; nothing is started.

    CLI Example:

    .. code-block:: bash

        salt master mpi.build_command cpi np=4
    """
    cfg = _settings()
    path = resolve(program)
    args = _as_list(args, "args")
    for arg in args:
        if set(arg) & SHELL_META:
            raise SaltInvocationError(f"mpi.run: argument {arg!r} holds shell metacharacters")
    entries = hostfile(cfg["mpi"]["hostfile"])
    known = {e["host"]: e["slots"] for e in entries}
    chosen = _as_list(hosts, "hosts")
    for host in chosen:
        if host not in known:
            raise SaltInvocationError(
                f"mpi.run: host {host!r} is not in the hostfile ({', '.join(known) or 'empty'})"
            )
    if not known:
        raise CommandExecutionError(f"mpi.run: the hostfile {cfg['mpi']['hostfile']} lists no hosts")
    total = sum(known[h] for h in chosen) if chosen else sum(known.values())
    np = _check_np(total if np is None else np, total, oversubscribe)
    cmd = [_mpiexec(cfg)]
    if chosen:
        cmd += ["-hosts", ",".join(f"{h}:{known[h]}" for h in chosen)]
    else:
        cmd += ["-f", cfg["mpi"]["hostfile"]]
    cmd += ["-n", str(np)]
    if ppn is not None:
        if isinstance(ppn, bool) or not str(ppn).isdigit() or int(ppn) < 1:
            raise SaltInvocationError(f"mpi.run: ppn={ppn!r} must be a positive integer")
        cmd += ["-ppn", str(int(ppn))]
    genv = {"UCX_TLS": cfg["mpi"]["ucx_tls"]}
    if cfg["mpi"]["ucx_net_device"]:
        genv["UCX_NET_DEVICES"] = cfg["mpi"]["ucx_net_device"]
    genv.update(_check_env(env))
    for key, value in genv.items():
        cmd += ["-genv", key, value]
    cmd += [path, *args]
    return cmd


def _kill_strays(cfg, path, hosts):
    """After a timeout: end the job's ranks on every host it may have used."""
    user = cfg["user"]["name"]
    pattern = f"^{re.escape(path)}( |$)"
    killed = {}
    for host in hosts:
        if host in ("localhost", __grains__.get("host"), __grains__.get("id")):
            cmd = ["pkill", "-KILL", "-u", user, "-f", pattern]
        else:
            cmd = ["ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=5", host,
                   "pkill", "-KILL", "-u", user, "-f", shlex.quote(pattern)]  # fmt: skip
        res = _as_user(cfg, cmd, ignore_retcode=True, timeout=20)
        killed[host] = res["retcode"] == 0
    # and anything left of mpiexec's own process tree on this host
    __salt__["cmd.run_all"](
        ["pkill", "-KILL", "-u", user, "-f", "hydra_pmi_proxy|mpiexec"],
        python_shell=False, ignore_retcode=True,
    )  # fmt: skip
    return killed


def run(program, np=None, args=None, hosts=None, timeout=None, env=None, oversubscribe=False, ppn=None):
    """
    Run an MPI program across the cluster as the MPI user and return a dict
    with ``retcode``, ``stdout``, ``stderr``, ``np``, ``hosts``, ``duration``
    and ``command``.

    program
        a name in ``mpi:bin_dir`` (``cpi``, ``hellow``, ``mandel``...) or an
        absolute path inside ``mpi:bin_dir``/``mpi:allowed_dirs``
    np
        number of ranks; default: every slot of the chosen hosts
    args
        the program's arguments (a list, or a string split like a shell would,
        but never run by one)
    hosts
        a subset of the hostfile's hosts (list or comma string)
    timeout
        seconds (default ``mpi:timeout``); on expiry every rank on every host
        is killed and ``timed_out`` is True
    env
        extra variables passed to every rank (``-genv``)
    oversubscribe
        allow np above the slot count
    ppn
        ranks per host (Hydra ``-ppn``)

    CLI Example:

    .. code-block:: bash

        salt master mpi.run cpi np=4
        salt master mpi.run mandel args='[800, 600]' timeout=120
        salt --async master mpi.run hellow
    """
    cfg = _settings()
    user = cfg["user"]["name"]
    if user == "root":
        raise CommandExecutionError("mpi.run: jobs never run as root (saltcluster:user:name)")
    if timeout is None:
        timeout = cfg["mpi"]["timeout"]
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
        raise SaltInvocationError(f"mpi.run: timeout={timeout!r} must be a positive number of seconds")
    cmd = build_command(
        program, np=np, args=args, hosts=hosts, env=env, oversubscribe=oversubscribe, ppn=ppn
    )
    used = _as_list(hosts, "hosts") or [e["host"] for e in hostfile(cfg["mpi"]["hostfile"])]
    np_used = int(cmd[cmd.index("-n") + 1])
    log.info("mpi.run as %s: %s", user, cmd)
    start = time.monotonic()
    # mpiexec forwards stdin to rank 0: give it an empty one, not the minion's
    res = _as_user(cfg, cmd, timeout=timeout, ignore_retcode=True, stdin="")
    duration = time.monotonic() - start
    timed_out = duration >= timeout and TIMED_OUT in (res.get("stdout", "") + res.get("stderr", "")).lower()
    ret = {
        "retcode": res["retcode"],
        "stdout": res.get("stdout", ""),
        "stderr": res.get("stderr", ""),
        "np": np_used,
        "hosts": used,
        "duration": round(duration, 3),
        "command": cmd,
        "timed_out": timed_out,
    }
    if timed_out:
        ret["killed"] = _kill_strays(cfg, resolve(program), used)
        if ret["retcode"] == 0:
            ret["retcode"] = 124
    if ret["retcode"] != 0:
        __context__["retcode"] = ret["retcode"]
    return ret


def check(timeout=60):
    """
    Run ``hellow`` with one rank on every compute host of the hostfile and
    report which hosts answered.

    CLI Example:

    .. code-block:: bash

        salt master mpi.check
    """
    entries = hostfile()
    hosts = [e["host"] for e in entries]
    # one rank per host: -ppn 1 keeps Hydra from packing ranks on the first host
    res = run("hellow", np=len(hosts), hosts=hosts, timeout=timeout, ppn=1)
    answered = sorted({m.group(3) for m in HELLOW_RE.finditer(res["stdout"])})
    return {
        "result": res["retcode"] == 0 and set(hosts) <= set(answered),
        "expected": hosts,
        "answered": answered,
        "missing": sorted(set(hosts) - set(answered)),
        "retcode": res["retcode"],
        "duration": res["duration"],
    }
