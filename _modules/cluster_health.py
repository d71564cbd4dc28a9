"""
saltcluster health: does this host keep what its roles promise?

:py:func:`check` runs, on the host it is called on, the checks its roles
(grain ``roles``, as :py:func:`cluster.host_info` publishes them) call for:

========  ==================================================================
role      checks
========  ==================================================================
compute   ``nfs_home`` (not on the master, which serves the home),
          ``home_writable``, ``web_whoami``, ``ssh_host_key``
master    ``nfs_export``, ``hostfile``
gateway   ``nginx_running``, ``nginx_config``
========  ==================================================================

Each check is one small function returning ``{"ok": bool, "reason": str}``:
the reason is one line naming what failed and the value seen (empty when
ok).  Every check is bounded: subprocesses go through ``cmd.run_all`` with a
timeout, HTTP has a short timeout, and nothing here touches the NFS-mounted
home in this process (a hung server would hang the minion's job): the mount
is judged from ``/proc/self/mountinfo`` and the home only by a child that
has the MPI user's ids.  A failed check never raises.

:py:func:`publish` runs :py:func:`check` on a schedule (pillar/health.sls)
and decides, with hysteresis, whether this host serves: a compute node that
fails ``health:fail_after`` checks in a row is drained (the hostfile and the
upstream leave it out), and serves again after ``health:pass_after`` passed
ones.  It publishes that claim in the mine (``saltcluster_health``; a host
can claim only its own) and fires ``saltcluster/health/<id>/changed`` when
its state flips, for the membership orchestration (salt/orch/health.sls).

:py:func:`hostfile_slots` (master) and :py:func:`upstream` (gateway) read
what the membership files hold, for ``salt-run cluster.status``.
"""

import base64
import contextlib
import fcntl
import hashlib
import json
import logging
import os
import pwd
import re
import stat
import time
import urllib.error
import urllib.request

import salt.utils.path
from salt.exceptions import CommandExecutionError

log = logging.getLogger(__name__)

__virtualname__ = "cluster_health"

MOUNTINFO = "/proc/self/mountinfo"
ETAB = "/var/lib/nfs/etab"  # the kernel's export table as exportfs keeps it
NFSD_THREADS = "/proc/fs/nfsd/threads"
NGINX_DEFAULT_PID = "/run/nginx.pid"
CMD_TIMEOUT = 5  # seconds, each subprocess
HTTP_TIMEOUT = 3  # seconds, the /whoami request
KEYSCAN_WAIT = 3  # seconds, ssh-keyscan -T
SSH_PORT = 22
PROBE_PREFIX = ".saltcluster-health."
MAX_READ = 1 << 20  # bytes read of a hostfile or an nginx config
REASON_MAX = 300  # characters of one reason line
DIGITS_RE = re.compile(r"[0-9]{1,18}")

# -- health-gated membership (publish) --
HEALTH_ENTRY = "saltcluster_health"  # the mine entry (cluster.HEALTH_ENTRY)
HEALTH_FILE = ("saltcluster", "health.json")  # under the minion's cachedir: the counts between runs
HEALTH_EVENT = "saltcluster/health/{}/changed"
JOINING, SERVING, DRAINED = "joining", "serving", "drained"
HEALTH_STATES = (JOINING, SERVING, DRAINED)


def __virtual__():
    if not os.path.exists(MOUNTINFO):
        return (False, f"cluster_health: no {MOUNTINFO} (Linux only)")
    return __virtualname__


# -- helpers ------------------------------------------------------------------


def _ok():
    return {"ok": True, "reason": ""}


def _fail(reason):
    """A failed check: ``reason`` on one line, cut to REASON_MAX."""
    line = " ".join(str(reason).split())
    return {"ok": False, "reason": line if len(line) <= REASON_MAX else line[: REASON_MAX - 3] + "..."}


def _run(cmd, **kwargs):
    """``cmd`` (an argument list) without a shell, bounded."""
    return __salt__["cmd.run_all"](
        cmd, python_shell=False, timeout=CMD_TIMEOUT, ignore_retcode=True, output_loglevel="quiet", **kwargs
    )


def _said(ret):
    """What a failed command said: its last stderr line, else stdout's."""
    for stream in ("stderr", "stdout"):
        lines = (ret.get(stream) or "").strip().splitlines()
        if lines:
            return lines[-1]
    return f"exit {ret.get('retcode')}"


