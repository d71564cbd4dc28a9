"""What saltlab does to the lab: build, up, down, status, join, leave,
exec, salt, and the cluster-wide jobs (highstate, mpi.run).  Each command
returns its exit status for the CLI (0 unless it says otherwise) and raises
LabError for a failure the user can act on."""

import contextlib
import os
import shlex
import shutil
import signal
import subprocess
import time

from labkit import config, figures, hosts, keys, network, remote
from labkit.base import LabError, need_root, say
from labkit.build import build_image, build_kernel, image_path, kernel_path

# `saltlab status`: how long the master's `salt-run cluster.status` waits for
# the minions' answers (its timeout=), and the call over ssh as a whole
STATUS_ANSWER_TIMEOUT = 10
STATUS_SSH_TIMEOUT = 60


def build(only=None):
    """The kernel and the image (ONLY: "kernel" or "image" for one of
    them), and the lab's ssh key."""
    need_root()
    if only in (None, "kernel"):
        build_kernel()
    if only in (None, "image"):
        build_image()
    keys.ssh_key()
    return 0


def _rebooter(kernel, image):
    def reboot(name):  # a guest frozen at boot: boot it again, fresh
        say(f"{name}: rebooting it, fresh")
        figures.note(f"{name}: rebooted, fresh (killed, its disk dropped, booted again)")
        with contextlib.suppress(OSError, TypeError):
            os.killpg(hosts.running(name), signal.SIGKILL)
        (hosts.hostdir(name) / "disk.cow").unlink(missing_ok=True)
        hosts.boot(name, hosts.specs()[name], kernel, image)
        remote.wait_ssh([name], time.monotonic() + config.SSH_UP_TIMEOUT)

    return reboot


def up():
    """Boot every lab host that is not running (each from a fresh disk) and
    wait until every host answers ssh and every minion answers Salt."""
    need_root()
    kernel, image = build_kernel(), build_image()
    t0 = time.monotonic()
    network.up()
    booted = []
    for name, spec in hosts.specs().items():
        if not hosts.running(name):
            hostdir = hosts.hostdir(name)
            hostdir.mkdir(parents=True, exist_ok=True)
            (hostdir / "disk.cow").unlink(missing_ok=True)  # a stopped host boots fresh
            hosts.boot(name, spec, kernel, image)
            booted.append(name)
    say(f"booting {', '.join(booted) or 'nothing (all up)'}")
    figures.note(f"up: booted {', '.join(booted)}, each from a fresh disk" if booted else "up: every host was running")
    remote.wait_ssh(list(hosts.specs()), time.monotonic() + config.SSH_UP_TIMEOUT)
    t_ssh = time.monotonic() - t0
    remote.wait_minions(hosts.minions(), time.monotonic() + config.SALT_UP_TIMEOUT,
                        revive=_rebooter(kernel, image) if booted else None)  # fmt: skip
    t_salt = time.monotonic() - t0
    say(f"up: ssh on every host after {t_ssh:.1f} s, every minion answering after {t_salt:.1f} s")
    if booted:
        figures.record("boot_to_ssh_s", t_ssh)
        figures.record("boot_to_minions_s", t_salt)
    return 0


def _poweroff(name):
    """Ask NAME to shut down cleanly; False if it did not take the request
    (a guest that stopped answering: the caller stops it hard)."""
    try:
        return remote.ssh(name, "systemctl poweroff", timeout=config.POWEROFF_TIMEOUT).returncode in (0, 255)
    except subprocess.TimeoutExpired:
        say(f"{name}: no answer to poweroff in {config.POWEROFF_TIMEOUT} s: stopping it hard")
        return False


def down():
    """Power every host off (hard if it does not go in time), remove the
    lab's namespace and its run directory."""
    need_root()
    names = [n for n in hosts.specs() if hosts.running(n)]
    for name in names:
        _poweroff(name)  # one that does not answer is killed below
    deadline = time.monotonic() + config.DOWN_TIMEOUT
    for name in names:
        while hosts.running(name) and time.monotonic() < deadline:
            time.sleep(0.5)
        pid = hosts.running(name)
        if pid:
            with contextlib.suppress(OSError):
                os.killpg(pid, signal.SIGKILL)
    network.down()
    shutil.rmtree(config.RUN, ignore_errors=True)
    say(f"down: stopped {', '.join(names) or 'nothing'}")
    return 0


