"""
Run MPI jobs on the saltcluster through MPICH's Hydra process manager.

Jobs run as the cluster's MPI user (``saltcluster:user:name``, never root)
from its shared home, over the Hydra hostfile the ``cluster.mpi`` states keep
from membership.  Program names resolve inside ``mpi:bin_dir`` (or one of
``mpi:allowed_dirs``); everything is passed to ``mpiexec`` as an argument
list, never through a shell.  ``mpiexec`` is the configured provider's
(``mpi:mpiexec``: Debian's, or the PyPI wheel's in ``mpi:pypi:prefix``).

``mpi.run``'s callers are not trusted: whatever they pass, Hydra sees one
section (our options, then the resolved program and its arguments), the
ranks get no variable that loads code, a job is bounded in ranks
(``mpi:max_np``), time (``mpi:max_timeout``) and kept output
(``mpi:max_output``), and a timeout ends that job's processes on every host
and nothing of another job's (see :py:func:`run`).

With ``saltcluster:scheduler: slurm`` the cluster has a queue: ``mpi.run``
takes its turn in a Slurm allocation (``salloc``, Hydra launching through
Slurm, no hostfile), and :py:func:`submit`, :py:func:`jobs`,
:py:func:`cancel` and :py:func:`output` queue batch jobs, show the queue,
cancel a job and read its output, with the same argument checks.  Without
it they say there is no queue.
"""

import errno
import logging
import math
import os
import pwd
import re
import selectors
import shlex
import signal
import stat
import subprocess
import time
import uuid

import salt.utils.path
from salt.exceptions import CommandExecutionError, SaltInvocationError

log = logging.getLogger(__name__)

__virtualname__ = "mpi"

# every pattern below is used with fullmatch: "$" would let a trailing
# newline through
PROGRAM_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]*")
HOST_RE = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?")
ENV_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
JOB_RE = re.compile(r"[0-9a-f]{32}")
UINT_RE = re.compile(r"[0-9]{1,9}")
SHELL_META = set(";&|`$<>(){}\\\n\r*?![]~'\"\0")
HELLOW_RE = re.compile(r"rank (\d+) of (\d+) on (\S+)")
# Hydra's MPMD separator: an argument equal to it after the program starts
# a new section (options, then another executable)
MPMD_SEPARATOR = ":"
# the tag every process of one job carries in its environment
JOB_VAR = "SALTCLUSTER_JOB"
TIMEOUT_RETCODE = 124  # as timeout(1)
# after a timeout: how long mpiexec gets to end its job itself (Hydra tears
# down proxies and ranks on SIGTERM) before SIGKILL
TERM_GRACE = 3.0
# after mpiexec exits: how long its pipes may stay open
DRAIN_GRACE = 2.0
CHUNK = 65536
# the largest hostfile mpi.run reads (a line is about 16 bytes: 65k hosts)
MAX_HOSTFILE = 1 << 20
# Slurm (scheduler: slurm): mpi.run's allocation is named by its job tag
ALLOCATION_PREFIX = "saltcluster-run-"
SALLOC_JOB_RE = re.compile(r"salloc: (?:Pending|Granted) job allocation ([0-9]+)")
# a Slurm job id as mpi.cancel and mpi.output take it: digits only (no
# array index, no option, no path)
SLURM_JOB_ID_RE = re.compile(r"[1-9][0-9]{0,9}")
JOB_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}")
# mpi.submit's time_limit: minutes, or [days-]hours:minutes:seconds
TIME_LIMIT_RE = re.compile(
    r"(?:(?P<days>[0-9]{1,3})-)?(?P<hours>[0-9]{1,4}):(?P<minutes>[0-5][0-9]):(?P<seconds>[0-5][0-9])"
)
# squeue's fields for mpi.jobs, the name last (it may hold the separator)
SQUEUE_FIELDS = ("id", "state", "elapsed", "num_nodes", "nodes", "user", "partition", "reason", "name")
SQUEUE_FORMAT = "%i|%T|%M|%D|%N|%u|%P|%r|%j"
# how long mpi.cancel waits for a cancelled job to leave the queue, seconds
CANCEL_WAIT = 30
CANCEL_POLL = 1.0
# squeue --jobs=<id> for a job slurmctld no longer holds fails (rc 1,
# "slurm_load_jobs error: Invalid job id specified"): the one failure that
# is an answer
INVALID_JOB_RE = re.compile(r"Invalid job id specified")
# job states in which a job no longer holds or waits for anything
SLURM_ENDED = {"CANCELLED", "COMPLETED", "FAILED", "TIMEOUT", "NODE_FAIL", "PREEMPTED", "BOOT_FAIL", "DEADLINE",
               "OUT_OF_MEMORY"}  # fmt: skip

# Variables env= may not set, with the reason the refusal gives.  Names are
# compared in upper case.  MPIR_CVAR_* (MPICH's ~470 tuning knobs), OMP_*,
# UCX_* transport settings and a program's own variables pass.
ENV_REFUSED_PREFIXES = (
    ("LD_", "a dynamic loader variable (LD_PRELOAD, LD_AUDIT, LD_LIBRARY_PATH load code into every rank)"),
    ("HYDRA_", "read by Hydra, the process manager"),
    ("HYDI_", "read by Hydra, the process manager"),
    ("PMI_", "the ranks' channel to their process manager"),
    ("PMIX_", "the ranks' channel to their process manager"),
    ("MPIEXEC_", "read by mpiexec"),
    ("MPICH_DBG", "MPICH's debug log (writes files)"),
    ("MPL_DBG", "MPICH's debug log (writes files)"),
    ("SALTCLUSTER_", "saltcluster's own (the job tag a timeout kills by)"),
    ("PYTHON", "an interpreter's startup hook"),
    ("PERL5", "an interpreter's startup hook"),
    ("RUBY", "an interpreter's startup hook"),
    ("BASH_FUNC_", "an interpreter's startup hook"),
)
ENV_REFUSED = {
    # glibc drops these for setuid programs (sysdeps/generic/unsecvars.h):
    # they load modules, name files or change name resolution
    **dict.fromkeys(
        ("GCONV_PATH", "GETCONF_DIR", "GLIBC_TUNABLES", "HOSTALIASES", "LOCALDOMAIN", "LOCPATH", "MALLOC_TRACE",
         "NIS_PATH", "NLSPATH", "RESOLV_HOST_CONF", "RES_OPTIONS", "TMPDIR", "TZDIR"),
        "one glibc ignores for setuid programs (loads modules or names files)",
    ),  # fmt: skip
    # UCX: run a command, load modules from a directory, write files
    **dict.fromkeys(
        ("UCX_GDB_COMMAND", "UCX_HANDLE_ERRORS", "UCX_ERROR_MAIL_TO", "UCX_ERROR_MAIL_FOOTER", "UCX_MODULE_DIR",
         "UCX_LOG_FILE", "UCX_STATS_DEST", "UCX_MEMTRACK_DEST", "UCX_PROFILE_FILE"),
        "a UCX setting that runs a command, loads modules or writes files",
    ),  # fmt: skip
    "FI_PROVIDER_PATH": "libfabric loads providers from it",
    **dict.fromkeys(
        ("ENV", "BASH_ENV", "PERLLIB", "NODE_OPTIONS", "JAVA_TOOL_OPTIONS", "_JAVA_OPTIONS", "JDK_JAVA_OPTIONS"),
        "an interpreter's startup hook",
    ),
    **dict.fromkeys(("PATH", "HOME", "USER", "LOGNAME", "SHELL", "IFS"), "set by mpi.run itself"),
}
# LD_DEBUG only makes ld.so describe its work on stderr; with its own
# category words it can name no file (LD_DEBUG_OUTPUT stays refused)
LD_DEBUG_WORDS = {
    "all", "bindings", "files", "help", "libs", "reloc", "scopes", "statistics", "symbols", "tls", "unused",
    "versions",
}  # fmt: skip