def _read_regular(path):
    """``(text, mtime)`` of the regular file at ``path``, read as root but
    never through a final symlink or a second name (a hard link) and never
    blocking on a FIFO (the hostfile is in the MPI user's home, where the
    user may plant any of them; mpi.run reads it so too).  Raises OSError or
    ValueError saying what is there instead."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ValueError("not a regular file")
        if st.st_nlink != 1:
            raise ValueError(f"it has {st.st_nlink} names (a hard link)")
        data = os.read(fd, MAX_READ + 1)
        if len(data) > MAX_READ:
            raise ValueError(f"larger than {MAX_READ} bytes")
        return data.decode("utf-8", "replace"), st.st_mtime
    finally:
        os.close(fd)


def _why(exc):
    """An OSError's or ValueError's words, without the file name (the
    reasons name the file themselves)."""
    return (exc.strerror if isinstance(exc, OSError) else None) or str(exc)


def _unescape(field):
    """A mountinfo path field: spaces, tabs, newlines and backslashes are
    octal escapes there (``\\040``)."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def _mount_at(path):
    """The mount on top at ``path``: ``{fstype, source, options}`` from
    /proc/self/mountinfo, or None."""
    with open(MOUNTINFO, encoding="utf-8", errors="replace") as fh:
        lines = fh.read().splitlines()
    found = None
    for line in lines:
        head, sep, tail = line.partition(" - ")
        fields, rest = head.split(), tail.split()
        if not sep or len(fields) < 5 or len(rest) < 2:
            continue
        if os.path.normpath(_unescape(fields[4])) == path:
            # later lines are mounted over earlier ones
            found = {"fstype": rest[0], "source": _unescape(rest[1]), "options": rest[2] if len(rest) > 2 else ""}
    return found


def _split_source(source):
    """``host:/path`` (``[v6]:/path`` too) into ``(host, path)``."""
    if source.startswith("["):
        host, _, rest = source[1:].partition("]")
        return host, rest[1:] if rest.startswith(":") else rest
    host, _, path = source.partition(":")
    return host, path


def _fingerprint(key):
    """``<type> SHA256:<base64>`` of a ``<type> <base64>`` public key, as
    ssh-keygen -l shows it."""
    kind, _, blob = key.partition(" ")
    try:
        digest = hashlib.sha256(base64.b64decode(blob)).digest()
    except ValueError:
        return key[:40]
    return f"{kind} SHA256:{base64.b64encode(digest).decode().rstrip('=')}"


def _nginx_conf(cfg):
    """The live nginx.conf: ``nginx:config_file`` (one nginx per host, the
    roles' site files included from it)."""
    return cfg["nginx"]["config_file"]


def _lb_file(cfg):
    """The file with the gateway's upstream: ``lb:site_file`` in
    ``nginx:site_dir``, which is relative to nginx.conf's directory (as
    cluster/nginx/map.jinja derives it)."""
    nginx = cfg["nginx"]
    return os.path.join(os.path.dirname(nginx["config_file"]), nginx["site_dir"], cfg["lb"]["site_file"])


def _number(text):
    """``text`` as a number if it is ASCII digits only (``str.isdigit``
    also takes '²', which int() refuses), else None."""
    return int(text) if DIGITS_RE.fullmatch(text) else None


def _nginx_pidfile(text):
    """The path the nginx config ``text`` writes its master's pid to."""
    found = re.search(r"^\s*pid\s+([^;\s]+)\s*;", text, re.M)
    return found.group(1) if found else NGINX_DEFAULT_PID


# -- compute --------------------------------------------------------------------


def _check_nfs_home(cfg, info):
    """The shared home is an NFS mount of the master's export."""
    home = os.path.normpath(cfg["user"]["home"])
    mount = _mount_at(home)
    if mount is None:
        return _fail(f"{home} is not a mount point")
    if not mount["fstype"].startswith("nfs"):
        return _fail(f"{home} is a {mount['fstype']} mount of {mount['source']}, not NFS")
    host, path = _split_source(mount["source"])
    export = os.path.normpath(cfg["nfs"]["export_path"])
    if os.path.normpath(path or "/") != export:
        return _fail(f"{home} mounts {mount['source']}, not the export {export}")
    master = cfg["network"]["master_host"]
    if host.lower() == master.lower():
        return _ok()
    # mounted by address (or another name): the kernel's addr= and the
    # source host against the master's address in the membership
    seen = {host} | {o[5:] for o in mount["options"].split(",") if o.startswith("addr=")}
    try:
        addrs = {m["addr"] for m in __salt__["cluster.members"]() if m["name"] == master}
    except CommandExecutionError as exc:
        return _fail(f"{home} mounts {mount['source']}; the address of {master} could not be read: {exc}")
    if seen & addrs:
        return _ok()
    return _fail(f"{home} mounts {mount['source']} (server {', '.join(sorted(seen))}), not {master}")


