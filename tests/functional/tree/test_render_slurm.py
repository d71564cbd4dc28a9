"""scheduler: slurm, rendered by real loaders over the tree: which states a
host gets, slurm.conf, the compute nodes' slurmd drop-in, the munge key's
states; the munge key's pillar compiled as the master compiles it; and the
epilog run for real against processes of a scratch uid."""

import base64
import copy
import grp
import json
import os
import pathlib
import pwd
import shlex
import signal
import stat
import subprocess
import sys
import time

import pytest
import salt.pillar
import salt.utils.yaml

from tests.conftest import REPO
from tests.functional.conftest import by_id

MINION_ID = "node1"  # with every role (conftest's default)

# one nginx serves both sites on this host (as tests/functional/tree/test_render.py)
BOTH_ROLES = {"web": {"port": 8080}, "lb": {"backend_port": 8080}}


@pytest.fixture(scope="module")
def pillar_root(pillar_root, workdir):
    """conftest's pillar, plus Slurm on, its files in the scratch directory."""
    slurm = {
        "scheduler": "slurm",
        "slurm": {
            "config_dir": str(workdir / "slurm"),
            "munge_key": str(workdir / "munge/munge.key"),
            "slurmd_dropin": str(workdir / "slurmd.service.d/saltcluster.conf"),
        },
        **BOTH_ROLES,
    }
    (pillar_root / "functional_slurm.sls").write_text(json.dumps({"saltcluster": slurm}))
    top = pillar_root / "top.sls"
    top.write_text(top.read_text() + "    - functional_slurm\n")
    return pillar_root


def _arg(state, name):
    return next(arg[name] for arg in state if isinstance(arg, dict) and name in arg)


SLURM_SLS = {"cluster.slurm.package", "cluster.slurm.munge", "cluster.slurm.config", "cluster.slurm.controller",
             "cluster.slurm.node"}  # fmt: skip


def test_slurm_states_follow_the_setting(modules):
    high = modules.state.show_highstate()
    assert isinstance(high, dict), high
    assert SLURM_SLS <= {v["__sls__"] for v in high.values()}
    off = modules.state.show_highstate(pillar={"saltcluster": {"scheduler": "none"}})
    assert isinstance(off, dict), off
    assert not {v["__sls__"] for v in off.values()} & SLURM_SLS


def test_packages_come_after_the_mpi_user(modules):
    """munge's package takes the first free system uid: the MPI user (uid
    100 on a real cluster) must exist first."""
    high = modules.state.show_sls("cluster.slurm.package")
    pkg = high["cluster-slurm-package-pkg-installed"]["pkg"]
    assert _arg(pkg, "pkgs") == ["munge", "slurmctld", "slurm-client", "slurmd"]
    assert {"user": "cluster-users-user-present-scfunc"} in _arg(pkg, "require")


def test_slurm_conf_rendered(modules, workdir):
    high = modules.state.show_sls("cluster.slurm.config")
    conf = high["cluster-slurm-config-file-managed-slurm-conf"]["file"]
    assert _arg(conf, "name") == str(workdir / "slurm/slurm.conf")
    ctx = _arg(conf, "context")
    template = modules.cp.get_file_str(_arg(conf, "source"))
    text = modules.file.apply_template_on_contents(template, "jinja", ctx, {}, "base")
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    settings = dict(line.split("=", 1) for line in lines if not line.startswith("PartitionName="))
    assert settings["SlurmctldHost"] == "master(10.5.5.10)"
    assert settings["SlurmctldParameters"] == "enable_configless"
    assert settings["SelectType"] == "select/cons_tres" and settings["SelectTypeParameters"] == "CR_CPU"
    assert settings["ProctrackType"] == "proctrack/linuxproc" and "TaskPlugin" not in settings
    assert settings["MpiDefault"] == "pmi2" and settings["MaxNodeCount"] == "64"
    assert settings["ReturnToService"] == "2" and settings["JobRequeue"] == "1"
    # the epilog by name only: configless slurmd gets it from beside slurm.conf
    assert settings["Epilog"] == "saltcluster-epilog" and "/" not in settings["Epilog"]
    assert settings["ClusterName"] == "saltcluster"
    # no node is listed: dynamic nodes register themselves
    assert not [line for line in lines if line.startswith("NodeName")]
    assert [line for line in lines if line.startswith("PartitionName=")] == [
        "PartitionName=batch Nodes=ALL Default=YES MaxTime=1440 State=UP"
    ]
    cgroup = high["cluster-slurm-config-file-managed-cgroup-conf"]["file"]
    assert _arg(cgroup, "name") == str(workdir / "slurm/cgroup.conf")
    assert "CgroupPlugin=disabled" in (REPO / "salt/cluster/files/slurm/cgroup.conf").read_text().splitlines()
    epilog = high["cluster-slurm-config-file-managed-epilog"]["file"]
    assert _arg(epilog, "name") == str(workdir / "slurm/saltcluster-epilog")
    assert _arg(epilog, "check_cmd") == "/bin/sh -n" and _arg(epilog, "mode") == "0755"
    jobs = high["cluster-slurm-config-user-file-directory-jobs-dir"]["user_file"]
    assert _arg(jobs, "name") == str(workdir / "home/jobs") and _arg(jobs, "user") == "scfunc"


