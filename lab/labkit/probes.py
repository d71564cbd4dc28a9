"""What the booted lab shows, read without changing it: where a host is
listed (the membership files the states write), the timing floor every
Salt figure is compared with, and the memory the lab's hosts take."""

import contextlib
import json
import re
from pathlib import Path

from labkit import config, figures, hosts, remote
from labkit.base import LabError

# the gateway's upstream: the load balancer's site file, lb:site_file in
# nginx:site_dir (salt/cluster/parameters/defaults.yaml), one line per
# backend ending in `# <name>`
GATEWAY_UPSTREAM = "/etc/nginx/saltcluster.d/lb.conf"
# the floor: Salt's round trip to every host with nothing to do
FLOOR_COMMAND = "salt --static --out=json '*' state.single test.succeed_without_changes name=floor"


def membership_view(name):
    """Where NAME is listed: every base member's /etc/hosts block, the
    master's hostfile and known_hosts, the gateway's upstream."""
    seen = {}
    for peer in config.members():
        out = remote.ssh(peer, "sed -n '/BEGIN saltcluster/,/END saltcluster/p' /etc/hosts",
                         timeout=config.QUERY_TIMEOUT).stdout  # fmt: skip
        seen[f"hosts@{peer}"] = bool(re.search(rf"\s{name}$", out, re.M))
    out = remote.ssh("master", "cat /home/jobhandler/hosts", timeout=config.QUERY_TIMEOUT).stdout
    seen["hostfile"] = bool(re.search(rf"^{name}:", out, re.M))
    out = remote.ssh("gateway", f"grep -c '# {name}$' {GATEWAY_UPSTREAM}", timeout=config.QUERY_TIMEOUT).stdout
    seen["upstream"] = out.strip() == "1"
    out = remote.ssh("master", f"grep -c '^{name},' /etc/ssh/ssh_known_hosts", timeout=config.QUERY_TIMEOUT).stdout
    seen["known_hosts@master"] = out.strip() not in ("", "0")
    return seen


def everywhere(names):
    """True once every one of NAMES is listed in every membership file;
    otherwise {name: membership_view(name)}, to show what is missing where."""
    views = {name: membership_view(name) for name in names}
    return True if all(all(v.values()) for v in views.values()) else views


def nowhere(names):
    """True once none of NAMES is listed in any membership file; otherwise
    {name: membership_view(name)}, to show what is left where."""
    views = {name: membership_view(name) for name in names}
    return True if not any(any(v.values()) for v in views.values()) else views


def _run_json(args):
    """`salt-run --out=json ARGS` on the master: (data, None), or (None, what
    it printed instead)."""
    res = remote.salt_run(["--out=json", *args], timeout=config.QUERY_TIMEOUT, check=False)
    try:
        return json.loads(res.stdout or "{}"), None
    except json.JSONDecodeError:
        return None, f"{res.stdout[-300:]}{res.stderr[-300:]}"


def _state_runs(node):
    """Every state's return (a dict with __id__) nested in ``node``."""
    if not isinstance(node, dict):
        return []
    if "__id__" in node:
        return [node]
    return [run for value in node.values() for run in _state_runs(value)]


def orchestrations(last=8):
    """What the master's last LAST orchestrations (the reactors' joins,
    leaves and health runs) did, from its job cache: one line per state
    that failed or refused, and a line per run that had none.  For a
    failure message: what a membership wait saw is the outcome, this is
    why."""
    jobs, said = _run_json(["jobs.list_jobs"])
    if jobs is None:
        return [f"jobs.list_jobs: not JSON: {said}"]
    jids = sorted(j for j, job in jobs.items() if job.get("Function") == "runner.state.orchestrate")[-last:]
    lines = []
    for jid in jids:
        ret, said = _run_json(["jobs.lookup_jid", jid])
        if ret is None:
            lines.append(f"{jid}: not JSON: {said}")
            continue
        runs = _state_runs(ret)
        bad = [r for r in runs if r.get("result") is not True or r["__id__"].endswith("-refused")]
        lines += [f"{jid} {r['__id__']}: {r.get('result')}: {str(r.get('comment'))[:400]}" for r in bad]
        if not bad:
            names = sorted({r["__id__"] for r in runs})
            lines.append(f"{jid}: {len(runs)} states succeeded ({', '.join(names[:3])}...)")
    return lines


def health_claims(names):
    """Each of NAMES' health claim as the master's copy of the mine holds it
    (cluster_health.publish: state, since, failed checks), or None."""
    mine, _ = _run_json(["cache.mine", f"tgt={','.join(names)}", "tgt_type=list"])
    mine = mine or {}
    return {name: (mine.get(name) or {}).get("saltcluster_health") for name in names}


# one Key=Value field of scontrol's one-line records (`scontrol show ... -o`);
# a value runs to the next field (it may hold spaces: Reason=...)
SCONTROL_FIELD_RE = re.compile(r"(?:^|(?<=\s))([A-Za-z][A-Za-z0-9_]*)=")


def scontrol_records(text):
    """scontrol's one-line records as dicts of their Key=Value fields, one
    per non-empty line."""
    found = []
    for line in text.splitlines():
        line = line.strip()
        marks = list(SCONTROL_FIELD_RE.finditer(line))
        record = {}
        for i, mark in enumerate(marks):
            end = marks[i + 1].start() if i + 1 < len(marks) else len(line)
            record[mark.group(1)] = line[mark.end() : end].strip()
        if record:
            found.append(record)
    return found


def floor():
    """Seconds of a state run on every host that does nothing, by the
    master's clock: the baseline the benchmarks give their Salt figures
    against."""
    secs, rc, out = remote.guest_time("master", FLOOR_COMMAND)
    if rc != 0:
        raise LabError(f"the floor ({FLOOR_COMMAND}) failed ({rc}):\n{out[-2000:]}")
    return secs


def memory_mb():
    """Sum over the hosts of their UML kernel's peak resident memory (VmHWM):
    the guest memory each host has touched, in MiB; recorded as a figure.
    (Guest processes are host processes mapping the same memory file;
    counting them too would count those pages again.)"""
    total = 0
    for pid in filter(None, (hosts.running(name) for name in hosts.specs())):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1])
    figures.record("lab_peak_rss_mb", total / 1024)
    return total / 1024