def _check_home_writable(cfg, info):
    """The MPI user exists with the configured uid and gid, owns the home,
    and can create and remove a file there (as itself, in a child process:
    this process never touches the mount)."""
    user, uid, gid = cfg["user"]["name"], cfg["user"]["uid"], cfg["user"]["gid"]
    home = cfg["user"]["home"]
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        return _fail(f"user {user} does not exist")
    if (entry.pw_uid, entry.pw_gid) != (uid, gid):
        return _fail(f"user {user} has uid {entry.pw_uid} gid {entry.pw_gid}, the cluster's are {uid} {gid}")
    if salt.utils.path.which("setpriv") is None:
        return _fail("setpriv not found (util-linux): cannot act as the MPI user")
    script = f'stat -c %u:%g -- "$1" && p=$(mktemp -p "$1" {PROBE_PREFIX}XXXXXX) && rm -f -- "$p"'
    ret = _run(
        ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--init-groups", "--", "/bin/sh", "-c", script, "sh", home],
        cwd="/", clean_env=True, env={"PATH": "/usr/bin:/bin", "LANG": "C"},
    )  # fmt: skip
    owner = (ret.get("stdout") or "").strip().splitlines()[:1]
    if owner and re.fullmatch(r"\d+:\d+", owner[0]) and owner[0] != f"{uid}:{gid}":
        return _fail(f"{home} is owned by {owner[0]}, not {uid}:{gid}")
    if ret.get("retcode") != 0:
        return _fail(f"{user} cannot create a file in {home}: {_said(ret)}")
    return _ok()


def _check_web_whoami(cfg, info):
    """nginx answers /whoami with this host's own name."""
    url = f"http://127.0.0.1:{cfg['web']['port']}/whoami"
    names = {__opts__["id"], __grains__.get("nodename"), __grains__.get("host")} - {None, ""}
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never through a proxy
    try:
        with opener.open(url, timeout=HTTP_TIMEOUT) as resp:
            body = resp.read(4096).decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return _fail(f"GET {url}: HTTP {exc.code}")
    except (OSError, ValueError) as exc:  # URLError, timeouts, resets
        return _fail(f"GET {url}: {getattr(exc, 'reason', exc)}")
    words = body.split()
    if not words or words[0] not in names:
        return _fail(f"GET {url} answered {body.strip()[:80]!r}, not {__opts__['id']}")
    return _ok()


def _check_ssh_host_key(cfg, info):
    """sshd answers with a host key this host publishes (the one its peers'
    ssh_known_hosts hold)."""
    published = set(info.get("host_keys") or [])
    if not published:
        return _fail("this host publishes no ssh host key (/etc/ssh/ssh_host_*_key.pub)")
    ret = _run(["ssh-keyscan", "-T", str(KEYSCAN_WAIT), "-p", str(SSH_PORT), "-t", "rsa,ecdsa,ed25519", "127.0.0.1"])
    served = set()
    for line in (ret.get("stdout") or "").splitlines():
        parts = line.split()
        if len(parts) >= 3 and not line.startswith("#"):
            served.add(f"{parts[1]} {parts[2]}")
    if not served:
        return _fail(
            f"sshd on 127.0.0.1:{SSH_PORT} gave no host key within {KEYSCAN_WAIT} s (ssh-keyscan: {_said(ret)})"
        )
    unknown = served - published
    if unknown:
        return _fail(
            f"sshd on 127.0.0.1:{SSH_PORT} serves {', '.join(sorted(map(_fingerprint, unknown)))}, "
            "which this host does not publish"
        )
    return _ok()


# -- master ---------------------------------------------------------------------