CONFIG_FILES = [{"file": "cluster-slurm-config-file-managed-slurm-conf"},
                {"file": "cluster-slurm-config-file-managed-cgroup-conf"},
                {"file": "cluster-slurm-config-file-managed-epilog"}]  # fmt: skip


def test_controller_applies_a_config_change_once_by_reconfigure(modules):
    """One mechanism: slurmctld is started and enabled, never restarted by
    a watch; a change of its files runs `scontrol reconfigure` (24.11 keeps
    the old daemon if the new files are bad) only while slurmctld runs, and
    before its service state, so a first start is not followed by a
    needless reconfigure."""
    high = modules.state.show_sls("cluster.slurm.controller")
    service = high["cluster-slurm-controller-service-running"]["service"]
    assert _arg(service, "name") == "slurmctld" and _arg(service, "enable") is True
    assert not [a for a in service if isinstance(a, dict) and {"watch", "watch_in", "listen"} & set(a)], service
    required = _arg(service, "require")
    assert all(f in required for f in CONFIG_FILES)  # the first start reads them
    assert {"service": "cluster-slurm-munge-service-running"} in required
    # ordered after the reconfigure: it runs, if at all, on the daemon that was running
    assert {"cmd": "cluster-slurm-controller-cmd-run-reconfigure"} in required
    reconfigure = high["cluster-slurm-controller-cmd-run-reconfigure"]["cmd"]
    assert _arg(reconfigure, "name") == "scontrol reconfigure"
    assert _arg(reconfigure, "onchanges") == CONFIG_FILES
    assert _arg(reconfigure, "onlyif") == "systemctl is-active --quiet slurmctld"
    assert {"service": "cluster-slurm-controller-service-running"} not in _arg(reconfigure, "require")
    # no other state manages the service
    services = [sid for sid, st in high.items() if "service" in st and _arg(st["service"], "name") == "slurmctld"]
    assert services == ["cluster-slurm-controller-service-running"]


def _exec_start(high):
    contents = _arg(high["cluster-slurm-node-file-managed-slurmd-dropin"]["file"], "contents")
    lines = [line for line in contents.splitlines() if line.startswith("ExecStart=")]
    assert lines[0] == "ExecStart="  # Debian's own ExecStart is reset
    # systemd splits ExecStart as a shell would split double-quoted words
    return shlex.split(lines[1][len("ExecStart=") :])


@pytest.mark.parametrize("slots,cpus", [(None, 2), (3, 3)])
def test_slurmd_is_a_dynamic_node_with_the_hostfiles_slots(modules, slots, cpus):
    pillar = {"saltcluster": {"mpi": {"slots": slots}}}
    high = modules.state.show_sls("cluster.slurm.node", pillar=pillar)
    assert _exec_start(high) == [
        "/usr/sbin/slurmd", "--systemd", "-Z", "--conf-server", "master", "--conf", f"CPUs={cpus} Feature=compute",
    ]  # fmt: skip
    # the hostfile gives node1 the same slots
    line = [ln for ln in modules.cluster.hostfile().splitlines() if ln.startswith("node1:")]
    if slots is None:
        assert line == [f"node1:{cpus}"]
    service = high["cluster-slurm-node-service-running"]["service"]
    assert _arg(service, "name") == "slurmd"
    # not before the node's own health checks passed
    assert {"cluster_health": "cluster-health-cluster-health-serving"} in _arg(service, "require")
    assert {"file": "cluster-slurm-node-file-managed-slurmd-dropin"} in _arg(service, "watch")
    # at boot, after the shared home's mount
    contents = _arg(high["cluster-slurm-node-file-managed-slurmd-dropin"]["file"], "contents")
    home = modules.cluster.settings()["user"]["home"]
    assert f"[Unit]\nRequiresMountsFor={home}\n" in "\n".join(
        line for line in contents.splitlines() if not line.startswith("#")) + "\n"


