"""Commands on the lab's hosts, over ssh from inside the lab's namespace:
a shell command, the salt CLI on the master, and the waits for sshd, keys
and minions.  Every wait has a deadline; running out of it is a failure."""

import contextlib
import json
import os
import shlex
import subprocess
import time
from pathlib import Path

from labkit import config, figures, hosts, keys
from labkit.base import LabError, run, say


def ssh(name, command, timeout=None, capture=True, check=False):
    """Run a shell command on a lab host, from inside the lab namespace."""
    cmd = ["ip", "netns", "exec", config.NETNS, "ssh", "-i", str(keys.ssh_key()), *config.SSH_OPTS,
           "-o", f"UserKnownHostsFile={config.KNOWN_HOSTS}", "-o", "StrictHostKeyChecking=accept-new",
           f"root@{hosts.addr(name)}", command]  # fmt: skip
    return run(cmd, capture_output=capture, timeout=timeout, check=check)


def guest_time(node, command, timeout=900):
    """Run COMMAND on NODE; (seconds measured by the guest's own clock, rc,
    output): the ssh from this host is not counted."""
    wrapped = (
        "s=$(date +%s%N); (" + command + ") >/tmp/bench.out 2>&1; rc=$?; e=$(date +%s%N); "
        "echo \"$(( (e - s) / 1000000 )) $rc\"; cat /tmp/bench.out"
    )
    res = ssh(node, wrapped, timeout=timeout)
    head, _, out = res.stdout.partition("\n")
    ms, rc = head.split()
    return int(ms) / 1000, int(rc), out


def wait_ssh(names, deadline):
    pending = set(names)
    started, rounds = time.monotonic(), 0
    while pending and time.monotonic() < deadline:
        rounds += 1
        for name in sorted(pending):
            if not hosts.running(name):
                raise LabError(f"{name} died while booting: see {hosts.hostdir(name) / 'console.log'}")
            try:
                answered = ssh(name, "true", timeout=config.SSH_PROBE_TIMEOUT).returncode == 0
            except subprocess.TimeoutExpired:
                figures.note(f"ssh: {name} ran nothing in {config.SSH_PROBE_TIMEOUT} s (probe round {rounds})")
                raise
            if answered:
                pending.discard(name)
        if pending:
            time.sleep(1)
    if pending:
        figures.note(f"ssh: no answer from {', '.join(sorted(pending))} after {rounds} probe rounds")
        raise LabError(f"no ssh from {', '.join(sorted(pending))} in time: see their console.log in {config.RUN}/hosts")
    if names:
        figures.note(f"ssh: {', '.join(names)} answering after {time.monotonic() - started:.1f} s "
                     f"({rounds} probe round{'s' if rounds != 1 else ''})")  # fmt: skip


def salt(args, timeout=config.SALT_CALL_TIMEOUT, check=True):
    """`salt ARGS` on the master, JSON out."""
    cmd = f"salt --out=json --static --timeout={config.SALT_TIMEOUT} " + " ".join(shlex.quote(a) for a in args)
    res = ssh("master", cmd, timeout=timeout)
    if check and res.returncode != 0:
        raise LabError(f"salt {' '.join(args)} failed ({res.returncode}):\n{res.stdout[-3000:]}{res.stderr[-2000:]}")
    return res


def salt_json(args, timeout=config.SALT_CALL_TIMEOUT, check=True):
    res = salt(args, timeout=timeout, check=check)
    try:
        return json.loads(res.stdout or "{}")
    except json.JSONDecodeError:
        raise LabError(f"salt {' '.join(args)}: output is not JSON:\n{res.stdout[-2000:]}{res.stderr[-2000:]}")


def salt_run(args, timeout=config.SALT_CALL_TIMEOUT, check=True):
    """`salt-run ARGS` on the master (runners run in the master itself)."""
    cmd = "salt-run " + " ".join(shlex.quote(a) for a in args)
    res = ssh("master", cmd, timeout=timeout)
    if check and res.returncode != 0:
        raise LabError(
            f"salt-run {' '.join(args)} failed ({res.returncode}):\n{res.stdout[-3000:]}{res.stderr[-2000:]}"
        )
    return res


def salt_keys():
    """The master's keys by state: {"minions": [...], "minions_pre": [...], ...}."""
    res = ssh("master", "salt-key --out=json -L", timeout=config.QUERY_TIMEOUT)
    try:
        return json.loads(res.stdout)
    except json.JSONDecodeError:
        raise LabError(f"salt-key -L: output is not JSON:\n{res.stdout[-1000:]}{res.stderr[-1000:]}")


def wait_keys(names, state, deadline):
    while time.monotonic() < deadline:
        if set(names) <= set(salt_keys().get(state, [])):
            return
        time.sleep(2)
    raise LabError(f"{', '.join(names)}: no key in {state} on the master in time")


def _frozen(name):
    """True if NAME takes ssh connections but runs nothing in the probe's
    time.  A guest can freeze early in its boot: its journal and every
    process stop, salt-minion logs nothing, and it answers nothing again."""
    try:
        ssh(name, "true", timeout=config.FROZEN_PROBE_TIMEOUT)
        return False
    except subprocess.TimeoutExpired:
        pid, detail = hosts.running(name), ""
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
            detail = f"; its UML kernel pid {pid} is in state {fields[0]}, {cpu:.0f} s of CPU"
            say(f"{name}: frozen (no answer in {config.FROZEN_PROBE_TIMEOUT} s){detail}")
        figures.note(f"{name}: frozen (ssh ran nothing in {config.FROZEN_PROBE_TIMEOUT} s){detail}")
        return True


def wait_minions(names, deadline, revive=None):
    """Until every minion of NAMES answers test.ping.  With REVIVE, a host
    still silent after FROZEN_AFTER seconds that is found frozen is handed
    to REVIVE (once per host), and the wait starts over for it."""
    pending = set(names)
    started, revived, rounds = time.monotonic(), set(), 0
    ping = f"salt --out=json --static --timeout={config.PING_TIMEOUT} '*' test.ping"
    while time.monotonic() < deadline:
        if revive and time.monotonic() - started > config.FROZEN_AFTER:
            for name in sorted(pending - revived):
                if _frozen(name):
                    revived.add(name)
                    revive(name)
                    deadline = max(deadline, time.monotonic() + config.SALT_UP_TIMEOUT)
        rounds += 1
        try:
            res = ssh("master", ping, timeout=config.PING_SSH_TIMEOUT)
        except subprocess.TimeoutExpired:  # a busy master (e.g. running join orchestrations)
            figures.note(f"minions: test.ping round {rounds} got no answer in {config.PING_SSH_TIMEOUT} s; "
                         "waiting on")  # fmt: skip
            continue
        try:
            answered = {k for k, v in json.loads(res.stdout or "{}").items() if v is True}
        except json.JSONDecodeError:
            figures.note(f"minions: test.ping round {rounds} answered no JSON (exit {res.returncode}); waiting on")
        else:
            pending = set(names) - answered
            if not pending:
                secs, plural = time.monotonic() - started, "s" if rounds != 1 else ""
                figures.note(f"minions: {', '.join(names)} answering test.ping after {secs:.1f} s "
                             f"({rounds} round{plural})")  # fmt: skip
                return
        time.sleep(2)
    figures.note(f"minions: {', '.join(sorted(pending))} not answering after {rounds} test.ping rounds")
    raise LabError(f"minions not answering: {', '.join(sorted(pending))}")
