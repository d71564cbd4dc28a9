"""The lab's hosts on this machine: their specs (the topology's base hosts
plus the joined ones in RUN/joined.json), what each reads at boot (its
share), booting its UML kernel, and whether it runs."""

import ipaddress
import json
import os
import shutil
import subprocess
from pathlib import Path

import yaml

from labkit import config, keys, network
from labkit.base import LabError, run


def hostdir(name):
    return config.RUN / "hosts" / name


def joined():
    path = config.RUN / "joined.json"
    return json.loads(path.read_text()) if path.exists() else {}


def save_joined(specs):
    (config.RUN / "joined.json").write_text(json.dumps(specs, indent=1))


def specs():
    """Every lab host, base and joined: {name: spec}."""
    return dict(config.TOPOLOGY["hosts"], **joined())


def _reach(spec):
    return spec.get("internal") or spec["external"]


def addr(name):
    """How the lab reaches NAME: its internal address, or its external one."""
    return _reach(specs()[name])


def minions():
    return [n for n, s in specs().items() if s["roles"]]


def free_addr():
    """The first join pool address no host has."""
    pool = config.TOPOLOGY["join_pool"]
    first, last = (ipaddress.ip_address(a) for a in pool.split("-"))
    used = {ipaddress.ip_address(_reach(spec)) for spec in specs().values()}
    address = first
    while address <= last:
        if address not in used:
            return str(address)
        address += 1
    raise LabError(f"no free address left in {pool}")


def pidfile(name):
    return hostdir(name) / "pid"


def _start_time(pid):
    # field 22 of /proc/PID/stat; the command name before it may hold blanks
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]


def running(name):
    """The pid of NAME's UML kernel, if it runs.  The pid file holds the
    process start time too: a recycled pid is not the host.  (UML rewrites
    its command line to show guest processes, so that cannot be matched.)"""
    try:
        pid, started = pidfile(name).read_text().split()
        return int(pid) if _start_time(pid) == started else None
    except (OSError, ValueError, IndexError):
        return None


def _hosts_file():
    lines = ["127.0.0.1 localhost"]
    for name, spec in specs().items():
        lines.append(f"{_reach(spec)} {name}")
    return "\n".join(lines) + "\n"


def prepare_share(name, spec):
    """What host NAME reads at boot.  Base hosts get preseeded Salt keys;
    a joining host (spec "join": "token" or "no-token") gets a key pair the
    master has never seen, and with "token" the join token as a grain."""
    join = spec.get("join")
    share = hostdir(name)
    share.mkdir(parents=True, exist_ok=True)
    (share / "hosts").write_text(_hosts_file())
    shutil.copy2(keys.ssh_key().with_suffix(".pub"), share / "authorized_keys")
    master_addr = config.address("master")
    if spec["roles"]:
        conf = {
            "id": name,
            "master": master_addr,
            "grains": {"roles": spec["roles"]},
            # as etc/minion.d/saltcluster-join.conf: a real start is told
            # from a reconnect by the grains its start event carries
            "start_event_grains": ["roles"],
            "enable_fqdns_grains": False,
            "acceptance_wait_time": 2,
            "random_reauth_delay": 0,
            # a busy one-vCPU master takes longer than Salt's default 5 s to
            # answer an auth request; a minion that gives up asks again and
            # the master's work on the first request is lost
            "auth_timeout": 30,
            "recon_default": 500,
            "recon_max": 2000,
            "log_level_logfile": "info",
        }
        if join == "token":  # what README "Joining real hosts" asks of a new node
            conf["autosign_grains"] = ["saltcluster_token"]
            conf["grains"]["saltcluster_token"] = keys.join_token()
        keys.write_secret(share / "minion.conf", yaml.safe_dump(conf))  # it may hold the join token
        keys.minion_keys(share, name, None if join else hostdir("master") / "master")
    if "external" in spec and "internal" in spec:
        ext_cidr = config.TOPOLOGY["networks"]["external"]["cidr"]
        (share / "nat.nft").write_text(
            "table ip saltlab_nat {\n  chain postrouting {\n    type nat hook postrouting priority 100;\n"
            f"    oifname \"vec1\" ip daddr {ext_cidr} masquerade\n  }}\n}}\n"
        )
    if "master" in spec["roles"]:
        mdir = share / "master"
        mdir.mkdir(exist_ok=True)
        shutil.copy2(config.REPO / "etc/master.d/saltcluster.conf", mdir / "saltcluster.conf")
        tokens = mdir / "autosign_grains"
        tokens.mkdir(exist_ok=True)
        keys.write_secret(tokens / "saltcluster_token", keys.join_token() + "\n")
        (mdir / "lab.conf").unlink(missing_ok=True)
        # "saltlab.conf" sorts after "saltcluster.conf": its settings win
        (mdir / "saltlab.conf").write_text(yaml.safe_dump({
            "autosign_grains_dir": "/saltlab/master/autosign_grains",
            "file_roots": {"base": ["/srv/saltcluster/salt"]},
            # the product's pillar, and the lab's own (lab/pillar: lab.sls,
            # no top file of its own)
            "pillar_roots": {"base": ["/srv/saltcluster/pillar", "/srv/saltcluster/lab/pillar"]},
            "enable_fqdns_grains": False,
            "interface": master_addr,
            "worker_threads": 3,
            "timeout": 30,
            "keep_jobs_seconds": 3600,
            # pillar/top.sls gives every minion of this master, joined ones
            # too, the lab's tuning (lab/pillar/lab.sls) by this flag
            "saltcluster_lab": True,
        }))  # fmt: skip
    return share


def boot(name, spec, kernel, image):
    """Start NAME's UML kernel in the lab's namespace; its pid."""
    cpus = config.ncpus(name, spec)
    share = prepare_share(name, spec)
    ifs, cmdline_net = [], []
    for idx, net in enumerate(n for n in config.NETWORKS if n in spec):
        tap = network.tap_up(name, net)
        ifs.append(f"vec{idx}:{spec[net]}/{network.prefixlen(net)}")
        cmdline_net.append(f"vec{idx}:transport=tap,ifname={tap},gro=1")
    gw = spec.get("route_via") or ("" if "gateway" in spec["roles"] else config.address("gateway"))
    cow = hostdir(name) / "disk.cow"
    if not cow.exists():  # a fresh disk makes fresh ssh host keys: forget the old ones
        run(["ssh-keygen", "-q", "-R", addr(name), "-f", str(config.KNOWN_HOSTS)], check=False,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    cmdline = [
        f"mem={spec['mem']}M", f"ubd0={cow},{image}", "root=/dev/ubda", "rw",
        "con=null", "con0=null,fd:1", "ssl=null", "quiet", *cmdline_net,
        f"saltlab.name={name}", f"saltlab.ifs={','.join(ifs)}", f"saltlab.share={share}",
        f"saltlab.repo={config.REPO}", f"saltlab.forward={1 if 'gateway' in spec['roles'] else 0}",
        "systemd.show_status=0", "random.trust_cpu=on", *config.kernel_cmdline(),
    ] + ([f"saltlab.gw={gw}"] if gw else []) + ([f"ncpus={cpus}"] if cpus > 1 else [])  # fmt: skip
    log = open(hostdir(name) / "console.log", "w")
    proc = subprocess.Popen(
        ["ip", "netns", "exec", config.NETNS, str(kernel), *cmdline],
        stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True, env=dict(os.environ, TMPDIR="/dev/shm"),
    )  # fmt: skip
    pidfile(name).write_text(f"{proc.pid} {_start_time(proc.pid)}")
    return proc.pid