def test_munge_without_a_key_in_pillar_says_why_and_starts_nothing(modules):
    high = modules.state.show_sls("cluster.slurm.munge")
    notice = high["cluster-slurm-munge-file-decode-key"]["test"]
    assert "fail_without_changes" in notice and "saltcluster_munge:key" in _arg(notice, "comment")
    service = high["cluster-slurm-munge-service-running"]["service"]
    assert {"test": "cluster-slurm-munge-file-decode-key"} in _arg(service, "require")


def test_munge_key_from_pillar_never_shows_in_the_states(modules, workdir):
    secret = base64.b64encode(os.urandom(128)).decode()
    high = modules.state.show_sls("cluster.slurm.munge", pillar={"saltcluster_munge": {"key": secret}})
    assert secret not in json.dumps(high)
    decode = high["cluster-slurm-munge-file-decode-key"]["file"]
    assert "decode" in decode and _arg(decode, "contents_pillar") == "saltcluster_munge:key"
    assert _arg(decode, "name") == str(workdir / "munge/munge.key")
    mode = high["cluster-slurm-munge-file-managed-key-mode"]["file"]
    assert (_arg(mode, "user"), _arg(mode, "group"), _arg(mode, "mode")) == ("munge", "munge", "0400")
    assert _arg(mode, "replace") is False and _arg(mode, "show_changes") is False
    service = high["cluster-slurm-munge-service-running"]["service"]
    assert {"file": "cluster-slurm-munge-file-decode-key"} in _arg(service, "watch")


def _state_args(state):
    """A rendered state's arguments without its requisites."""
    return {k: v for a in state if isinstance(a, dict) for k, v in a.items() if k not in ("require", "watch")}


@pytest.mark.parametrize("before", [None, 0o644])
def test_munge_key_is_never_readable_by_others(modules, workdir, before):
    """The file exists with owner and mode 0400 before the key is written
    into it, and the key is written in place (same inode: no new file made
    under the default umask).  ``before``: no file yet, or a key Debian's
    package left (0644 here, the worst case).  The rendered states run for
    real on a scratch path, owned by this test's user (there is no munge
    user here)."""
    secret = base64.b64encode(os.urandom(128)).decode()
    pillar = {"saltcluster_munge": {"key": secret}}
    high = modules.state.show_sls("cluster.slurm.munge", pillar=pillar)
    first, then = high["cluster-slurm-munge-file-managed-key-mode"], high["cluster-slurm-munge-file-decode-key"]
    # the file's owner and mode are set by a state the key's own requires
    assert "managed" in first["file"] and "decode" in then["file"]
    assert _arg(then["file"], "require") == [{"file": "cluster-slurm-munge-file-managed-key-mode"}]
    key = pathlib.Path(_arg(then["file"], "name"))
    key.parent.mkdir(parents=True, exist_ok=True)
    key.unlink(missing_ok=True)
    if before is not None:
        key.write_bytes(b"debian's own key")
        key.chmod(before)
    me, my_group = pwd.getpwuid(os.geteuid()).pw_name, grp.getgrgid(os.getegid()).gr_name
    args = dict(_state_args(first["file"]), user=me, group=my_group)
    ret = by_id(modules.state.single("file.managed", **args))
    assert all(r["result"] is True for r in ret.values()), ret
    st = key.stat()
    assert stat.S_IMODE(st.st_mode) == 0o400 and (st.st_uid, st.st_gid) == (os.geteuid(), os.getegid())
    assert st.st_size == (0 if before is None else len(b"debian's own key"))
    # state.high: state.single would hand its pillar to file.decode too
    decode = {"file": ["decode", *({k: v} for k, v in _state_args(then["file"]).items())],
              "__sls__": "functional", "__env__": "base"}  # fmt: skip
    ret = modules.state.high({"munge-key": decode}, pillar=pillar)
    assert [r["result"] for r in by_id(ret).values()] == [True], ret
    assert secret not in json.dumps(getattr(ret, "raw", ret))
    after = key.stat()
    assert key.read_bytes() == base64.b64decode(secret)
    assert after.st_ino == st.st_ino and stat.S_IMODE(after.st_mode) == 0o400
    assert (after.st_uid, after.st_gid) == (st.st_uid, st.st_gid)