def status():
    """Print what runs: the network, whether kernel and image are built,
    each host; and, when the lab's master runs, what the cluster says of
    itself (`salt-run cluster.status` on the master: each host's health,
    its slots in the hostfile and its weight in the upstream)."""
    up = network.exists()
    print(f"lab network: {'up' if up else 'down'}   "
          f"kernel: {'built' if kernel_path().exists() else 'missing'}   "
          f"image: {'built' if image_path().exists() else 'missing'}")  # fmt: skip
    for name, spec in hosts.specs().items():
        pid = hosts.running(name)
        print(f"  {name:8} {hosts.addr(name):12} {','.join(spec['roles']) or '-':10} "
              f"{'running pid %d' % pid if pid else 'stopped'}")  # fmt: skip
    if up and hosts.running("master"):
        print()
        print(_cluster_status())
    return 0


def _cluster_status():
    """`salt-run cluster.status` on the master, or one line saying why not
    (it is a report: status never fails for it)."""
    if os.geteuid() != 0:
        return "cluster status: run as root to ask the lab's master (salt-run cluster.status)"
    try:
        res = remote.salt_run(["cluster.status", f"timeout={STATUS_ANSWER_TIMEOUT}"],
                              timeout=STATUS_SSH_TIMEOUT, check=False)  # fmt: skip
    except subprocess.TimeoutExpired:
        return f"cluster status: salt-run cluster.status gave no answer in {STATUS_SSH_TIMEOUT} s"
    if res.returncode != 0:
        said = (res.stderr.strip() or res.stdout.strip()).splitlines()[-1:] or [f"exit {res.returncode}"]
        return f"cluster status: salt-run cluster.status failed: {said[0]}"
    return res.stdout.rstrip()


def _check_node(name):
    if name not in hosts.specs():
        raise LabError(f"unknown lab host {name!r}: the lab has {', '.join(hosts.specs())}")
    if not hosts.running(name):
        raise LabError(f"{name} is not running: start the lab with `saltlab up`")


def run_on(node, command):
    """Run COMMAND (a list of words) on NODE, its output on this terminal;
    the command's exit status."""
    need_root()
    _check_node(node)
    if not command:
        raise LabError("nothing to run: saltlab exec NODE -- CMD...")
    return remote.ssh(node, " ".join(shlex.quote(c) for c in command), capture=False).returncode


def salt_cli(args):
    """`salt ARGS` on the master, its output on this terminal; its exit status."""
    need_root()
    _check_node("master")
    return remote.ssh("master", "salt " + " ".join(shlex.quote(c) for c in args), capture=False).returncode


def join(names, token=True, wait_salt=True):
    """Boot new compute hosts NAMES that join by themselves: each minion
    presents the join token, the master autosigns its key, the join reactor
    does the rest; returns once every one answers Salt.  With token=False a
    host tries to join without it: returns once the master holds its key as
    pending (not accepted).  With wait_salt=False, returns once the hosts
    answer ssh."""
    need_root()
    for name in names:
        if not config.HOST_NAME_RE.match(name):
            raise LabError(f"bad host name {name!r}: use lower-case letters, digits and '-', e.g. node3")
        if name in hosts.specs():
            raise LabError(f"{name!r} is already a lab host: pick another name")
    if len(set(names)) != len(names):
        raise LabError(f"a name is given twice: {' '.join(names)}")
    _check_node("master")
    kernel, image = build_kernel(), build_image()
    joined = hosts.joined()
    t0 = time.monotonic()
    for name in names:
        spec = {"internal": hosts.free_addr(), "roles": ["compute"], "mem": config.TOPOLOGY["join_mem"],
                "join": "token" if token else "no-token"}  # fmt: skip
        joined[name] = spec
        hosts.save_joined(joined)
        (hosts.hostdir(name) / "disk.cow").unlink(missing_ok=True)
        hosts.boot(name, spec, kernel, image)
        say(f"join: booting {name} at {spec['internal']}{'' if token else ' WITHOUT the join token'}")
    remote.wait_ssh(names, time.monotonic() + config.SSH_UP_TIMEOUT)
    if not wait_salt:
        return 0
    if not token:
        remote.wait_keys(names, "minions_pre", time.monotonic() + config.SALT_UP_TIMEOUT)
        say(f"join: {', '.join(names)} pending on the master, not accepted, after {time.monotonic() - t0:.1f} s")
        return 0
    remote.wait_minions(names, time.monotonic() + config.SALT_UP_TIMEOUT, revive=_rebooter(kernel, image))
    say(f"join: {', '.join(names)} up and answering Salt after {time.monotonic() - t0:.1f} s")
    return 0