def _check_nfs_export(cfg, info):
    """The NFS server runs and exports the home (the kernel's export table,
    as ``exportfs -v`` shows it)."""
    export = os.path.normpath(cfg["nfs"]["export_path"])
    try:
        with open(NFSD_THREADS, encoding="ascii") as fh:
            threads = int(fh.read().strip() or 0)
    except (OSError, ValueError) as exc:
        return _fail(f"the NFS server is not running ({NFSD_THREADS}: {_why(exc)})")
    if threads < 1:
        return _fail(f"the NFS server runs {threads} threads ({NFSD_THREADS})")
    try:
        with open(ETAB, encoding="utf-8", errors="replace") as fh:
            paths = {_unescape(line.split()[0]) for line in fh if line.strip()}
    except OSError as exc:
        return _fail(f"cannot read the export table {ETAB}: {_why(exc)}")
    if export not in {os.path.normpath(p) for p in paths}:
        return _fail(f"{export} is not exported ({ETAB} lists {', '.join(sorted(paths)) or 'nothing'})")
    return _ok()


def _entries(text):
    """``host:slots`` of each entry of hostfile ``text``, read as Hydra reads
    it (``cluster.parse_hostfile``, the reader of the format
    ``cluster.hostfile`` writes)."""
    return [f"{e['host']}:{e['slots']}" for e in __salt__["cluster.parse_hostfile"](text)]


def _check_hostfile(cfg, info):
    """The Hydra hostfile on disk lists what membership says it should
    (``cluster.hostfile``, from the mine)."""
    path = cfg["mpi"]["hostfile"]
    try:
        want = _entries(__salt__["cluster.hostfile"]())
    except CommandExecutionError as exc:
        return _fail(f"membership could not be read: {exc}")
    try:
        have = _entries(_read_regular(path)[0])
    except (OSError, ValueError) as exc:
        return _fail(f"cannot read the hostfile {path}: {_why(exc)}")
    if have == want:
        return _ok()
    missing = [e for e in want if e not in have]
    extra = [e for e in have if e not in want]
    if not missing and not extra:
        return _fail(f"{path} lists the members in another order: {' '.join(have)}")
    parts = ([f"lacks {' '.join(missing)}"] if missing else []) + ([f"has {' '.join(extra)} too"] if extra else [])
    return _fail(f"{path} {'; '.join(parts)} (membership: {' '.join(want) or 'none'})")


# -- gateway --------------------------------------------------------------------


def _check_nginx_running(cfg, info):
    """An nginx master process runs for the live config: the pid its
    ``pid`` directive names is alive and is an nginx master.  (Not the
    service manager's word: this names the instance of this very config,
    and works where no systemd runs.)"""
    conf = _nginx_conf(cfg)
    try:
        pidfile = _nginx_pidfile(_read_regular(conf)[0])
    except (OSError, ValueError) as exc:
        return _fail(f"cannot read {conf}: {_why(exc)}")
    try:
        with open(pidfile, encoding="utf-8", errors="replace") as fh:
            text = fh.read().strip()
    except OSError as exc:
        return _fail(f"nginx is not running ({pidfile}: {_why(exc)})")
    pid = _number(text)
    if pid is None:
        return _fail(f"nginx is not running ({pidfile} holds {text[:20]!r}, not a pid)")
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            cmdline = fh.read().replace(b"\0", b" ").decode("utf-8", "replace").strip()
    except OSError:
        return _fail(f"nginx is not running (pid {pid} from {pidfile} is gone)")
    if not cmdline.startswith("nginx: master process"):
        return _fail(f"pid {pid} from {pidfile} is {cmdline[:60]!r}, not an nginx master")
    return _ok()


def _check_nginx_config(cfg, info):
    """The live config (nginx.conf with the site files it includes) passes
    ``nginx -t``: it is the last good one (the states put a file there only
    after nginx accepted it), nobody broke it since."""
    conf = _nginx_conf(cfg)
    ret = _run(["nginx", "-t", "-q", "-c", conf])
    if ret.get("retcode") != 0:
        # nginx's last line only says "test failed": the [emerg] line says
        # why (after its time stamp and pid#tid, when it has them)
        why = [line for line in (ret.get("stderr") or "").splitlines() if "[emerg]" in line][:1]
        if why:
            why = [re.sub(r"^.*?\[emerg\] (\d+#\d+: )?", "", why[0])]
        return _fail(f"nginx -t -c {conf} fails: {why[0] if why else _said(ret)}")
    return _ok()