# -- the munge key's pillar, compiled as the master compiles it


def _master_opts(salt_factories, name):
    conf = salt.utils.yaml.safe_load((REPO / "etc/master.d/saltcluster.conf").read_text())
    factory = salt_factories.salt_master_daemon(
        name,
        overrides={**conf, "file_roots": {"base": [str(REPO / "salt")]},
                   "pillar_roots": {"base": [str(REPO / "pillar")]}, "enable_fqdns_grains": False},
    )  # fmt: skip
    opts = factory.config.copy()
    opts["__role"] = "master"  # as salt.config.master_config sets it
    return opts


@pytest.fixture(scope="module")
def master_opts(salt_factories):
    opts = _master_opts(salt_factories, "munge-pillar-master")
    for minion in ("master", "node1", "gateway"):
        path = pathlib.Path(opts["pki_dir"]) / "minions" / minion
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("-----BEGIN PUBLIC KEY-----\nnot checked here\n-----END PUBLIC KEY-----\n")
    return opts


def _compile(opts, minion_id, roles):
    grains = {"id": minion_id, "roles": roles}
    return salt.pillar.get_pillar(opts, grains, minion_id, saltenv="base").compile_pillar()


def test_munge_key_is_made_once_and_served_to_members_only(master_opts):
    key_file = pathlib.Path(master_opts["pki_dir"]) / "saltcluster" / "munge.key"
    assert not key_file.exists()
    # a gateway's pillar makes no key and gets none
    assert "saltcluster_munge" not in _compile(master_opts, "gateway", ["gateway"])
    assert not key_file.exists()
    first = _compile(master_opts, "node1", ["compute"])["saltcluster_munge"]["key"]
    assert key_file.stat().st_mode & 0o077 == 0 and key_file.stat().st_size == 128
    assert base64.b64decode(first) == key_file.read_bytes()
    # the same key for the master host, and next time
    assert _compile(master_opts, "master", ["master"])["saltcluster_munge"]["key"] == first
    assert _compile(master_opts, "node1", ["compute"])["saltcluster_munge"]["key"] == first
    assert list(key_file.parent.iterdir()) == [key_file]  # no temporary file left


@pytest.mark.parametrize(
    "minion_id,roles",
    [
        ("gateway", ["gateway"]),
        ("node3", ["compute"]),  # no accepted key
        ("node1", []),
        ("node1", {"compute": True}),
        ("../node1", ["compute"]),
    ],
)
def test_munge_key_goes_to_no_one_else(master_opts, minion_id, roles):
    assert "saltcluster_munge" not in _compile(master_opts, minion_id, roles)


def test_no_munge_key_where_no_master_compiles_the_pillar(salt_factories, tmp_path):
    """salt-call --local: the minion compiles its own pillar, there is no
    key store, and nothing is made."""
    conf = salt.utils.yaml.safe_load((REPO / "etc/salt/minion").read_text())
    conf.update(file_roots={"base": [str(REPO / "salt")]}, pillar_roots={"base": [str(REPO / "pillar")]})
    del conf["root_dir"]
    opts = salt_factories.salt_minion_daemon("munge-local", overrides=conf).config.copy()
    pillar = _compile(opts, "munge-local", conf["grains"]["roles"])
    assert "saltcluster_munge" not in pillar


# -- the epilog, for real (root: it runs as root and kills a scratch uid's processes)

EPILOG = REPO / "salt/cluster/files/slurm/epilog.sh"
# the epilog's own search path (slurmd gives it none)
EPILOG_PATH = "PATH=/usr/sbin:/usr/bin:/sbin:/bin"
SCRATCH_UID = 64125


def _start(job, uid=SCRATCH_UID):
    """A process of ``uid`` that carries SLURM_JOB_ID=``job`` (None: no job)."""
    env = {"PATH": "/usr/bin:/bin"}
    if job is not None:
        env["SLURM_JOB_ID"] = str(job)
    return subprocess.Popen(
        ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--", "sleep", "300"], env=env
    )


