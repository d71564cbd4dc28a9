"""slurm_nodes: Slurm's view of the compute nodes following membership, against
a fake slurmctld (what scontrol and squeue answer), and the orchestration
steps that call it (rendered as the master renders them)."""

import copy
import re

import cluster
import mpi
import pytest
import salt.utils.yaml
import slurm_nodes
from salt.exceptions import CommandExecutionError, SaltInvocationError

# scontrol show node -o, as Slurm 24.11 prints a dynamic node (one line)
NODE1 = (
    "NodeName=node1 Arch=x86_64 CoresPerSocket=1 CPUAlloc=0 CPUEfctv=2 CPUTot=2 CPULoad=0.01 "
    "AvailableFeatures=compute ActiveFeatures=compute Gres=(null) NodeAddr=10.5.5.9 NodeHostName=node1 "
    "Version=24.11.5 OS=Linux 6.12.38 #1 SMP PREEMPT_DYNAMIC Debian 6.12.38-1 (2025-07-16) "
    "RealMemory=1 AllocMem=0 FreeMem=300 Sockets=2 Boards=1 State=IDLE+DYNAMIC_NORM ThreadsPerCore=1 "
    "TmpDisk=0 Weight=1 Owner=N/A MCS_label=N/A Partitions=batch BootTime=2025-11-27T05:00:00 "
    "SlurmdStartTime=2025-11-27T05:01:00 LastBusyTime=2025-11-27T05:01:00 ResumeAfterTime=None "
    "CfgTRES=cpu=2,mem=1M,billing=2 AllocTRES= CurrentWatts=0 AveWatts=0"
)


class FakeSlurm:
    """What scontrol, squeue and scancel answer (as Slurm 24.11 words its
    errors), and what they were asked."""

    def __init__(self):
        self.nodes = {}  # name -> {"State", "Reason", "CPUAlloc"}
        self.jobs = {}  # id -> {"node", "state", "batch"}; node None: waiting in the queue
        self.calls = []
        self.register_after = {}  # name -> polls until it shows up
        self.delete_refused = ""
        self.finish_after = None  # polls of squeue until the jobs end by themselves
        self.states_after = {}  # name -> the states it shows on the next looks, one per look
        # (command prefix, action): the action runs once, just before the
        # first command that starts so (another call at the same time)
        self.meanwhile = []
        self.deleted = []  # the nodes scontrol delete removed, once each time

    def requeue(self, job):
        """slurmctld puts a batch job back in the queue (it holds no node)."""
        self.jobs[job].update(node=None, state="PENDING")

    def add(self, name, state="IDLE+DYNAMIC_NORM", reason=None):
        self.nodes[name] = {"State": state, "Reason": reason, "CPUAlloc": "0"}

    def line(self, name):
        node = self.nodes[name]
        alloc = "2" if any(j["node"] == name for j in self.jobs.values()) else "0"
        text = NODE1.replace("node1", name).replace("State=IDLE+DYNAMIC_NORM", f"State={node['State']}")
        text = text.replace("CPUAlloc=0", f"CPUAlloc={alloc}")
        if node["Reason"]:
            text += f" Reason={node['Reason']} [root@2025-11-27T05:02:00]"
        return text

    def down(self, name, reason):
        self.nodes[name].update(State="DOWN+DYNAMIC_NORM", Reason=reason)
        # slurmctld ends a down node's jobs: batch ones are requeued, an
        # allocation ends
        for job in [j for j, v in self.jobs.items() if v["node"] == name]:
            if self.jobs[job]["batch"]:
                self.requeue(job)
            else:
                del self.jobs[job]

    def __call__(self, cmd, **kwargs):
        for prefix, action in list(self.meanwhile):
            if cmd[: len(prefix)] == list(prefix):
                self.meanwhile.remove((prefix, action))
                action()
        self.calls.append(list(cmd))
        assert kwargs.get("python_shell") is False and kwargs.get("timeout")
        ok = {"retcode": 0, "stdout": "", "stderr": ""}
        if cmd[:4] == ["scontrol", "show", "node", "-o"]:
            if len(cmd) == 4:
                return dict(ok, stdout="\n".join(self.line(n) for n in self.nodes))
            name = cmd[4]
            if self.register_after.get(name):
                self.register_after[name] -= 1
                if not self.register_after[name]:
                    self.add(name)
            if name not in self.nodes:
                return {"retcode": 1, "stdout": "", "stderr": f"Node {name} not found"}
            if self.states_after.get(name):
                self.nodes[name]["State"] = self.states_after[name].pop(0)
            return dict(ok, stdout=self.line(name) + "\n")
        if cmd[:2] == ["scontrol", "update"]:
            name = cmd[2].split("=", 1)[1]
            if name not in self.nodes:
                return {"retcode": 1, "stdout": "", "stderr": "slurm_update error: Invalid node name specified"}
            fields = dict(f.split("=", 1) for f in cmd[3:])
            node = self.nodes[name]
            if fields["state"] == "drain":
                node.update(State=node["State"] + "+DRAIN", Reason=fields["reason"])
            elif fields["state"] == "down":
                self.down(name, fields["reason"])
            elif fields["state"] == "resume":
                node.update(State="IDLE+DYNAMIC_NORM", Reason=None)
            return ok
        if cmd[:2] == ["scontrol", "requeue"]:
            job = self.jobs.get(cmd[2])
            if job is None:
                return {"retcode": 1, "stdout": "", "stderr": f"Requeue of JobId={cmd[2]} failed: Invalid job id"}
            if job["node"] is None:
                return {"retcode": 1, "stdout": "", "stderr": f"Requeue of JobId={cmd[2]} failed: Job is pending"}
            if not job["batch"]:
                return {"retcode": 1, "stdout": "", "stderr": "Only batch jobs are accepted or processed"}
            self.requeue(cmd[2])
            return ok
        if cmd[0] == "scancel":
            self.jobs.pop(cmd[1], None)
            return ok
        if cmd[:2] == ["scontrol", "delete"]:
            name = cmd[2].split("=", 1)[1]
            if name not in self.nodes:
                return {"retcode": 1, "stdout": "", "stderr": f"delete_node {cmd[2]}: Invalid node name specified"}
            if self.delete_refused or any(j["node"] == name for j in self.jobs.values()):
                return {"retcode": 1, "stdout": "", "stderr": self.delete_refused or "Node has running jobs"}
            del self.nodes[name]
            self.deleted.append(name)
            return ok
        if cmd[0] == "squeue":
            assert cmd[1:3] == ["--noheader", "--nodelist"] and cmd[4] == "--format=%i|%T"
            if cmd[3] not in self.nodes:
                # squeue checks the names it is given against slurmctld's nodes
                return {"retcode": 1, "stdout": "", "stderr": f"squeue: error: Invalid node name {cmd[3]}"}
            if self.finish_after is not None:
                self.finish_after -= 1
                if self.finish_after <= 0:
                    self.jobs.clear()
            rows = [f"{j}|{v['state']}" for j, v in self.jobs.items() if v["node"] == cmd[3]]
            return dict(ok, stdout="\n".join(rows))
        raise AssertionError(cmd)


    def asked(self, *prefix):
        return [c for c in self.calls if c[: len(prefix)] == list(prefix)]