# -- the table and the entry points -------------------------------------------

CHECKS = {
    "nfs_home": _check_nfs_home,
    "home_writable": _check_home_writable,
    "web_whoami": _check_web_whoami,
    "ssh_host_key": _check_ssh_host_key,
    "nfs_export": _check_nfs_export,
    "hostfile": _check_hostfile,
    "nginx_running": _check_nginx_running,
    "nginx_config": _check_nginx_config,
}
ROLE_CHECKS = {
    "compute": ("nfs_home", "home_writable", "web_whoami", "ssh_host_key"),
    "master": ("nfs_export", "hostfile"),
    "gateway": ("nginx_running", "nginx_config"),
}
# a check left out for a host that also holds this role: the master serves
# the home from its own disk (cluster.nfs.client skips it)
NOT_WITH = {"nfs_home": "master"}


def _checks_for(roles):
    """The names of the checks ``roles`` call for, in table order, once each."""
    names = []
    for role in ("compute", "master", "gateway"):
        if role in roles:
            names += [n for n in ROLE_CHECKS[role] if n not in names and NOT_WITH.get(n) not in roles]
    return names


def _wanted(only):
    if only is None:
        return None
    names = [n for n in (only.split(",") if isinstance(only, str) else only) if n]
    unknown = [n for n in names if n not in CHECKS]
    if unknown or not names:
        raise CommandExecutionError(
            f"cluster_health.check: only={only!r}: unknown check {', '.join(map(repr, unknown)) or '(none named)'}; "
            f"known: {', '.join(CHECKS)}"
        )
    return set(names)


def check(only=None):
    """
    Check what this host's roles promise; never raises for a failed check.

    Returns ``{"host": <minion id>, "roles": [...], "healthy": bool,
    "checks": {<name>: {"ok": bool, "reason": <one line, "" when ok>}}}``.
    A host with no role has no checks and is healthy.  When the settings or
    the host's own data cannot be read there is one failed check,
    ``settings``.

    only
        run only these checks (a list or a comma string) of those the roles
        call for; an unknown name is an error

    Checks: compute: ``nfs_home``, ``home_writable``, ``web_whoami``,
    ``ssh_host_key``; master: ``nfs_export``, ``hostfile``; gateway:
    ``nginx_running``, ``nginx_config``.

    CLI Example:

    .. code-block:: bash

        salt '*' cluster_health.check
        salt node1 cluster_health.check only=nfs_home,web_whoami
    """
    wanted = _wanted(only)
    result = {"host": __opts__["id"], "roles": [], "healthy": False, "checks": {}}
    try:
        info = __salt__["cluster.host_info"]()
    except Exception as exc:  # pylint: disable=broad-except
        result["checks"]["settings"] = _fail(f"cannot read this host's roles and keys (cluster.host_info): {exc}")
        return result
    result["roles"] = list(info.get("roles") or [])
    try:
        # the defaults this host's last state run fetched: no fileserver trip
        cfg = __salt__["cluster.settings"](cached=True)
    except Exception as exc:  # pylint: disable=broad-except
        result["checks"]["settings"] = _fail(f"cannot read this host's settings: {exc}")
        return result
    for name in _checks_for(result["roles"]):
        if wanted is not None and name not in wanted:
            continue
        started = time.monotonic()
        try:
            result["checks"][name] = CHECKS[name](cfg, info)
        except Exception as exc:  # pylint: disable=broad-except
            # a check's own bug must not hide the others
            log.exception("cluster_health: check %s", name)
            result["checks"][name] = _fail(f"the check itself failed: {exc!r}")
        log.debug("cluster_health: %s took %.2f s", name, time.monotonic() - started)
    result["healthy"] = all(c["ok"] for c in result["checks"].values())
    return result


def hostfile_slots():
    """
    What the Hydra hostfile on this host holds (read-only):
    ``{"path", "mtime", "slots": {<host>: <slots>}, "error"}``; ``error`` is
    None, or why the file could not be read (``slots`` is then empty).

    CLI Example:

    .. code-block:: bash

        salt master cluster_health.hostfile_slots
    """
    path = __salt__["cluster.settings"](cached=True)["mpi"]["hostfile"]
    ret = {"path": path, "mtime": None, "slots": {}, "error": None}
    try:
        text, ret["mtime"] = _read_regular(path)
    except (OSError, ValueError) as exc:
        ret["error"] = _why(exc)
        return ret
    for entry in __salt__["cluster.parse_hostfile"](text):
        ret["slots"][entry["host"]] = entry["slots"]
    return ret