def __virtual__():
    # mpiexec is not looked for here: the pypi provider's is not on PATH, and
    # which one counts is a setting (checked per call, see _mpiexec)
    if salt.utils.path.which("setpriv") is None:
        return (False, "mpi: setpriv not found; install util-linux")
    return __virtualname__


def _user_env(cfg):
    """The MPI user's passwd entry and the small fixed environment its
    commands get (nothing of the minion's)."""
    user = cfg["user"]["name"]
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        raise CommandExecutionError(f"mpi: user {user!r} does not exist on this host (apply cluster.users)")
    if entry.pw_uid == 0:
        raise CommandExecutionError(f"mpi: user {user!r} has uid 0: jobs never run as root")
    env = {
        "HOME": cfg["user"]["home"],
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
    return entry, env


def _setpriv(entry, cmd):
    """``cmd`` behind setpriv: the MPI user's uid, gid and groups, then exec
    (same pid)."""
    return ["setpriv", f"--reuid={entry.pw_uid}", f"--regid={entry.pw_gid}", "--init-groups", "--", *cmd]


def _as_user(cfg, cmd, **kwargs):
    """Run ``cmd`` (an argument list) as the MPI user, without a shell.

    Salt's ``runas=`` first starts ``su - USER -c python`` to capture the
    user's login environment, a Python start-up per command that can cost
    more than a short MPI job.  ``setpriv`` drops to the user's uid, gid
    and groups and execs the command with a small fixed environment."""
    entry, env = _user_env(cfg)
    return __salt__["cmd.run_all"](
        _setpriv(entry, cmd), python_shell=False, clean_env=True, env=env, cwd=cfg["user"]["home"], **kwargs
    )


class _Capped:
    """One output stream kept to ``limit`` bytes: its first half and its
    last half, and the count of what fell between."""

    def __init__(self, limit):
        self.tail_limit = limit // 2
        self.head_limit = limit - self.tail_limit
        self.head, self.tail, self.total = bytearray(), bytearray(), 0

    def add(self, chunk):
        self.total += len(chunk)
        room = self.head_limit - len(self.head)
        if room > 0:
            self.head += chunk[:room]
            chunk = chunk[room:]
        if chunk and self.tail_limit:
            self.tail += chunk
            del self.tail[: max(0, len(self.tail) - self.tail_limit)]

    def cut(self):
        return self.total - len(self.head) - len(self.tail)

    def text(self, name, who="mpi.run", setting="mpi:max_output"):
        head = self.head.decode("utf-8", "replace")
        tail = self.tail.decode("utf-8", "replace")
        cut = self.cut()
        if not cut:
            return (head + tail).rstrip()
        limit = self.head_limit + self.tail_limit
        note = (
            f"\n[{who}: {cut} bytes of {name} cut here: output is kept to its first {self.head_limit} and "
            f"last {self.tail_limit} bytes ({setting}={limit})]\n"
        )
        return (head + note + tail).rstrip()


def _stop(proc):
    """End ``proc`` (mpiexec, by its pid): SIGTERM, which Hydra answers by
    ending its proxies and ranks, then SIGKILL."""
    for sig, grace in ((signal.SIGTERM, TERM_GRACE), (signal.SIGKILL, None)):
        try:
            proc.send_signal(sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue


def _run_bounded(argv, env, cwd, timeout, max_output):
    """Run ``argv`` (no shell, empty stdin) and return ``retcode``,
    ``stdout``, ``stderr``, ``pid``, ``timed_out`` and ``output_cut``.

    Each stream keeps at most ``max_output`` bytes (head and tail; the bytes
    between are read and dropped, so the program never blocks on a full
    pipe and memory stays bounded).  Past ``timeout`` seconds the process
    (``argv[0]``'s pid, which setpriv keeps for mpiexec) is ended."""
    proc = subprocess.Popen(  # pylint: disable=consider-using-with
        argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=cwd,
        close_fds=True, start_new_session=True,
    )  # fmt: skip
    streams = {proc.stdout: ("stdout", _Capped(max_output)), proc.stderr: ("stderr", _Capped(max_output))}
    deadline = time.monotonic() + timeout
    timed_out, exited = False, None
    with selectors.DefaultSelector() as sel:
        for pipe in streams:
            sel.register(pipe, selectors.EVENT_READ)
        try:
            while sel.get_map():
                now = time.monotonic()
                if now >= deadline:
                    timed_out = proc.poll() is None
                    break
                if proc.poll() is not None:
                    # mpiexec is done; a pipe still open belongs to a stray
                    exited = exited or now
                    if now - exited > DRAIN_GRACE:
                        break
                for key, _ in sel.select(min(deadline - now, 0.5)):
                    chunk = os.read(key.fd, CHUNK)
                    if chunk:
                        streams[key.fileobj][1].add(chunk)
                    else:
                        sel.unregister(key.fileobj)
            if not timed_out:
                try:
                    proc.wait(timeout=max(0.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    timed_out = True
            if timed_out:
                _stop(proc)
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            for pipe in streams:
                pipe.close()
    return {
        "retcode": proc.returncode,
        "pid": proc.pid,
        "timed_out": timed_out,
        **{name: buf.text(name) for name, buf in streams.values()},
        "output_cut": {name: buf.cut() for name, buf in streams.values()},
    }


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


def _read_hostfile(path):
    """The hostfile's text.  It lies in the MPI user's home, so the user may
    have put anything at its name, and what it lists reaches mpi.run's
    callers (an unknown host is refused naming the known ones): root reads
    it only as the regular file the hostfile state writes, never through a
    symlink or a second name (a hard link), never blocking on a FIFO, and at
    most MAX_HOSTFILE bytes."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise CommandExecutionError(f"mpi: hostfile {path} does not exist (apply cluster.mpi)") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise CommandExecutionError(
                f"mpi: hostfile {path} is a symlink: not followed (apply cluster.mpi.hostfile to replace it)"
            ) from None
        raise CommandExecutionError(f"mpi: hostfile {path} cannot be read: {exc.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise CommandExecutionError(f"mpi: hostfile {path} is not a regular file (apply cluster.mpi.hostfile)")
        if st.st_nlink != 1:
            raise CommandExecutionError(
                f"mpi: hostfile {path} has {st.st_nlink} names (a hard link): not read "
                "(apply cluster.mpi.hostfile to replace it)"
            )
        data = b""
        while len(data) <= MAX_HOSTFILE:
            chunk = os.read(fd, CHUNK)
            if not chunk:
                break
            data += chunk
        if len(data) > MAX_HOSTFILE:
            raise CommandExecutionError(f"mpi: hostfile {path} is larger than {MAX_HOSTFILE} bytes: not read")
        return data.decode("utf-8", "replace")
    finally:
        os.close(fd)


def _hostfile(path):
    return __salt__["cluster.parse_hostfile"](_read_hostfile(path))


def hostfile():
    """
    The Hydra hostfile as a list of ``{"host", "slots"}``: the file mpiexec
    reads (``mpi:hostfile``), parsed by ``cluster.parse_hostfile``, the
    reader of the format ``cluster.hostfile`` writes.  Only that file: a
    caller names no path (root would read it).

    CLI Example:

    .. code-block:: bash

        salt master mpi.hostfile
    """
    return _hostfile(_settings()["mpi"]["hostfile"])


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
    elif PROGRAM_RE.fullmatch(program):
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


def _positive_int(value, what):
    """``value`` as a positive integer, or an error naming it (no bool, no
    fraction, no inf or nan, no text but ASCII digits)."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str) and UINT_RE.fullmatch(value):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise SaltInvocationError(f"mpi.run: {what}={value!r} must be a positive integer")
    return value


def _max_np(cfg, total):
    """The most ranks a job may start: ``mpi:max_np``, or four times the
    slots of the chosen hosts when it is null."""
    limit = cfg["mpi"]["max_np"]
    return 4 * total if limit is None else limit


def _check_np(np, total, oversubscribe, limit, queued=False):
    """``np`` checked against the slots and mpi:max_np.  ``queued``: a
    Slurm batch job (mpi.submit), which has no oversubscribe: one rank per
    slot, so the advice differs."""
    np = _positive_int(np, "np")
    if np > total and not oversubscribe:
        advice = (
            f"a queued job runs one rank per slot: ask for at most {total}, or choose more hosts"
            if queued
            else "pass oversubscribe=True to allow it"
        )
        raise SaltInvocationError(f"mpi.run: np={np} is more than the {total} slots of the chosen hosts ({advice})")
    if np > limit:
        raise SaltInvocationError(
            f"mpi.run: np={np} is more than the {limit} ranks a job may start (saltcluster:mpi:max_np: {limit}; "
            "null means 4 x the slots of the chosen hosts)" + ("" if queued else ", oversubscribed or not")
        )
    return np


def _env_refusal(name, value):
    """Why ``name`` may not be set in the ranks' environment, or None."""
    upper = name.upper()
    if upper == "LD_DEBUG" and value and set(value.split(",")) <= LD_DEBUG_WORDS:
        return None
    if upper in ENV_REFUSED:
        return ENV_REFUSED[upper]
    for prefix, why in ENV_REFUSED_PREFIXES:
        if upper.startswith(prefix):
            return why
    return None


def _check_env(env):
    if env is None:
        return {}
    if not isinstance(env, dict):
        raise SaltInvocationError(f"mpi.run: env={env!r} must be a mapping of NAME: value")
    checked = {}
    for key, value in env.items():
        key, value = str(key), str(value)
        if not ENV_NAME_RE.fullmatch(key):
            raise SaltInvocationError(f"mpi.run: env name {key!r} is not a variable name")
        if set(value) & {"\n", "\r", "\0"}:
            raise SaltInvocationError(f"mpi.run: env {key!r}={value!r} holds a line break or NUL")
        why = _env_refusal(key, value)
        if why:
            raise SaltInvocationError(f"mpi.run: env {key!r} is refused: {why}")
        checked[key] = value
    return checked


def _check_args(args):
    args = _as_list(args, "args")
    for arg in args:
        if arg == MPMD_SEPARATOR:
            # Hydra would start a new section here: options and a program
            # of the caller's choosing, outside bin_dir
            raise SaltInvocationError(
                f"mpi.run: argument {arg!r} is refused: Hydra's separator between programs (MPMD)"
            )
        if set(arg) & SHELL_META:
            raise SaltInvocationError(f"mpi.run: argument {arg!r} holds shell metacharacters")
    return args


def _check_hosts(hosts, known):
    """The chosen hosts, deduplicated in order, each a host name of the
    hostfile (so never an option, a list or a host:slots)."""
    chosen = []
    for host in _as_list(hosts, "hosts"):
        if not HOST_RE.fullmatch(host):
            raise SaltInvocationError(f"mpi.run: host {host!r} is not a host name")
        if host not in known:
            raise SaltInvocationError(
                f"mpi.run: host {host!r} is not in the hostfile ({', '.join(known) or 'empty'})"
            )
        if host not in chosen:
            chosen.append(host)
    return chosen


def _checked(cfg, program, np=None, args=None, hosts=None, env=None, oversubscribe=False, ppn=None, job=None,
             queued=False):  # fmt: skip
    """Every check of a job's arguments, in the order mpi.run has always made
    them: the job as decided (``path``, ``args``, ``chosen`` and ``used``
    hosts, ``known`` slots, ``np``, ``ppn``, ``user_env``, ``mpiexec``,
    ``job`` tag, ``limit``).  ``queued``: for mpi.submit, which takes no
    oversubscribe (its np advice says so)."""
    if job is None:
        job = uuid.uuid4().hex
    if not isinstance(job, str) or not JOB_RE.fullmatch(job):
        raise SaltInvocationError(f"mpi.run: job tag {job!r} must be 32 lowercase hex digits")
    if not isinstance(oversubscribe, bool):
        raise SaltInvocationError(f"mpi.run: oversubscribe={oversubscribe!r} must be True or False")
    path = resolve(program)
    args = _check_args(args)
    # the hosts and slots of the file mpiexec itself reads (-f), not
    # membership recomputed from the mine: the checks below then hold for
    # what mpiexec does, a job asks the master nothing, and a joining node
    # is placed on only once the hostfile state lists it, after its
    # highstate has mounted the home and installed MPI
    entries = _hostfile(cfg["mpi"]["hostfile"])
    known = {e["host"]: e["slots"] for e in entries}
    chosen = _check_hosts(hosts, known)
    if not known:
        raise CommandExecutionError(f"mpi.run: the hostfile {cfg['mpi']['hostfile']} lists no hosts")
    used = chosen or list(known)
    total = sum(known[h] for h in used)
    limit = _max_np(cfg, total)
    np = _check_np(total if np is None else np, total, oversubscribe, limit, queued=queued)
    user_env = _check_env(env)
    mpiexec = _mpiexec(cfg)
    if ppn is not None:
        ppn = _positive_int(ppn, "ppn")
        if ppn > limit:
            raise SaltInvocationError(f"mpi.run: ppn={ppn} is more than the {limit} ranks a job may start")
    return {
        "path": path, "args": args, "known": known, "chosen": chosen, "used": used, "np": np, "ppn": ppn,
        "user_env": user_env, "mpiexec": mpiexec, "job": job, "limit": limit, "oversubscribe": oversubscribe,
    }  # fmt: skip


def _genv(cfg, user_env, job):
    """The ``-genv`` options every rank gets: UCX's transports and device,
    the caller's checked variables, and the job's tag."""
    genv = {"UCX_TLS": cfg["mpi"]["ucx_tls"]}
    if cfg["mpi"]["ucx_net_device"]:
        genv["UCX_NET_DEVICES"] = cfg["mpi"]["ucx_net_device"]
    genv.update(user_env)
    genv[JOB_VAR] = job
    cmd = []
    for key, value in genv.items():
        cmd += ["-genv", key, value]
    return cmd


def _plan(cfg, program, np=None, args=None, hosts=None, env=None, oversubscribe=False, ppn=None, job=None):
    """Every check, then the job as decided: ``command`` (the mpiexec
    argument list), ``hosts`` it uses, ``np`` ranks and its ``job`` tag."""
    job = _checked(cfg, program, np, args, hosts, env, oversubscribe, ppn, job)
    cmd = [job["mpiexec"]]
    if job["chosen"]:
        cmd += ["-hosts", ",".join(f"{h}:{job['known'][h]}" for h in job["chosen"])]
    else:
        cmd += ["-f", cfg["mpi"]["hostfile"]]
    cmd += ["-n", str(job["np"])]
    if job["ppn"] is not None:
        cmd += ["-ppn", str(job["ppn"])]
    cmd += _genv(cfg, job["user_env"], job["job"])
    cmd += [job["path"], *job["args"]]
    return {"command": cmd, "hosts": job["used"], "np": job["np"], "job": job["job"]}


def _slurm_tool(name):
    """The absolute path of Slurm's ``name`` (salloc, sbatch, ...), or an
    error saying what installs it."""
    path = salt.utils.path.which(name)
    if path is None:
        raise CommandExecutionError(
            f"mpi: {name} not found on this host (saltcluster:scheduler is slurm): apply cluster.slurm"
        )
    return path


def _allocated(job):
    """The named hosts (``hosts=``) a Slurm allocation asks for: those the
    ranks reach as Hydra places them (in order, each host's slots filled,
    or ``ppn`` at a time wrapping around), at least one.  Slurm puts at
    least one task on every node it allocates, so naming more nodes than
    the job has ranks is refused: ``np=1 hosts=node1,node2`` runs on node1,
    as it does without Slurm."""
    chosen = job["chosen"]
    if job["ppn"] is not None:
        return chosen[: max(1, min(math.ceil(job["np"] / job["ppn"]), len(chosen)))]
    nodes, filled = [], 0
    for host in chosen:
        if nodes and filled >= job["np"]:
            break
        nodes.append(host)
        filled += job["known"][host]
    return nodes


def _run_plan(cfg, program, np=None, args=None, hosts=None, env=None, oversubscribe=False, ppn=None, job=None,
              timeout=None):  # fmt: skip
    """What mpi.run starts.  Without a scheduler: mpiexec over the hostfile
    (:py:func:`_plan`).  With ``scheduler: slurm``: ``salloc`` asking for
    the job's ranks (it waits until Slurm grants them, so the job takes its
    turn behind queued ones and never shares their slots), with mpiexec as
    its command; Hydra finds the allocation in the SLURM_* variables salloc
    sets and starts its proxies with srun on the allocated nodes, so no
    hostfile is passed.  The same checks either way, in the same order."""
    if cfg["scheduler"] != "slurm":
        return _plan(cfg, program, np=np, args=args, hosts=hosts, env=env, oversubscribe=oversubscribe, ppn=ppn,
                     job=job)  # fmt: skip
    job = _checked(cfg, program, np, args, hosts, env, oversubscribe, ppn, job)
    name = f"{ALLOCATION_PREFIX}{job['job']}"
    total = sum(job["known"][h] for h in job["used"])
    minutes = min(max(1, math.ceil(timeout / 60)), cfg["slurm"]["max_time"])
    cmd = [
        _slurm_tool("salloc"), f"--job-name={name}", f"--partition={cfg['slurm']['partition']}",
        f"--ntasks={job['np']}", f"--time={minutes}",
    ]  # fmt: skip
    if job["chosen"]:
        nodes = _allocated(job)
        cmd += [f"--nodelist={','.join(nodes)}", f"--nodes={len(nodes)}"]
    elif job["ppn"] is not None:
        # Hydra's -ppn puts ppn ranks on a host, then on the next, wrapping
        # around the hosts it has: as many nodes as that fills, at most the
        # hostfile's (its serving members).  Not --ntasks-per-node, a hard
        # maximum per node, which with fewer nodes up waits for ever.
        cmd += [f"--nodes={min(math.ceil(job['np'] / job['ppn']), len(job['used']))}"]
    if job["np"] > total:  # oversubscribe=True let it through
        cmd += ["--overcommit"]
    cmd += [job["mpiexec"], "-n", str(job["np"])]
    if job["ppn"] is not None:
        cmd += ["-ppn", str(job["ppn"])]
    cmd += _genv(cfg, job["user_env"], job["job"])
    cmd += [job["path"], *job["args"]]
    return {"command": cmd, "hosts": job["used"], "np": job["np"], "job": job["job"], "allocation": name}


def _cancel_allocation(cfg, name):
    """After a timeout under Slurm: cancel the allocation named ``name``
    (running or still waiting) as the MPI user; Slurm ends its steps on
    every node, the epilog sweeps what is left."""
    user = cfg["user"]["name"]
    res = _as_user(cfg, [_slurm_tool("scancel"), f"--name={name}", f"--user={user}"], ignore_retcode=True,
                   timeout=30)  # fmt: skip
    if res["retcode"] != 0:
        log.error("mpi.run: cancelling allocation %s failed: %s", name, res.get("stderr"))
    return {"scancel": name, "retcode": res["retcode"]}


def build_command(program, np=None, args=None, hosts=None, env=None, oversubscribe=False, ppn=None, job=None):
    """
    The ``mpiexec`` argument list ``mpi.run`` would execute, after every
    check; nothing is started.  ``job`` is the tag (32 hex digits) the
    command carries; default: a fresh one, as ``mpi.run`` makes per job.
    With ``scheduler: slurm`` it is ``salloc`` and its options (for the
    default ``mpi:timeout``) around mpiexec, without a hostfile.

    CLI Example:

    .. code-block:: bash

        salt master mpi.build_command cpi np=4
    """
    cfg = _settings()
    return _run_plan(
        cfg, program, np=np, args=args, hosts=hosts, env=env, oversubscribe=oversubscribe, ppn=ppn, job=job,
        timeout=cfg["mpi"]["timeout"],
    )["command"]  # fmt: skip


def _sweep_script(job):
    """POSIX sh that, run as the MPI user on one host, SIGKILLs every process
    whose environment holds exactly ``SALTCLUSTER_JOB=<job>`` (ranks, local
    proxies, mpiexec, and whatever they started) and the hydra_pmi_proxy
    parent of any of them (a proxy started over ssh lacks the tag; a proxy
    serves one job only).  A few rounds catch processes forked meanwhile.
    Prints ``killed N``."""
    if not isinstance(job, str) or not JOB_RE.fullmatch(job):
        raise SaltInvocationError(f"mpi.run: job tag {job!r} must be 32 lowercase hex digits")
    return (
        f"tag={JOB_VAR}={job}\n"
        "all=\n"
        "for round in 1 2 3 4 5; do\n"
        "  pids=\n"
        "  for d in /proc/[0-9]*; do\n"
        '    grep -qzxF "$tag" "$d/environ" 2>/dev/null || continue\n'
        '    pids="$pids ${d#/proc/}"\n'
        "    pp=$(sed -n 's/^PPid:[[:space:]]*//p' \"$d/status\" 2>/dev/null)\n"
        '    [ -n "$pp" ] && [ "$(cat "/proc/$pp/comm" 2>/dev/null)" = hydra_pmi_proxy ] && pids="$pids $pp"\n'
        "  done\n"
        '  [ -z "$pids" ] && break\n'
        "  kill -KILL $pids 2>/dev/null\n"
        '  all="$all $pids"\n'
        "  sleep 0.2\n"
        "done\n"
        'echo "killed $(printf "%s\\n" $all | sort -u | grep -c .)"\n'
    )


def _is_local(host):
    return host in ("localhost", "127.0.0.1", "::1", __grains__.get("host"), __grains__.get("id"))


def _kill_job(cfg, job, hosts):
    """After a timeout: end the job tagged ``job`` on this host and on every
    host it used, as the MPI user (it can signal nothing of anyone else), by
    its tag only: another job of the same user and program keeps running."""
    script = _sweep_script(job)
    killed = {}
    targets = ["localhost", *(h for h in hosts if not _is_local(h))]
    for host in targets:
        if host == "localhost":
            cmd = ["sh", "-c", script]
        elif not HOST_RE.fullmatch(host):
            log.error("mpi.run: not sweeping %r: not a host name", host)
            killed[host] = False
            continue
        else:
            cmd = ["ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=5", "--", host,
                   "sh -c " + shlex.quote(script)]  # fmt: skip
        res = _as_user(cfg, cmd, ignore_retcode=True, timeout=30)
        found = re.search(r"killed (\d+)", res.get("stdout", ""))
        killed[host] = int(found.group(1)) if res["retcode"] == 0 and found else False
        if killed[host] is False:
            log.error("mpi.run: sweeping job %s on %s failed: %s", job, host, res.get("stderr"))
    return killed


def _check_timeout(cfg, timeout):
    limit = cfg["mpi"]["max_timeout"]
    if timeout is None:
        timeout = cfg["mpi"]["timeout"]
    if (
        isinstance(timeout, bool)
        or not isinstance(timeout, (int, float))
        or not math.isfinite(timeout)
        or timeout <= 0
    ):
        raise SaltInvocationError(f"mpi.run: timeout={timeout!r} must be a finite positive number of seconds")
    if timeout > limit:
        raise SaltInvocationError(
            f"mpi.run: timeout={timeout!r} is more than saltcluster:mpi:max_timeout ({limit} seconds)"
        )
    return timeout


def run(program, np=None, args=None, hosts=None, timeout=None, env=None, oversubscribe=False, ppn=None):
    """
    Run an MPI program across the cluster as the MPI user and return a dict
    with ``retcode``, ``stdout``, ``stderr``, ``np``, ``hosts``, ``duration``,
    ``command``, ``timed_out``, ``job`` and ``output_cut``.

    Every argument may come from an untrusted caller: what is refused below
    is refused with an error that names the value, before anything starts.

    program
        a name in ``mpi:bin_dir`` (``cpi``, ``hellow``, ``mandel``...) or an
        absolute path inside ``mpi:bin_dir``/``mpi:allowed_dirs``
    np
        number of ranks; default: every slot of the chosen hosts.  Never
        more than the slots unless ``oversubscribe``, and never more than
        ``mpi:max_np`` (null: 4 x the slots of the chosen hosts) at all
    args
        the program's arguments (a list, or a string split like a shell would,
        but never run by one).  Hydra reads options only before the program;
        after it, an argument exactly ``:`` would start another section
        (``: -n 1 /usr/bin/touch x`` runs a program from outside bin_dir), so
        ``:`` is refused; anything else, ``-f`` or ``-genv`` included,
        reaches the program as its own argument.  Shell metacharacters are
        refused too.
    hosts
        a subset of the hostfile's hosts (list or comma string); each must be
        a host name of the hostfile (so never an option or ``host:slots``);
        repeats count once
    timeout
        seconds, a finite number above 0 and at most ``mpi:max_timeout``
        (default ``mpi:timeout``).  On expiry mpiexec (its own pid) gets
        SIGTERM, then SIGKILL, and on this host and every host the job used
        each process carrying the job's tag is killed: ``timed_out`` is
        True, ``retcode`` 124 and ``killed`` counts them per host
    env
        extra variables for every rank (``-genv``).  Refused: names that are
        not plain variable names, values with line breaks, and what loads
        code or steers the process manager: every ``LD_*`` but ``LD_DEBUG``
        with ld.so's own words, the rest of glibc's setuid list
        (``GCONV_PATH``...), ``HYDRA_*``, ``PMI_*``, ``SALTCLUSTER_*``, UCX's
        command, module and file settings, interpreters' startup hooks,
        ``PATH`` and the identity mpi.run sets.  ``MPIR_CVAR_*`` pass:
        MPICH's tuning knobs, none of which loads code
    oversubscribe
        allow np above the slot count (True or False)
    ppn
        ranks per host (Hydra ``-ppn``)

    Each job gets a tag, ``job``: ``SALTCLUSTER_JOB=<job>`` is in mpiexec's
    environment and, through ``-genv``, in every rank's; a timeout kills by
    it.  (Hydra starts each proxy and rank in a session of its own, so a
    process group would not hold them.)  ``stdout`` and ``stderr`` each keep
    at most ``mpi:max_output`` bytes (the first and the last half); what was
    cut is noted in the text and counted in ``output_cut``.  mpiexec is run
    by this module, not ``cmd.run_all`` (which holds all output in memory):
    its pipes are read to the end, only the kept bytes stay.

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
    timeout = _check_timeout(cfg, timeout)
    plan = _run_plan(cfg, program, np=np, args=args, hosts=hosts, env=env, oversubscribe=oversubscribe, ppn=ppn,
                     timeout=timeout)  # fmt: skip
    cmd, used, job = plan["command"], plan["hosts"], plan["job"]
    entry, user_env = _user_env(cfg)
    # mpiexec carries the tag too (and passes it to the proxies it forks on
    # this host); HYDRA_CONFIG_FILE: no ~/.mpiexec.hydra.conf (which any job
    # could write) adds options
    user_env.update({JOB_VAR: job, "HYDRA_CONFIG_FILE": os.devnull})
    log.info("mpi.run as %s (job %s): %s", user, job, cmd)
    start = time.monotonic()
    res = _run_bounded(
        _setpriv(entry, cmd), env=user_env, cwd=cfg["user"]["home"], timeout=timeout,
        max_output=cfg["mpi"]["max_output"],
    )  # fmt: skip
    duration = time.monotonic() - start
    ret = {
        "retcode": res["retcode"],
        "stdout": res["stdout"],
        "stderr": res["stderr"],
        "np": plan["np"],
        "hosts": used,
        "duration": round(duration, 3),
        "command": cmd,
        "timed_out": res["timed_out"],
        "job": job,
        "output_cut": res["output_cut"],
    }
    if "allocation" in plan:
        # under Slurm: the allocation's id, as salloc reported it
        found = SALLOC_JOB_RE.search(res["stderr"])
        ret["jobid"] = found.group(1) if found else None
    if res["timed_out"] and "allocation" in plan:
        # Slurm ends the job's steps on every node it used (the epilog then
        # sweeps strays); a job still waiting for its turn is dequeued
        ret["killed"] = _cancel_allocation(cfg, plan["allocation"])
        ret["retcode"] = TIMEOUT_RETCODE
    elif res["timed_out"]:
        ret["killed"] = _kill_job(cfg, job, used)
        ret["retcode"] = TIMEOUT_RETCODE
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


# -- the queue (saltcluster:scheduler: slurm): submit, jobs, cancel, output
#
# Batch jobs run as the MPI user (sbatch, squeue and scancel are started
# through setpriv like mpiexec), from scripts mpi.submit writes into the
# jobs directory of the shared home, where Slurm writes their output.


class _As:
    """Errors of the checks mpi.run shares, named by the function the
    caller called (``mpi.submit: np=0 ...``)."""

    def __init__(self, who):
        self.who = who

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, tb):
        if isinstance(exc, (SaltInvocationError, CommandExecutionError)) and str(exc).startswith("mpi.run:"):
            raise type(exc)(self.who + str(exc)[len("mpi.run") :]) from None
        return False


def _queue_settings(who):
    """The settings, if this cluster has a queue (``scheduler: slurm``);
    otherwise an error saying so."""
    cfg = _settings()
    if cfg["scheduler"] != "slurm":
        raise CommandExecutionError(
            f"{who}: there is no queue: saltcluster:scheduler is {cfg['scheduler']!r} (set it to slurm to "
            "run Slurm; mpi.run runs jobs directly without one)"
        )
    if cfg["user"]["name"] == "root":
        raise CommandExecutionError(f"{who}: jobs never run as root (saltcluster:user:name)")
    return cfg


def _job_id(jobid, who):
    """``jobid`` as Slurm's job id text: a plain positive integer (an int,
    or a string of digits), never an array index, an option or a path."""
    if isinstance(jobid, int) and not isinstance(jobid, bool) and jobid > 0:
        jobid = str(jobid)
    if not isinstance(jobid, str) or not SLURM_JOB_ID_RE.fullmatch(jobid):
        raise SaltInvocationError(f"{who}: job id {jobid!r} is not a plain job number")
    return jobid


def _time_limit(cfg, value):
    """``time_limit`` in whole minutes (default and most: ``slurm:max_time``):
    minutes (an int, or digits), or ``[days-]hours:minutes:seconds``."""
    limit = cfg["slurm"]["max_time"]
    if value is None:
        return limit
    minutes = None
    if isinstance(value, int) and not isinstance(value, bool):
        minutes = value
    elif isinstance(value, str) and UINT_RE.fullmatch(value):
        minutes = int(value)
    elif isinstance(value, str):
        found = TIME_LIMIT_RE.fullmatch(value)
        if found:
            seconds = (
                int(found["days"] or 0) * 86400 + int(found["hours"]) * 3600 + int(found["minutes"]) * 60
                + int(found["seconds"])
            )  # fmt: skip
            minutes = math.ceil(seconds / 60)
    if minutes is None or minutes <= 0:
        raise SaltInvocationError(
            f"mpi.submit: time_limit={value!r} must be a positive number of minutes or [days-]hours:mm:ss"
        )
    if minutes > limit:
        raise SaltInvocationError(
            f"mpi.submit: time_limit={value!r} is more than saltcluster:slurm:max_time ({limit} minutes)"
        )
    return minutes


def _batch_script(cfg, job, name, minutes):
    """The batch script of a checked job: its Slurm options, then mpiexec
    (Hydra launches its proxies with srun inside the allocation: no
    hostfile), every word quoted for the shell that runs the script."""
    jobs_dir = cfg["slurm"]["jobs_dir"]
    lines = [
        "#!/bin/sh",
        f"#SBATCH --job-name={name}",
        f"#SBATCH --partition={cfg['slurm']['partition']}",
        f"#SBATCH --ntasks={job['np']}",
        f"#SBATCH --time={minutes}",
        f"#SBATCH --output={jobs_dir}/%j.out",
        f"#SBATCH --error={jobs_dir}/%j.err",
        # a leaving or dead node's batch jobs go back to the queue
        "#SBATCH --requeue",
    ]
    if job["chosen"]:
        nodes = _allocated(job)
        lines += [f"#SBATCH --nodelist={','.join(nodes)}", f"#SBATCH --nodes={len(nodes)}"]
    cmd = [job["mpiexec"], "-n", str(job["np"]), *_genv(cfg, job["user_env"], job["job"]), job["path"], *job["args"]]
    lines += [
        f"# saltcluster mpi.submit, job tag {job['job']}",
        # no ~/.mpiexec.hydra.conf (which any job could write) adds options
        f"export {JOB_VAR}={job['job']} HYDRA_CONFIG_FILE={os.devnull}",
        "exec " + " ".join(shlex.quote(word) for word in cmd),
    ]
    return "\n".join(lines) + "\n"


def submit(program, np=None, args=None, hosts=None, time_limit=None, name=None):
    """
    Queue an MPI program as a Slurm batch job (``scheduler: slurm``) and
    return ``jobid`` with ``name``, ``np``, ``hosts``, ``time_limit``
    (minutes) and the files of the job: ``script``, ``stdout`` and
    ``stderr`` in ``slurm:jobs_dir`` (``<id>.sh``, ``<id>.out``,
    ``<id>.err``; :py:func:`output` reads them).

    ``program``, ``np``, ``args`` and ``hosts`` are checked as
    :py:func:`run` checks them, with the same messages (named
    ``mpi.submit``), before anything is written or queued.  The job's
    script is written into the jobs directory as the MPI user and
    submitted with ``sbatch --parsable`` as that user; in the allocation it
    runs the provider's ``mpiexec -n <np> ... <program> <args>``, whose
    Hydra starts the ranks through Slurm on the allocated nodes.

    time_limit
        minutes (an int or digits) or ``[days-]hours:mm:ss``; at most and
        by default ``slurm:max_time``
    name
        the job's name in the queue: letters, digits and ``_.+-``, at most
        64 (default: the program's name)

    CLI Example:

    .. code-block:: bash

        salt master mpi.submit cpi np=4
        salt master mpi.submit mandel args='[800, 600]' time_limit=30 name=mandel-big
    """
    who = "mpi.submit"
    cfg = _queue_settings(who)
    with _As(who):
        job = _checked(cfg, program, np, args, hosts, queued=True)
    if name is None:
        name = os.path.basename(job["path"])
    if not isinstance(name, str) or not JOB_NAME_RE.fullmatch(name):
        raise SaltInvocationError(f"mpi.submit: name={name!r} is not a job name (letters, digits, _.+-, at most 64)")
    minutes = _time_limit(cfg, time_limit)
    sbatch = _slurm_tool("sbatch")
    user, group = cfg["user"]["name"], cfg["user"]["group"]
    jobs_dir = cfg["slurm"]["jobs_dir"]
    # the directory and the script are the MPI user's, written as that user
    __salt__["userfs.directory"](jobs_dir, user=user, group=group, mode="0755")
    script = f"{jobs_dir}/.submit-{job['job']}.sh"
    __salt__["userfs.write"](script, _batch_script(cfg, job, name, minutes), user=user, group=group, mode="0644")
    res = _as_user(cfg, [sbatch, "--parsable", script], ignore_retcode=True, timeout=60)
    found = re.fullmatch(r"([0-9]+)(;.*)?", (res.get("stdout") or "").strip())
    if res["retcode"] != 0 or not found:
        __salt__["userfs.remove"](script, user=user)
        raise CommandExecutionError(
            f"mpi.submit: sbatch refused the job: {(res.get('stderr') or res.get('stdout') or '').strip()}"
        )
    jobid = found.group(1)
    kept = f"{jobs_dir}/{jobid}.sh"
    __salt__["userfs.rename"](script, kept, user=user)
    log.info("mpi.submit as %s: job %s (%s, tag %s)", user, jobid, name, job["job"])
    return {
        "jobid": jobid, "name": name, "np": job["np"], "hosts": job["used"], "time_limit": minutes,
        "script": kept, "stdout": f"{jobs_dir}/{jobid}.out", "stderr": f"{jobs_dir}/{jobid}.err", "job": job["job"],
    }  # fmt: skip


def _squeue(cfg, *selection):
    """squeue's rows (every field of SQUEUE_FIELDS) for ``selection``."""
    res = _as_user(cfg, [_slurm_tool("squeue"), "--noheader", f"--format={SQUEUE_FORMAT}", *selection],
                   ignore_retcode=True, timeout=30)  # fmt: skip
    if res["retcode"] != 0:
        return None, (res.get("stderr") or res.get("stdout") or "").strip()
    rows = []
    for line in (res.get("stdout") or "").splitlines():
        values = line.split("|", len(SQUEUE_FIELDS) - 1)
        if len(values) != len(SQUEUE_FIELDS) or not SLURM_JOB_ID_RE.fullmatch(values[0]):
            continue  # not a row of ours (a name with a line break)
        row = dict(zip(SQUEUE_FIELDS, values))
        row["num_nodes"] = int(row["num_nodes"]) if row["num_nodes"].isdigit() else None
        rows.append(row)
    return rows, ""


def jobs():
    """
    The queue as data: one dict per job Slurm holds (waiting, running,
    completing), with ``id``, ``name``, ``state`` (PENDING, RUNNING...),
    ``nodes`` (the node list; empty while it waits), ``num_nodes``,
    ``elapsed`` (as squeue shows it, ``M:SS`` or ``H:MM:SS``), ``user``,
    ``partition`` and ``reason`` (why it waits: Resources, Priority...).

    CLI Example:

    .. code-block:: bash

        salt master mpi.jobs
    """
    cfg = _queue_settings("mpi.jobs")
    rows, err = _squeue(cfg)
    if rows is None:
        raise CommandExecutionError(f"mpi.jobs: squeue failed: {err}")
    return sorted(rows, key=lambda row: int(row["id"]))


def cancel(jobid):
    """
    Cancel job ``jobid`` (scancel, as the MPI user: its own jobs only) and
    wait up to 30 seconds for it to leave the queue: Slurm ends its steps
    on every node it used and the epilog kills any rank left behind.
    Returns ``jobid``, ``cancelled`` (squeue answered, and no longer lists
    the job or shows it ended), ``state`` (the last state squeue showed,
    None once gone) and ``waited`` (seconds).  When squeue gives no answer
    to the end of the wait (slurmctld unreachable...), nothing is known of
    the job: an error naming squeue's, not "cancelled".

    jobid
        a plain job number (``12``), as mpi.submit returned it

    CLI Example:

    .. code-block:: bash

        salt master mpi.cancel 12
    """
    who = "mpi.cancel"
    jobid = _job_id(jobid, who)
    cfg = _queue_settings(who)
    res = _as_user(cfg, [_slurm_tool("scancel"), jobid], ignore_retcode=True, timeout=30)
    if res["retcode"] != 0:
        raise CommandExecutionError(
            f"mpi.cancel: scancel {jobid} failed: {(res.get('stderr') or res.get('stdout') or '').strip()}"
        )
    start = time.monotonic()
    state = None
    while True:
        rows, err = _squeue(cfg, f"--jobs={jobid}")
        if rows is None and INVALID_JOB_RE.search(err):
            # squeue's answer for a job slurmctld no longer holds
            rows, err = [], ""
        if rows is not None:
            mine = [row for row in rows if row["id"] == jobid]
            state = mine[0]["state"] if mine else None
        waited = time.monotonic() - start
        if (rows is not None and (state is None or state in SLURM_ENDED)) or waited >= CANCEL_WAIT:
            break
        time.sleep(CANCEL_POLL)
    if rows is None:
        seen = f" (squeue last showed it {state})" if state else ""
        raise CommandExecutionError(
            f"mpi.cancel: scancel {jobid} was sent, but whether the job left the queue is unknown{seen}: "
            f"squeue's last look, {round(waited)} s after, failed: {err}"
        )
    gone = state is None or state in SLURM_ENDED
    ret = {"jobid": jobid, "cancelled": gone, "state": state, "waited": round(waited, 3)}
    if not gone:
        __context__["retcode"] = 1
    return ret


def _read_capped(dir_fd, name, uid, limit):
    """The file ``name`` in the directory ``dir_fd``, if it is a regular
    file of ``uid``'s with one name (never through a link): its first and
    last ``limit // 2`` bytes, and what lay between (counted).

    The name is pinned with ``O_PATH | O_NOFOLLOW`` and judged by that
    handle's fstat before anything is opened for reading: a FIFO is never
    opened (an open would block), and the read-open goes through the pinned
    handle, so it reaches the inode that was judged.  That read-open blocks:
    on the NFS server a client may hold a delegation on the file, which a
    non-blocking open meets with EWOULDBLOCK; a blocking one waits for the
    kernel's lease break (bounded by /proc/sys/fs/lease-break-time)."""
    try:
        pinned = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise CommandExecutionError(f"mpi.output: {name} cannot be read: {exc.strerror}") from None
    try:
        st = os.fstat(pinned)
        if stat.S_ISLNK(st.st_mode):
            raise CommandExecutionError(f"mpi.output: {name} is a symlink: not followed")
        if not stat.S_ISREG(st.st_mode):
            raise CommandExecutionError(f"mpi.output: {name} is not a regular file: not read")
        if st.st_uid != uid:
            raise CommandExecutionError(f"mpi.output: {name} is not the MPI user's (uid {st.st_uid}): not read")
        if st.st_nlink != 1:
            raise CommandExecutionError(f"mpi.output: {name} has {st.st_nlink} names (a hard link): not read")
        try:
            fd = os.open(f"/proc/self/fd/{pinned}", os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            raise CommandExecutionError(f"mpi.output: {name} cannot be read: {exc.strerror}") from None
    finally:
        os.close(pinned)
    try:
        st = os.fstat(fd)  # its size now: the job may still be writing
        kept = _Capped(limit)
        head = os.read(fd, kept.head_limit) if kept.head_limit else b""
        kept.add(head)
        if st.st_size > kept.head_limit + kept.tail_limit:
            # the tail only: what lies between is counted, not read
            os.lseek(fd, st.st_size - kept.tail_limit, os.SEEK_SET)
            kept.total = st.st_size - kept.tail_limit
        while True:
            chunk = os.read(fd, CHUNK)
            if not chunk:
                break
            kept.add(chunk)
        return kept
    finally:
        os.close(fd)


def output(jobid):
    """
    A batch job's output: its ``stdout`` and ``stderr`` files in
    ``slurm:jobs_dir`` (``<id>.out``, ``<id>.err``, written by Slurm as the
    MPI user), each kept to ``slurm:max_output`` bytes (the first and the
    last half; ``output_cut`` counts what was left out).  A file the job has
    not written yet is None.

    The jobs directory is the MPI user's: a name there that is a symlink, a
    hard link, not a regular file or not the MPI user's is refused, never
    followed (root reads it).

    jobid
        a plain job number (``12``), as mpi.submit returned it

    CLI Example:

    .. code-block:: bash

        salt master mpi.output 12
    """
    who = "mpi.output"
    jobid = _job_id(jobid, who)
    cfg = _queue_settings(who)
    entry, _ = _user_env(cfg)
    jobs_dir = cfg["slurm"]["jobs_dir"]
    try:
        dir_fd = os.open(jobs_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        why = "a symlink: not followed" if exc.errno in (errno.ELOOP, errno.ENOTDIR) else exc.strerror
        raise CommandExecutionError(f"mpi.output: the jobs directory {jobs_dir} cannot be read: {why}") from None
    try:
        owner = os.fstat(dir_fd).st_uid
        if owner not in (entry.pw_uid, 0):
            raise CommandExecutionError(f"mpi.output: the jobs directory {jobs_dir} belongs to uid {owner}: not read")
        found = {
            stream: _read_capped(dir_fd, f"{jobid}.{suffix}", entry.pw_uid, cfg["slurm"]["max_output"])
            for stream, suffix in (("stdout", "out"), ("stderr", "err"))
        }
    finally:
        os.close(dir_fd)
    if not any(found.values()):
        raise CommandExecutionError(
            f"mpi.output: job {jobid} has no output in {jobs_dir} (still waiting, or not a batch job)"
        )
    return {
        "jobid": jobid,
        **{stream: kept.text(stream, "mpi.output", "slurm:max_output") if kept else None
           for stream, kept in found.items()},
        "output_cut": {stream: kept.cut() if kept else 0 for stream, kept in found.items()},
        "files": {stream: f"{jobs_dir}/{jobid}.{suffix}" for stream, suffix in (("stdout", "out"), ("stderr", "err"))},
    }  # fmt: skip