class Clock:
    """time for slurm_nodes: sleep advances the monotonic clock at once."""

    def __init__(self):
        self.now = 1000.0
        self.slept = 0.0

    def monotonic(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds
        self.slept += seconds


@pytest.fixture
def slurm():
    return FakeSlurm()


@pytest.fixture(autouse=True)
def clock(monkeypatch):
    fake = Clock()
    monkeypatch.setattr(slurm_nodes, "time", fake)
    return fake


@pytest.fixture
def cfg(defaults_text):
    cfg = salt.utils.yaml.safe_load(defaults_text)["saltcluster"]
    cfg["scheduler"] = "slurm"
    return cluster.validate(cfg, grains={})


@pytest.fixture
def configure_loader_modules(cfg, slurm):
    def settings(cached=False):
        assert cached is True, "slurm_nodes read settings with a fileserver fetch"
        return copy.deepcopy(cfg)

    return {slurm_nodes: {"__salt__": {"cluster.settings": settings, "cmd.run_all": slurm}, "__context__": {}}}


# -- the settings (cluster.validate's table)


def test_defaults_keep_todays_behaviour_and_derive_the_jobs_dir(defaults_text):
    cfg = cluster.validate(salt.utils.yaml.safe_load(defaults_text)["saltcluster"], grains={})
    assert cfg["scheduler"] == "none"
    assert cfg["slurm"]["jobs_dir"] == "/home/jobhandler/jobs"


@pytest.mark.parametrize(
    "key,value,message",
    [
        ("scheduler", "slurmm", "scheduler: 'slurmm' is invalid: must be one of none, slurm"),
        ("scheduler", None, "scheduler: None is invalid: must be one of none, slurm"),
        ("slurm:cluster_name", "My Cluster", "slurm:cluster_name: 'My Cluster' is invalid: must be a Slurm cluster"),
        ("slurm:cluster_name", "c\n", "slurm:cluster_name: 'c\\n' is invalid"),
        ("slurm:partition", "a b", "slurm:partition: 'a b' is invalid: must be a Slurm partition name"),
        ("slurm:partition", "default", "slurm:partition: 'default' is invalid: is a word slurm.conf reserves"),
        ("slurm:leave_policy", "kill", "slurm:leave_policy: 'kill' is invalid: must be one of requeue, finish"),
        ("slurm:leave_timeout", -1, "slurm:leave_timeout: -1 is invalid: must be between 0 and 604800"),
        ("slurm:max_time", 0, "slurm:max_time: 0 is invalid: must be between 1 and 525600"),
        ("slurm:max_nodes", "64", "slurm:max_nodes: '64' is invalid: must be an integer"),
        ("slurm:jobs_dir", "jobs", "slurm:jobs_dir: 'jobs' is invalid: must be an absolute path"),
        ("slurm:jobs_dir", "/home/j obs", "slurm:jobs_dir: '/home/j obs' is invalid: must be named with letters"),
        ("slurm:max_output", 10, "slurm:max_output: 10 is invalid: must be between 1024 and 1073741824"),
        ("slurm:register_timeout", True, "slurm:register_timeout: True is invalid: must be an integer"),
        ("slurm:config_dir", "/etc/slurm/../x", "slurm:config_dir: '/etc/slurm/../x' is invalid: must be an absolute"),
        ("slurm:config_dir", "/etc/sl urm", "slurm:config_dir: '/etc/sl urm' is invalid: must be named with"),
        ("slurm:epilog", "/etc/slurm/epilog", "slurm:epilog: '/etc/slurm/epilog' is invalid: must be a plain file"),
        ("slurm:munge_key", "munge.key", "slurm:munge_key: 'munge.key' is invalid: must be an absolute path"),
        ("slurm:slurmd_dropin", "x.conf", "slurm:slurmd_dropin: 'x.conf' is invalid: must be an absolute path"),
        ("slurm:master_packages", "slurmctld", "slurm:master_packages: 'slurmctld' is invalid: must be a list"),
        ("slurm:compute_packages", [""], "slurm:compute_packages: [''] is invalid: must be a list"),
        ("slurm", None, "slurm: None is invalid: must be a mapping"),
    ],
)
def test_every_slurm_setting_is_checked_naming_key_and_value(defaults_text, key, value, message):
    cfg = salt.utils.yaml.safe_load(defaults_text)["saltcluster"]
    *path, leaf = key.split(":")
    parent = cfg
    for part in path:
        parent = parent[part]
    parent[leaf] = value
    with pytest.raises(CommandExecutionError) as exc:
        cluster.validate(cfg, grains={})
    assert str(exc.value).startswith("saltcluster:" + message), str(exc.value)


def test_a_cached_defaults_file_without_slurm_is_fetched_again(tmp_path, defaults_text, monkeypatch):
    """Modules synced, no state run since: the cached copy predates the
    slurm section (and the scheduler key)."""
    old = salt.utils.yaml.safe_load(defaults_text)
    del old["saltcluster"]["slurm"], old["saltcluster"]["scheduler"]
    cached = tmp_path / "defaults.yaml"
    cached.write_text(salt.utils.yaml.safe_dump(old))
    fetched = []

    def get_file_str(url):
        fetched.append(url)
        return defaults_text

    salt_fns = {"cp.is_cached": lambda url: str(cached), "cp.get_file_str": get_file_str,
                "pillar.get": lambda key, default=None, unmask=False: {}}  # fmt: skip
    for name, value in (("__salt__", salt_fns), ("__context__", {}), ("__grains__", {}), ("__opts__", {})):
        monkeypatch.setattr(cluster, name, value, raising=False)
    assert cluster.settings(cached=True)["scheduler"] == "none" and fetched == [cluster.DEFAULTS_URL]


# -- reading Slurm


def test_the_node_name_rule_is_mpi_runs():
    assert slurm_nodes.HOST_RE.pattern == mpi.HOST_RE.pattern


def test_virtual_explains_a_missing_scontrol(monkeypatch):
    monkeypatch.setattr(slurm_nodes.salt.utils.path, "which", lambda name: None)
    ok, why = slurm_nodes.__virtual__()
    assert ok is False and "scontrol not found" in why and "cluster.slurm" in why


def test_records_keep_values_with_spaces():
    stamped = " Reason=saltcluster: health checks failing [root@2025-11-27T05:02:00]"
    (record,) = slurm_nodes.parse_records(NODE1 + stamped)
    assert record["NodeName"] == "node1" and record["State"] == "IDLE+DYNAMIC_NORM"
    assert record["OS"] == "Linux 6.12.38 #1 SMP PREEMPT_DYNAMIC Debian 6.12.38-1 (2025-07-16)"
    assert record["Reason"] == "saltcluster: health checks failing [root@2025-11-27T05:02:00]"
    assert record["AllocTRES"] == ""
    assert slurm_nodes.parse_records("\n\n") == []


def test_nodes_as_data(slurm):
    slurm.add("node1")
    slurm.add("node2", state="IDLE+DRAIN+DYNAMIC_NORM", reason="saltcluster: health checks failing")
    found = slurm_nodes.nodes()
    assert found[0] == {
        "name": "node1", "state": "IDLE", "flags": ["DYNAMIC_NORM"], "cpus": 2, "alloc_cpus": 0,
        "features": ["compute"], "reason": "", "address": "10.5.5.9",
    }  # fmt: skip
    assert found[1]["flags"] == ["DRAIN", "DYNAMIC_NORM"]
    assert found[1]["reason"] == "saltcluster: health checks failing"  # the [user@time] stamp dropped


def test_show_of_an_unknown_node_is_none(slurm):
    assert slurm_nodes.show("node9") is None


@pytest.mark.parametrize(
    "node",
    ["", "node1,node2", "node[1-2]", "-h", "node1 node2", "node1\n", "nodename=x", "a/b", None, True, ["node1"]],
)
@pytest.mark.parametrize("function", ["show", "jobs_on", "admit", "leave", "lost"])
def test_bad_node_names_are_refused_naming_them_before_slurm_is_asked(slurm, node, function):
    with pytest.raises(SaltInvocationError) as exc:
        getattr(slurm_nodes, function)(node)
    assert str(exc.value) == f"slurm_nodes: node {node!r} is not a host name"
    assert slurm.calls == []


def test_follow_health_refuses_an_unknown_state_before_slurm_is_asked(slurm):
    with pytest.raises(SaltInvocationError, match="state='sick' must be joining, serving or drained"):
        slurm_nodes.follow_health("node1", "sick")
    assert slurm.calls == []


@pytest.mark.parametrize("policy", ["", "kill", "REQUEUE", "requeue\n"])
def test_leave_refuses_an_unknown_policy_before_slurm_is_asked(slurm, policy):
    with pytest.raises(SaltInvocationError, match=re.escape(f"policy={policy!r} must be one of requeue, finish")):
        slurm_nodes.leave("node1", policy=policy)
    assert slurm.calls == []


@pytest.mark.parametrize("timeout", [-1, True, "10", float("inf"), 10**9])
def test_bad_timeouts_are_refused_before_slurm_is_asked(slurm, timeout):
    with pytest.raises(SaltInvocationError, match="timeout="):
        slurm_nodes.admit("node1", timeout=timeout)
    with pytest.raises(SaltInvocationError, match="timeout="):
        slurm_nodes.leave("node1", timeout=timeout)
    assert slurm.calls == []


def test_jobs_on_a_node(slurm):
    slurm.add("node1")
    slurm.jobs = {"12": {"node": "node1", "state": "RUNNING", "batch": True},
                  "13": {"node": "node2", "state": "RUNNING", "batch": True}}  # fmt: skip
    assert slurm_nodes.jobs_on("node1") == [{"id": "12", "state": "RUNNING"}]


def test_a_failing_scontrol_is_an_error_not_an_empty_cluster(slurm):
    slurm_nodes.__salt__["cmd.run_all"] = lambda cmd, **kw: {
        "retcode": 1, "stdout": "", "stderr": "slurm_load_node error: Unable to contact slurm controller"
    }  # fmt: skip
    with pytest.raises(CommandExecutionError, match="Unable to contact slurm controller"):
        slurm_nodes.nodes()
    with pytest.raises(CommandExecutionError, match="Unable to contact"):
        slurm_nodes.show("node1")


# -- join


def test_admit_waits_for_the_node_to_register(slurm, clock):
    slurm.register_after["node3"] = 3
    ret = slurm_nodes.admit("node3")
    assert ret["result"] is True and ret["state"] == "IDLE+DYNAMIC_NORM" and ret["changes"] == {}
    assert clock.slept > 0
    assert slurm.asked("scontrol", "update") == []


def test_admit_fails_when_the_node_never_registers(slurm, clock):
    ret = slurm_nodes.admit("node3", timeout=10)
    assert ret["result"] is False and "did not register with slurmctld within 10 s" in ret["comment"]
    assert slurm_nodes.__context__["retcode"] == 1
    assert 10 <= clock.now - 1000 <= 10 + slurm_nodes.POLL


def _unreachable_for(slurm, times):
    """slurmctld does not answer the next ``times`` scontrol questions."""
    answer = slurm_nodes.__salt__["cmd.run_all"]
    left = {"n": times}

    def flaky(cmd, **kwargs):
        if left["n"] > 0 and cmd[0] == "scontrol":
            left["n"] -= 1
            return {"retcode": 1, "stdout": "", "stderr": "slurm_load_node error: Unable to contact slurm controller"}
        return answer(cmd, **kwargs)

    slurm_nodes.__salt__["cmd.run_all"] = flaky


def test_admit_waits_through_a_moment_slurmctld_does_not_answer(slurm, clock):
    slurm.add("node3")
    _unreachable_for(slurm, 2)
    ret = slurm_nodes.admit("node3")
    assert ret["result"] is True and ret["state"] == "IDLE+DYNAMIC_NORM"
    assert clock.slept == 2 * slurm_nodes.POLL


def test_admit_raises_slurmctld_s_error_when_it_never_answers(slurm, clock):
    slurm.add("node3")
    _unreachable_for(slurm, 10**6)
    with pytest.raises(CommandExecutionError, match="Unable to contact slurm controller"):
        slurm_nodes.admit("node3", timeout=10)
    assert 10 <= clock.now - 1000 <= 10 + slurm_nodes.POLL


@pytest.mark.parametrize(
    "state,reason",
    [
        ("IDLE+DRAIN+DYNAMIC_NORM", slurm_nodes.REASON_LEAVING),
        ("DOWN+DYNAMIC_NORM", slurm_nodes.REASON_LOST),
        ("IDLE+DRAIN+DYNAMIC_NORM", slurm_nodes.REASON_HEALTH),
    ],
)
def test_a_rejoining_node_saltcluster_had_set_aside_is_resumed(slurm, state, reason):
    slurm.add("node3", state=state, reason=reason)
    ret = slurm_nodes.admit("node3")
    assert ret["result"] is True and ret["changes"]["reason"] == reason
    assert slurm.asked("scontrol", "update") == [["scontrol", "update", "nodename=node3", "state=resume"]]


@pytest.mark.parametrize(
    "state,reason,named",
    [
        # an operator's drain stays, and the join is not done
        ("IDLE+DRAIN+DYNAMIC_NORM", "disk replacement", "IDLE+DRAIN+DYNAMIC_NORM (reason: disk replacement)"),
        ("DOWN+DYNAMIC_NORM", "Not responding", "DOWN+DYNAMIC_NORM (reason: Not responding)"),
        # Slurm refused its registration: fewer CPUs than its slurmd claimed
        ("DOWN+DRAIN+DYNAMIC_NORM+INVALID_REG", "Low CPUs", "DOWN+DRAIN+DYNAMIC_NORM+INVALID_REG (reason: Low CPUs)"),
        # even with a reason of saltcluster's: resuming cannot fix that
        ("IDLE+DYNAMIC_NORM+INVALID_REG", slurm_nodes.REASON_LOST, "+INVALID_REG (reason: saltcluster: lost"),
        ("INVALID+DYNAMIC_NORM", None, "INVALID+DYNAMIC_NORM (reason: none given)"),
        ("IDLE+DYNAMIC_NORM+FAIL", "failed by an operator", "IDLE+DYNAMIC_NORM+FAIL (reason: failed by an operator)"),
    ],
)
def test_a_node_slurm_cannot_use_fails_the_join_naming_state_and_reason(slurm, clock, state, reason, named):
    """The join is then not recorded (orch.join's record requires admit)."""
    slurm.add("node3", state=state, reason=reason)
    ret = slurm_nodes.admit("node3")
    assert ret["result"] is False, ret
    assert "node3 is registered but Slurm cannot use it" in ret["comment"] and named in ret["comment"], ret
    assert slurm_nodes.__context__["retcode"] == 1
    assert slurm.asked("scontrol", "update") == []  # left as it is
    assert clock.slept == 0  # said at once: waiting would not change it


def test_admit_waits_out_a_passing_state_within_its_bound(slurm, clock):
    slurm.add("node3", state="IDLE+DYNAMIC_NORM+NOT_RESPONDING")
    slurm.states_after["node3"] = ["IDLE+DYNAMIC_NORM+NOT_RESPONDING"] * 3 + ["IDLE+DYNAMIC_NORM"]
    ret = slurm_nodes.admit("node3", timeout=30)
    assert ret["result"] is True and ret["state"] == "IDLE+DYNAMIC_NORM", ret
    assert 0 < clock.slept < 30


def test_admit_fails_when_the_node_stays_unusable_to_the_end_of_its_bound(slurm, clock):
    slurm.add("node3", state="UNKNOWN+DYNAMIC_NORM+NOT_RESPONDING")
    ret = slurm_nodes.admit("node3", timeout=20)
    assert ret["result"] is False and "UNKNOWN+DYNAMIC_NORM+NOT_RESPONDING (reason: none given)" in ret["comment"]
    assert 20 <= clock.now - 1000 <= 20 + slurm_nodes.POLL  # one bound for registering and settling


def test_a_resumed_node_slurm_still_cannot_use_fails_the_join(slurm, clock):
    slurm.add("node3", state="DOWN+DYNAMIC_NORM", reason=slurm_nodes.REASON_LOST)
    # resumed, then Slurm refuses what its slurmd registers
    slurm.states_after["node3"] = ["DOWN+DYNAMIC_NORM", "DOWN+DYNAMIC_NORM+INVALID_REG"]
    ret = slurm_nodes.admit("node3", timeout=60)
    assert ret["result"] is False and "DOWN+DYNAMIC_NORM+INVALID_REG" in ret["comment"], ret
    assert ret["changes"]["reason"] == slurm_nodes.REASON_LOST  # what it did is still said


@pytest.mark.parametrize("state", ["MIXED+DYNAMIC_NORM", "ALLOCATED+DYNAMIC_NORM", "IDLE+DYNAMIC_NORM+RESERVED"])
def test_a_node_running_jobs_is_usable(slurm, state):
    slurm.add("node3", state=state)
    assert slurm_nodes.admit("node3")["result"] is True


# -- leave and death


def test_leave_requeue_drains_requeues_and_deletes(slurm):
    slurm.add("node3")
    slurm.jobs = {"21": {"node": "node3", "state": "RUNNING", "batch": True},
                  "22": {"node": "node3", "state": "RUNNING", "batch": False},
                  "23": {"node": "node1", "state": "RUNNING", "batch": True}}  # fmt: skip
    ret = slurm_nodes.leave("node3", policy="requeue")
    assert ret["result"] is True, ret
    assert ret["changes"] == {"drained": slurm_nodes.REASON_LEAVING, "jobs": {"21": "requeued", "22": "cancelled"},
                              "deleted": "node3"}  # fmt: skip
    assert slurm.asked("scontrol", "update")[0] == [
        "scontrol", "update", "nodename=node3", "state=drain", f"reason={slurm_nodes.REASON_LEAVING}"
    ]  # fmt: skip
    # drained before anything else was done to it
    first = slurm.calls.index(slurm.asked("scontrol", "update")[0])
    assert first < slurm.calls.index(["scontrol", "requeue", "21"])
    assert "node3" not in slurm.nodes and "23" in slurm.jobs


def test_leave_finish_lets_jobs_end_then_deletes(slurm, clock):
    slurm.add("node3")
    slurm.jobs = {"31": {"node": "node3", "state": "RUNNING", "batch": True}}
    slurm.finish_after = 4
    ret = slurm_nodes.leave("node3", policy="finish", timeout=600)
    assert ret["result"] is True and "jobs" not in ret["changes"] and ret["changes"]["deleted"] == "node3"
    assert slurm.asked("scontrol", "requeue") == [] and clock.slept < 600


def test_leave_finish_requeues_what_still_runs_after_the_timeout(slurm, clock):
    slurm.add("node3")
    slurm.jobs = {"41": {"node": "node3", "state": "RUNNING", "batch": True}}
    ret = slurm_nodes.leave("node3", policy="finish", timeout=30)
    assert ret["changes"]["jobs"] == {"41": "requeued"} and ret["result"] is True
    assert 30 <= clock.slept <= 30 + 2 * slurm_nodes.POLL


def test_leave_takes_the_policy_from_the_settings(slurm, cfg, clock):
    cfg["slurm"].update(leave_policy="finish", leave_timeout=20)
    slurm.add("node3")
    slurm.jobs = {"51": {"node": "node3", "state": "RUNNING", "batch": True}}
    ret = slurm_nodes.leave("node3")
    assert ret["changes"]["jobs"] == {"51": "requeued"} and clock.slept >= 20


def test_leave_of_a_node_slurm_does_not_know_does_nothing(slurm):
    ret = slurm_nodes.leave("node9")
    assert ret["result"] is True and "not a Slurm node" in ret["comment"]
    assert slurm.asked("scontrol", "update") == [] and slurm.asked("scontrol", "delete") == []


def test_a_refused_delete_fails_the_step_saying_why(slurm):
    slurm.add("node3")
    slurm.delete_refused = "Node node3 is part of a reservation"
    ret = slurm_nodes.leave("node3")
    assert ret["result"] is False and "part of a reservation" in ret["comment"]
    assert slurm_nodes.__context__["retcode"] == 1


def test_lost_marks_down_at_once_then_deletes(slurm, clock):
    slurm.add("node4", state="ALLOCATED+DYNAMIC_NORM")
    slurm.jobs = {"61": {"node": "node4", "state": "RUNNING", "batch": True}}
    ret = slurm_nodes.lost("node4")
    assert ret["result"] is True and ret["changes"] == {"down": slurm_nodes.REASON_LOST, "deleted": "node4"}
    assert slurm.asked("scontrol", "update") == [
        ["scontrol", "update", "nodename=node4", "state=down", f"reason={slurm_nodes.REASON_LOST}"]
    ]
    assert clock.slept == 0  # no waiting for SlurmdTimeout: down now


def test_lost_of_an_unknown_node_does_nothing(slurm):
    assert "not a Slurm node" in slurm_nodes.lost("node9")["comment"]
    assert slurm.asked("scontrol", "update") == []


# -- a leave and a loss of the same node at once (the lab's clean leave powers
# the node off before its key is deleted: the master may see both)


def _deleted_by_the_other(slurm, name):
    """What the other call did, all of it: down (its batch jobs requeued),
    then deleted."""

    def act():
        slurm.down(name, slurm_nodes.REASON_LOST)
        del slurm.nodes[name]
        slurm.deleted.append(name)

    return act


@pytest.mark.parametrize(
    "function,moment",
    [
        ("leave", ("scontrol", "update")),  # between show() and the drain
        ("leave", ("squeue",)),  # between the drain and the jobs on it
        ("leave", ("scontrol", "requeue")),  # while its jobs are ended
        ("leave", ("scontrol", "delete")),  # between the settled jobs and the delete
        ("lost", ("scontrol", "update")),  # between show() and the down
        ("lost", ("squeue",)),
        ("lost", ("scontrol", "delete")),
    ],
    ids=lambda v: "-".join(v) if isinstance(v, tuple) else v,
)
@pytest.mark.parametrize("policy", ["requeue", "finish"])
def test_a_node_removed_meanwhile_counts_as_done(slurm, cfg, clock, function, moment, policy):
    cfg["slurm"]["leave_policy"] = policy
    slurm.add("node3", state="ALLOCATED+DYNAMIC_NORM")
    slurm.jobs = {"21": {"node": "node3", "state": "RUNNING", "batch": True},
                  "23": {"node": "node1", "state": "RUNNING", "batch": True}}  # fmt: skip
    slurm.meanwhile.append((moment, _deleted_by_the_other(slurm, "node3")))
    ret = getattr(slurm_nodes, function)("node3")
    assert ret["result"] is True, ret
    assert "deleted" not in ret["changes"] and "removed from Slurm meanwhile" in ret["comment"], ret
    assert "retcode" not in slurm_nodes.__context__
    assert slurm.deleted == ["node3"]  # once, by the other
    # the job the other requeued waits in the queue: never cancelled
    assert slurm.jobs["21"] == {"node": None, "state": "PENDING", "batch": True} and slurm.asked("scancel") == []
    assert slurm.jobs["23"]["state"] == "RUNNING"


def test_a_loss_while_the_leave_ends_its_jobs_deletes_the_node_once(slurm):
    """slurm_nodes.lost of node3 runs whole while slurm_nodes.leave of node3
    is requeueing its jobs: one deletes it, the other finds it done; the
    batch job the loss requeued stays queued, the allocation ends."""
    slurm.add("node3", state="ALLOCATED+DYNAMIC_NORM")
    slurm.jobs = {"21": {"node": "node3", "state": "RUNNING", "batch": True},
                  "22": {"node": "node3", "state": "RUNNING", "batch": False}}  # fmt: skip
    seen = {}
    slurm.meanwhile.append((("scontrol", "requeue"), lambda: seen.update(lost=slurm_nodes.lost("node3"))))
    ret = slurm_nodes.leave("node3", policy="requeue")
    assert seen["lost"]["result"] is True and seen["lost"]["changes"]["deleted"] == "node3", seen
    assert ret["result"] is True and "deleted" not in ret["changes"], ret
    assert ret["changes"]["jobs"] == {"21": "already off the node", "22": "already off the node"}
    assert slurm.deleted == ["node3"] and slurm.asked("scancel") == []
    assert slurm.jobs == {"21": {"node": None, "state": "PENDING", "batch": True}}


def test_a_leave_while_the_loss_waits_for_the_jobs_deletes_the_node_once(slurm):
    slurm.add("node4", state="ALLOCATED+DYNAMIC_NORM")
    slurm.jobs = {"31": {"node": "node4", "state": "RUNNING", "batch": True}}
    seen = {}
    slurm.meanwhile.append((("squeue",), lambda: seen.update(leave=slurm_nodes.leave("node4"))))
    ret = slurm_nodes.lost("node4")
    assert seen["leave"]["result"] is True and seen["leave"]["changes"]["deleted"] == "node4", seen
    assert ret["result"] is True and ret["changes"] == {"down": slurm_nodes.REASON_LOST}, ret
    assert slurm.deleted == ["node4"]


@pytest.mark.parametrize("function", ["leave", "lost"])
def test_a_failure_that_is_not_a_vanished_node_is_still_an_error(slurm, function):
    """The node is still listed: a refused update is an error, not "done"."""
    slurm.add("node3")
    real = slurm.__call__

    def refuse_updates(cmd, **kwargs):
        if cmd[:2] == ["scontrol", "update"]:
            slurm.calls.append(list(cmd))
            return {"retcode": 1, "stdout": "", "stderr": "slurm_update error: Access/permission denied"}
        return real(cmd, **kwargs)

    slurm_nodes.__salt__["cmd.run_all"] = refuse_updates
    with pytest.raises(CommandExecutionError, match="Access/permission denied"):
        getattr(slurm_nodes, function)("node3")
    assert slurm.deleted == []


# -- health


def test_a_drained_claim_drains_in_slurm(slurm):
    slurm.add("node2")
    ret = slurm_nodes.follow_health("node2", "drained")
    assert ret["changes"] == {"drained": slurm_nodes.REASON_HEALTH}
    assert slurm.nodes["node2"]["State"].endswith("+DRAIN")
    # the same claim again changes nothing
    assert slurm_nodes.follow_health("node2", "drained")["changes"] == {}


def test_serving_again_resumes_only_a_health_drain(slurm):
    slurm.add("node2", state="IDLE+DRAIN+DYNAMIC_NORM", reason=slurm_nodes.REASON_HEALTH)
    slurm.add("node3", state="IDLE+DRAIN+DYNAMIC_NORM", reason="an operator's")
    assert slurm_nodes.follow_health("node2", "serving")["changes"] == {"resumed": slurm_nodes.REASON_HEALTH}
    assert slurm_nodes.follow_health("node3", "serving")["changes"] == {}
    assert "DRAIN" in slurm.nodes["node3"]["State"].split("+")


def test_health_of_a_node_slurm_does_not_know_does_nothing(slurm):
    assert slurm_nodes.follow_health("node9", "drained")["changes"] == {}
    assert slurm.asked("scontrol", "update") == []


# -- the orchestrations' Slurm steps (rendered as the master renders them)

from tests.unit.orch.test_orch import JOIN_STEPS, FakeMaster, _arg, acting  # noqa: E402
from tests.unit.orch.test_orch import claim as health_claim  # noqa: E402


@pytest.fixture
def master(tmp_path):
    fake = FakeMaster(tmp_path)
    fake.pillar["saltcluster"]["scheduler"] = "slurm"
    return fake


def test_join_admits_the_node_in_slurm_after_membership(master):
    master.alive.append("node3")
    states = acting(master.render("join.sls", {"saltcluster_join": "node3"}))
    assert sorted(states) == sorted([*JOIN_STEPS, "saltcluster-orch-join-slurm-register",
                                     "saltcluster-orch-join-slurm-admit"])  # fmt: skip
    # the node's slurmd registers it again (a reboot's loss may have deleted it)
    fun, args = states["saltcluster-orch-join-slurm-register"]
    assert (fun, _arg(args, "name"), _arg(args, "tgt"), _arg(args, "arg")) == (
        "salt.function", "service.restart", "node3", ["slurmd"])
    assert _arg(args, "require") == [{"cluster_orch": "saltcluster-orch-join-membership"}]
    fun, args = states["saltcluster-orch-join-slurm-admit"]
    assert (fun, _arg(args, "name"), _arg(args, "kwarg")) == ("salt.function", "slurm_nodes.admit", {"node": "node3"})
    assert (_arg(args, "tgt"), _arg(args, "tgt_type")) == ("G@roles:master", "compound")
    assert _arg(args, "require") == [{"salt": "saltcluster-orch-join-slurm-register"}]
    assert _arg(args, "timeout") == 120 + 60  # slurm:register_timeout, and the return's way back
    # the join is recorded only once Slurm lists the node; a failure unlocks
    assert {"salt": "saltcluster-orch-join-slurm-admit"} in _arg(states["saltcluster-orch-join-record"][1], "require")
    onfail = _arg(states["saltcluster-orch-join-unlock-after-failure"][1], "onfail")
    assert {"salt": "saltcluster-orch-join-slurm-admit"} in onfail
    assert {"salt": "saltcluster-orch-join-slurm-register"} in onfail


@pytest.mark.parametrize("host", ["gateway", "master"])
def test_a_host_without_the_compute_role_joins_without_slurm_steps(master, host):
    """A gateway reboot or the master's own salt-minion restarting joins
    again: it runs no slurmd, so restarting one or waiting for it to
    register would fail the join (and every later one)."""
    states = acting(master.render("join.sls", {"saltcluster_join": host}))
    assert sorted(states) == sorted(JOIN_STEPS)
    assert ("publish", host, ["grains.item", "file.read"]) in master.calls


def test_without_slurm_the_orchestrations_have_no_slurm_step(master):
    master.pillar["saltcluster"]["scheduler"] = "none"
    master.alive.append("node3")
    assert not [s for s in acting(master.render("join.sls", {"saltcluster_join": "node3"})) if "slurm" in s]
    master.alive.remove("node2")
    gone = master.render("leave.sls", {"saltcluster_gone": ["node2"], "saltcluster_leave_event": "presence"})
    assert gone and not [s for s in acting(gone) if "slurm" in s]
    master.mine["node2"]["saltcluster_health"] = health_claim("drained")
    assert not [s for s in acting(master.render("health.sls", {"saltcluster_health_node": "node2"})) if "slurm" in s]


@pytest.mark.parametrize("event,function,timeout", [("key", "slurm_nodes.leave", 300 + 180),
                                                    ("presence", "slurm_nodes.lost", 180)])  # fmt: skip
def test_a_node_that_leaves_or_dies_leaves_slurm(master, event, function, timeout):
    if event == "key":
        master.accepted.remove("node2")
    else:
        master.alive.remove("node2")
    states = acting(master.render("leave.sls", {"saltcluster_gone": ["node2"], "saltcluster_leave_event": event}))
    fun, args = states["saltcluster-orch-leave-slurm-node2"]
    assert (fun, _arg(args, "name"), _arg(args, "kwarg")) == ("salt.function", function, {"node": "node2"})
    assert _arg(args, "tgt") == "G@roles:master and not L@node2" and _arg(args, "timeout") == timeout
    # needs nothing: Slurm follows even when a membership run failed
    assert not any(isinstance(a, dict) and "require" in a for a in args)


def _run_slurm_step(states, node):
    """Run the orchestration's Slurm step for ``node`` as salt.function
    would on the master: its function with its kwarg."""
    fun, args = states[f"saltcluster-orch-leave-slurm-{node}"]
    assert fun == "salt.function"
    return getattr(slurm_nodes, _arg(args, "name").split(".", 1)[1])(**_arg(args, "kwarg"))


def test_a_clean_leave_seen_first_as_a_loss_then_as_a_key_delete_leaves_slurm_once(master, slurm):
    """ops.leave powers node2 off, then deletes its key: the presence loss
    may reach orch.leave first (slurm_nodes.lost deletes it), then the key
    delete (slurm_nodes.leave finds nothing to do): removed once, no step
    fails."""
    slurm.add("node2")
    master.alive.remove("node2")
    first = acting(master.render("leave.sls", {"saltcluster_gone": ["node2"], "saltcluster_leave_event": "presence"}))
    ret = _run_slurm_step(first, "node2")
    assert ret["result"] is True and ret["changes"]["deleted"] == "node2", ret
    # that orchestration forgot node2's mine data; then the key goes
    del master.mine["node2"]
    master.accepted.remove("node2")
    second = acting(master.render("leave.sls", {"saltcluster_gone": ["node2"], "saltcluster_leave_event": "key"}))
    ret = _run_slurm_step(second, "node2")
    assert ret["result"] is True and ret["changes"] == {} and "not a Slurm node" in ret["comment"], ret
    assert slurm.deleted == ["node2"] and "retcode" not in slurm_nodes.__context__


def test_a_clean_leave_seen_first_as_a_key_delete_leaves_slurm_once(master, slurm):
    """The key delete first (slurm_nodes.leave drains and deletes node2);
    the presence loss after it renders no step (no accepted key)."""
    slurm.add("node2")
    master.alive.remove("node2")
    master.accepted.remove("node2")
    first = acting(master.render("leave.sls", {"saltcluster_gone": ["node2"], "saltcluster_leave_event": "key"}))
    ret = _run_slurm_step(first, "node2")
    assert ret["result"] is True and ret["changes"]["deleted"] == "node2", ret
    del master.mine["node2"]
    high = master.render("leave.sls", {"saltcluster_gone": ["node2"], "saltcluster_leave_event": "presence"})
    assert acting(high) == {}
    assert slurm.deleted == ["node2"] and "retcode" not in slurm_nodes.__context__


def test_a_leave_the_master_cannot_confirm_touches_no_slurm_node(master):
    """node1 is connected: a forged loss evicts nobody, in Slurm neither."""
    states = acting(master.render("leave.sls", {"saltcluster_gone": ["node1"], "saltcluster_leave_event": "presence"}))
    assert states == {}


def test_a_drained_claim_drains_the_node_in_slurm(master):
    master.mine["node2"]["saltcluster_health"] = health_claim("drained")
    states = acting(master.render("health.sls", {"saltcluster_health_node": "node2"}))
    fun, args = states["saltcluster-orch-health-slurm"]
    assert (fun, _arg(args, "name")) == ("salt.function", "slurm_nodes.follow_health")
    assert _arg(args, "kwarg") == {"node": "node2", "state": "drained"} and _arg(args, "tgt") == "G@roles:master"
    assert "saltcluster-orch-health-slurm-node" not in states
    # the claim is recorded as followed only once Slurm followed it: a failed
    # follow_health is tried again by the next event with the same claim
    assert {"salt": "saltcluster-orch-health-slurm"} in _arg(states["saltcluster-orch-health-record"][1], "require")


def test_serving_again_starts_slurmd_if_needed_and_resumes(master):
    master.mine["node2"]["saltcluster_health"] = health_claim("serving")
    states = acting(master.render("health.sls", {"saltcluster_health_node": "node2"}))
    fun, args = states["saltcluster-orch-health-slurm-node"]
    assert (fun, _arg(args, "tgt"), _arg(args, "sls")) == (
        "cluster_orch.state", "node2", "cluster.slurm"
    )  # fmt: skip
    assert _arg(states["saltcluster-orch-health-slurm"][1], "kwarg") == {"node": "node2", "state": "serving"}
    needs = _arg(states["saltcluster-orch-health-record"][1], "require")
    assert {"salt": "saltcluster-orch-health-slurm"} in needs and {"cluster_orch": "saltcluster-orch-health-slurm-node"} in needs