SERVER_RE = re.compile(r"^\s*server\s+([^\s;]+)([^;]*);(?:\s*#\s*(\S+))?")


def upstream():
    """
    The backends in the load balancer's live site file (read-only, the
    ``server`` lines of its ``upstream`` blocks):
    ``{"path", "mtime", "servers": [{"name", "addr", "port", "weight",
    "down"}], "error"}``.  ``name`` is the member named in the line's
    comment (saltcluster's template writes one), else None.

    CLI Example:

    .. code-block:: bash

        salt gateway cluster_health.upstream
    """
    path = _lb_file(__salt__["cluster.settings"](cached=True))
    ret = {"path": path, "mtime": None, "servers": [], "error": None}
    try:
        text, ret["mtime"] = _read_regular(path)
    except (OSError, ValueError) as exc:
        ret["error"] = _why(exc)
        return ret
    inside = 0
    for line in text.splitlines():
        code = line.split("#", 1)[0]
        if re.match(r"^\s*upstream\s+\S+\s*\{", code):
            inside = 1
            continue
        if not inside:
            continue
        found = SERVER_RE.match(line)
        if found:
            addr, _, port = found.group(1).rpartition(":")
            port = _number(port)
            if not addr or port is None:  # a unix socket or a name without port
                addr, port = found.group(1), 80
            params = found.group(2).split()
            weight = _number(next((p[7:] for p in params if p.startswith("weight=")), "1"))
            ret["servers"].append(
                {
                    "name": found.group(3),
                    "addr": addr.strip("[]"),
                    "port": port,
                    "weight": 1 if weight is None else weight,
                    "down": "down" in params,
                }
            )
        inside += code.count("{") - code.count("}")
    return ret


# -- health-gated membership -----------------------------------------------------
#
# What a host claims about itself: ``joining`` (never served: a fresh host,
# admitted by its first pass at the end of its join, or after pass_after
# passes), ``serving``, ``drained`` (failed fail_after checks in a row;
# serves again after pass_after passes in a row).  Only a compute node's
# own checks decide (draining takes it out of the hostfile and the upstream,
# which list compute nodes only); a host without the compute role serves as
# long as its settings can be read.


def _gating(result):
    """The checks of ``result`` (a :py:func:`check` return) that decide
    whether this host serves: a compute node's checks, and ``settings``
    (the checks could not run) on any host."""
    compute = "compute" in result["roles"]
    return {
        name: c
        for name, c in result["checks"].items()
        if name == "settings" or (compute and name in ROLE_CHECKS["compute"])
    }


def _step(record, ok, fail_after, pass_after, admit=False, now=None):
    """The health record after one check that passed (``ok``) or not.

    ``record``: ``{"state", "passes", "fails", "since"}`` (``since``: when
    the state last changed).  Counts are consecutive: a pass clears the
    failures, a failure the passes.  ``serving`` -> ``drained`` at
    ``fail_after`` failures; ``drained`` -> ``serving`` at ``pass_after``
    passes; ``joining`` -> ``serving`` at ``pass_after`` passes, or at the
    first with ``admit`` (the join orchestration's gate, right after the
    host's highstate).  Nothing else moves the state, so a host whose checks
    alternate never flips."""
    state = record["state"]
    passes, fails = (record["passes"] + 1, 0) if ok else (0, record["fails"] + 1)
    if state == SERVING and fails >= fail_after:
        state = DRAINED
    elif state in (DRAINED, JOINING) and ok and (passes >= pass_after or (admit and state == JOINING)):
        state = SERVING
    since = record["since"] if state == record["state"] else (now if now is not None else time.time())
    return {"state": state, "passes": passes, "fails": fails, "since": since}


def _health_path():
    return os.path.join(__opts__["cachedir"], *HEALTH_FILE)


def _fresh_record():
    return {"state": JOINING, "passes": 0, "fails": 0, "since": None, "failed": {}}