def _epilog(tmp_path, squeue_output=None):
    """Run the epilog for job 55 of SCRATCH_UID, with a fake squeue (None:
    squeue fails), found first on the epilog's own search path (a copy of
    it, that line alone changed)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    squeue = bin_dir / "squeue"
    if squeue_output is None:
        squeue.write_text("#!/bin/sh\nexit 1\n")
    else:
        squeue.write_text(f"#!/bin/sh\nprintf '%s\\n' {shlex.quote(squeue_output)}\n")
    squeue.chmod(0o755)
    lines = EPILOG.read_text().splitlines(keepends=True)
    assert lines.count(EPILOG_PATH + "\n") == 1
    script = tmp_path / "epilog"
    script.write_text("".join(f"PATH={bin_dir}:{line[len('PATH='):]}" if line == EPILOG_PATH + "\n" else line
                              for line in lines))  # fmt: skip
    env = {"SLURM_JOB_ID": "55", "SLURM_JOB_UID": str(SCRATCH_UID), "SLURM_JOB_USER": "scratch",
           "SLURMD_NODENAME": "node1"}  # fmt: skip
    return subprocess.run(["/bin/sh", str(script)], env=env, capture_output=True, text=True, timeout=60)


def _alive(proc):
    time.sleep(0.3)
    return proc.poll() is None


@pytest.fixture
def procs():
    started = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait()


needs_root = pytest.mark.skipif(os.geteuid() != 0 or sys.platform != "linux", reason="runs the epilog as root")


@needs_root
def test_epilog_kills_every_process_of_the_user_when_no_other_job_runs(tmp_path, procs):
    procs += [_start(55), _start(None)]
    time.sleep(0.3)
    ret = _epilog(tmp_path, squeue_output="55")
    assert ret.returncode == 0, ret.stderr
    assert not _alive(procs[0]) and not _alive(procs[1])


@needs_root
@pytest.mark.parametrize("why", ["process of another job", "squeue lists another job", "squeue fails"])
def test_epilog_kills_only_the_jobs_processes_while_another_job_runs(tmp_path, procs, why):
    procs += [_start(55), _start(None)]
    if why == "process of another job":
        procs.append(_start(56))
    time.sleep(0.3)
    squeue = {"process of another job": "", "squeue lists another job": "55\n57", "squeue fails": None}[why]
    ret = _epilog(tmp_path, squeue_output=squeue)
    assert ret.returncode == 0, ret.stderr
    assert not _alive(procs[0])
    assert all(_alive(p) for p in procs[1:])


def test_epilog_sets_its_search_path_before_any_command():
    """slurmd runs the epilog with no PATH: it sets its own, first."""
    code = [line for line in EPILOG.read_text().splitlines() if line.strip() and not line.startswith("#")]
    assert code[:2] == [EPILOG_PATH, "export PATH"], code[:3]


@needs_root
def test_epilog_works_whatever_search_path_it_is_given(tmp_path, procs):
    """Run as slurmd runs it, with a PATH that finds nothing (a shell with
    none at all falls back to a default of its own, which is not the
    epilog's choice): it still finds its tools and kills the job's rank."""
    procs.append(_start(55))
    time.sleep(0.3)
    env = {"PATH": str(tmp_path / "nothing"), "SLURM_JOB_ID": "55", "SLURM_JOB_UID": str(SCRATCH_UID)}
    ret = subprocess.run(["/bin/sh", str(EPILOG)], env=env, capture_output=True, text=True, timeout=60)
    assert ret.returncode == 0 and "not found" not in ret.stderr, ret.stderr
    assert not _alive(procs[0])


@needs_root
def test_epilog_never_touches_root_and_always_exits_0(tmp_path, procs):
    root_proc = subprocess.Popen(["sleep", "300"], env={"PATH": "/usr/bin:/bin", "SLURM_JOB_ID": "55"})
    procs.append(root_proc)
    env = {"PATH": "/usr/bin:/bin", "SLURM_JOB_ID": "55", "SLURM_JOB_UID": "0"}
    assert subprocess.run(["/bin/sh", str(EPILOG)], env=env, timeout=60).returncode == 0
    assert _alive(root_proc)
    for bad in ({"SLURM_JOB_ID": "x; reboot", "SLURM_JOB_UID": str(SCRATCH_UID)}, {}):
        ret = subprocess.run(["/bin/sh", str(EPILOG)], env={"PATH": "/usr/bin:/bin", **bad}, timeout=60)
        assert ret.returncode == 0
    assert _alive(root_proc)