def _stop(name, hard):
    pid = hosts.running(name)
    if hard or not _poweroff(name):
        os.killpg(pid, signal.SIGKILL)
    deadline = time.monotonic() + config.STOP_TIMEOUT
    while hosts.running(name) and time.monotonic() < deadline:
        time.sleep(0.5)
    if hosts.running(name):
        os.killpg(pid, signal.SIGKILL)
    joined = hosts.joined()
    joined.pop(name, None)
    hosts.save_joined(joined)


def _drain_from_scheduler(name):
    """An operator's first step of taking NAME out for good when the
    cluster runs Slurm: `salt master slurm_nodes.leave NAME` drains it,
    deals with its jobs by slurm:leave_policy and deletes it from slurmctld,
    while the node still runs.  (A node that only stops is a loss to the
    master: marked DOWN at once, as a crash is.)  Nothing to do without a
    scheduler."""
    settings = remote.salt_json(["master", "cluster.settings"]).get("master")
    if not isinstance(settings, dict):
        raise LabError(f"leave {name}: the master's settings cannot be read: {settings!r}")
    if settings.get("scheduler") != "slurm":
        return
    ret = remote.salt_json(["master", "slurm_nodes.leave", name], check=False).get("master")
    if not (isinstance(ret, dict) and ret.get("result") is True):
        raise LabError(f"leave {name}: slurm_nodes.leave on the master failed: {ret!r}")
    say(f"leave: {name}: {ret.get('comment')}")


def leave(names, hard=False):
    """Stop joined hosts NAMES.  hard=False: decommissioned, as an operator
    does: drained from Slurm (if the cluster runs it), a clean shutdown,
    then the master deletes the key.  hard=True: killed at once, the key
    kept (a crash)."""
    need_root()
    verb = "kill" if hard else "leave"
    for name in names:
        _check_node(name)
        if name in config.TOPOLOGY["hosts"]:
            raise LabError(f"{name} is one of the lab's base hosts; leave/kill take joined nodes "
                           f"({', '.join(hosts.joined()) or 'none'})")  # fmt: skip
    for name in names:
        if not hard:
            _drain_from_scheduler(name)
        _stop(name, hard=hard)
        if not hard:
            # the key goes too (salt/key delete is a leave event as well); a
            # crashed host keeps its key
            remote.ssh("master", f"salt-key -y -d {shlex.quote(name)}", timeout=config.KEY_DELETE_TIMEOUT)
        say(f"{verb}: {name} stopped")
    return 0


def highstate(timeout=config.HIGHSTATE_TIMEOUT, everyone=False):
    """Apply every running host's highstate, as an operator does: nothing
    before it but the master's own runners (`salt-run cluster.status`).
    The minions published their membership at start (core functions,
    pillar/mine.sls), and the highstate syncs this tree's modules itself.
    everyone=True: the operator's very command, `salt '*' state.apply`
    (every accepted minion, no queue); otherwise the running hosts only (a
    crashed node's key stays accepted), queued behind whatever the join
    reactor is configuring.  Returns (seconds, number of states that
    changed, failures)."""
    t0 = time.monotonic()
    remote.salt_run(["saltutil.sync_runners"], timeout=config.SYNC_TIMEOUT)
    running = [n for n in hosts.minions() if hosts.running(n)]
    if everyone:
        command = ["*", "state.apply"]
    else:
        command = ["-L", ",".join(running), "state.apply", "queue=True"]
    data = remote.salt_json(command, timeout=timeout, check=False)
    elapsed = time.monotonic() - t0
    # a running host that sent nothing back at all is a failure too
    changed, failed = 0, [f"{name}: no return" for name in running if name not in data]
    for minion, states in data.items():
        if not isinstance(states, dict):
            failed.append(f"{minion}: {states}")
            continue
        for key, st in states.items():
            if st.get("changes"):
                changed += 1
            if st.get("result") is False:
                failed.append(f"{minion}: {st.get('__id__', key)}: {st.get('comment')}")
    return elapsed, changed, failed


def mpi_run(*args, timeout=config.MPI_TIMEOUT):
    """`salt master mpi.run ARGS` as a dict, run once: a job that times out
    comes back with ``timed_out`` and a non-zero retcode, as it does for a
    user of the salt CLI."""
    ret = remote.salt_json(["master", "mpi.run", *args, f"timeout={timeout}"], check=False).get("master", {})
    if isinstance(ret, dict) and ret.get("timed_out"):
        say(f"mpi.run {' '.join(args)} timed out after {timeout} s")
        figures.note(f"mpi.run {' '.join(args)}: timed out after {timeout} s (retcode {ret.get('retcode')}, "
                     f"processes killed per host: {ret.get('killed')})")  # fmt: skip
    return ret