def _load_record(path):
    """The record the last run left, or a fresh one (never published, or a
    file that is not one)."""
    try:
        with open(path, encoding="utf-8") as fh:
            record = json.load(fh)
    except (OSError, ValueError):
        return _fresh_record()
    if (
        not isinstance(record, dict)
        or record.get("state") not in HEALTH_STATES
        or not all(isinstance(record.get(k), int) and record[k] >= 0 for k in ("passes", "fails"))
    ):
        log.warning("cluster_health: %s is no health record: starting afresh", path)
        return _fresh_record()
    record.setdefault("since", None)
    record["failed"] = record.get("failed") if isinstance(record.get("failed"), dict) else {}
    return record


def _save_record(path, record):
    """Atomically: a fresh file renamed over the name (a run that dies
    half-way leaves the last whole record)."""
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(record, fh)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


@contextlib.contextmanager
def _locked(path):
    """The record to itself: the schedule and the join's gate may run
    publish at once."""
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    with open(path + ".lock", "a", encoding="utf-8") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def claim():
    """
    What this host claims about its health, as its last
    :py:func:`publish` decided (read-only; what ``publish`` sends to the
    mine entry ``saltcluster_health``): ``{"state": "joining" | "serving" |
    "drained", "since": <epoch of the last change, or None>, "passes",
    "fails": <checks in a row>, "failed": {check: reason}}``.

    CLI Example:

    .. code-block:: bash

        salt node1 cluster_health.claim
    """
    record = _load_record(_health_path())
    return {key: record[key] for key in ("state", "since", "passes", "fails", "failed")}


def publish(admit=False):
    """
    Check this host (:py:func:`check`), decide whether it serves, and say so:
    the claim goes to the mine (``saltcluster_health``), and a compute node
    whose state flips fires ``saltcluster/health/<id>/changed`` (the master's
    reactor then re-applies membership on the master and the gateway:
    salt/orch/health.sls).  Runs every ``schedule:saltcluster-health:seconds``
    (pillar/health.sls); the counts live in this minion's cachedir
    (``saltcluster/health.json``) between runs.

    A compute node is drained after ``health:fail_after`` failed checks in a
    row and serves again after ``health:pass_after`` passed ones (its compute
    checks decide; a host without the compute role serves while its
    settings can be read).  A fresh host is ``joining`` until it passes
    ``pass_after`` checks in a row, or one with ``admit``.

    admit
        admit a joining host on its first passed check, without an event:
        what orch.join runs on a node after its highstate, before it tells
        the other hosts (which then list the node in the hostfile and the
        upstream)

    Returns the claim (see :py:func:`claim`) with ``previous`` (the state
    before), ``changed``, ``healthy`` and ``checks`` (what :py:func:`check`
    found); the job's retcode is 1 when the host does not serve.

    CLI Example:

    .. code-block:: bash

        salt node1 cluster_health.publish
    """
    result = check()
    gating = _gating(result)
    ok = all(c["ok"] for c in gating.values())
    try:
        limits = __salt__["cluster.settings"](cached=True)["health"]
        fail_after, pass_after = limits["fail_after"], limits["pass_after"]
    except Exception as exc:  # pylint: disable=broad-except
        # the settings check above failed too: nothing to count against
        raise CommandExecutionError(f"cluster_health.publish: cannot read health:fail_after/pass_after: {exc}")
    path = _health_path()
    with _locked(path):
        before = _load_record(path)
        after = _step(before, ok, fail_after, pass_after, admit=bool(admit))
        after["failed"] = {name: c["reason"] for name, c in gating.items() if not c["ok"]}
        _save_record(path, after)
    __salt__["mine.send"](HEALTH_ENTRY, mine_function="cluster_health.claim")
    changed = after["state"] != before["state"]
    if changed:
        log.warning("cluster_health: %s -> %s (%s)", before["state"], after["state"],
                    "; ".join(f"{n}: {r}" for n, r in after["failed"].items()) or "checks pass")  # fmt: skip
        if "compute" in result["roles"] and not admit:
            __salt__["event.send"](
                HEALTH_EVENT.format(__opts__["id"]), {"state": after["state"], "previous": before["state"]}
            )
    if after["state"] != SERVING:
        __context__["retcode"] = 1
    return {
        **{key: after[key] for key in ("state", "since", "passes", "fails", "failed")},
        "previous": before["state"],
        "changed": changed,
        "healthy": result["healthy"],
        "checks": result["checks"],
    }
