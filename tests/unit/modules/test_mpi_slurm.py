"""mpi with saltcluster:scheduler: slurm: mpi.submit, mpi.jobs, mpi.cancel,
mpi.output, and mpi.run inside a Slurm allocation; every refusal before
anything starts, and the clear error when the cluster has no queue."""

import copy
import errno
import os
import pwd
import re

import cluster
import mpi
import pytest
import salt.utils.yaml
from salt.exceptions import CommandExecutionError, SaltInvocationError

# the MPI user's uid in these tests (files in the jobs directory are chowned
# to it: the tests run as root)
UID = 64123


@pytest.fixture
def home(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for prog in ("cpi", "hellow"):
        (bin_dir / prog).write_text("#!/bin/sh\n")
        (bin_dir / prog).chmod(0o755)
    (tmp_path / "hosts").write_text("node1:2\nnode2:2\n")
    (tmp_path / "jobs").mkdir()
    return tmp_path


@pytest.fixture
def scheduler():
    return "slurm"


@pytest.fixture
def cfg(defaults_text, home, scheduler):
    cfg = salt.utils.yaml.safe_load(defaults_text)["saltcluster"]
    cfg["user"]["home"] = str(home)
    cfg["mpi"].update(hostfile=str(home / "hosts"), bin_dir=str(home / "bin"), src_dir=str(home / "src"))
    cfg["mpi"]["ucx_net_device"] = "vec0"
    cfg["scheduler"] = scheduler
    grains = {"os": "Debian", "osmajorrelease": 13, "oscodename": "trixie"}
    return cluster.validate(cfg, grains=grains)


@pytest.fixture(autouse=True)
def tools(monkeypatch):
    """Slurm's and MPICH's programs exist here (whatever this host has)."""
    missing = set()
    monkeypatch.setattr(mpi, "_executable", lambda path: path not in missing)
    monkeypatch.setattr(mpi.salt.utils.path, "which", lambda name: None if name in missing else f"/usr/bin/{name}")
    return missing


@pytest.fixture(autouse=True)
def mpi_user(monkeypatch):
    entry = pwd.struct_passwd(("jobhandler", "x", UID, 1100, "", "/home/jobhandler", "/bin/bash"))

    def getpwnam(name):
        if name != "jobhandler":
            raise KeyError(name)
        return entry

    monkeypatch.setattr(mpi.pwd, "getpwnam", getpwnam)
    return entry


class FakeSlurm:
    """sbatch, squeue and scancel as the MPI user sees them (through
    cmd.run_all, behind setpriv), and mpi.run's salloc (through the bounded
    runner)."""

    def __init__(self):
        self.calls = []
        self.queue = []  # squeue's rows, as text
        self.sbatch = {"retcode": 0, "stdout": "17\n", "stderr": ""}
        self.scancel = {"retcode": 0, "stdout": "", "stderr": ""}
        self.squeue_fails = ""
        self.squeue_failures = []  # errors the next squeue calls answer, one each
        self.gone_after = 0  # squeue calls after scancel until the job is gone
        self.salloc = {
            "retcode": 0, "stdout": "pi is approximately 3.14", "pid": 4242, "timed_out": False,
            "stderr": "salloc: Pending job allocation 41\nsalloc: Granted job allocation 41\n"
                      "salloc: Relinquishing job allocation 41",
            "output_cut": {"stdout": 0, "stderr": 0},
        }  # fmt: skip

    def run_all(self, cmd, **kwargs):
        assert cmd[0] == "setpriv" and cmd[1] == f"--reuid={UID}" and kwargs["python_shell"] is False
        tool = cmd[cmd.index("--") + 1 :]
        self.calls.append(tool)
        name = os.path.basename(tool[0])
        if name == "sbatch":
            return dict(self.sbatch)
        if name == "scancel":
            return dict(self.scancel)
        if name == "squeue":
            if self.squeue_fails:
                return {"retcode": 1, "stdout": "", "stderr": self.squeue_fails}
            if self.squeue_failures:
                return {"retcode": 1, "stdout": "", "stderr": self.squeue_failures.pop(0)}
            if any(a.startswith("--jobs=") for a in tool):
                if self.gone_after <= 0:
                    return {"retcode": 1, "stdout": "", "stderr": "slurm_load_jobs error: Invalid job id specified"}
                self.gone_after -= 1
            return {"retcode": 0, "stdout": "\n".join(self.queue), "stderr": ""}
        raise AssertionError(tool)

    def bounded(self, argv, **kwargs):
        self.calls.append(argv[argv.index("--") + 1 :])
        self.bounded_env = kwargs["env"]
        return dict(self.salloc)

    def ran(self, name):
        return [c for c in self.calls if os.path.basename(c[0]) == name]


@pytest.fixture
def slurm(monkeypatch):
    fake = FakeSlurm()
    monkeypatch.setattr(mpi, "_run_bounded", fake.bounded)
    return fake


class UserFS:
    """userfs as the states use it: what was written, renamed, removed."""

    def __init__(self):
        self.calls = []

    def directory(self, path, user=None, group=None, mode=None):
        self.calls.append(("directory", path, user))
        os.makedirs(path, exist_ok=True)
        return {}

    def write(self, path, contents, user=None, group=None, mode=None):
        self.calls.append(("write", path, user))
        with open(path, "w") as fh:
            fh.write(contents)
        return True

    def rename(self, src, dst, user=None):
        self.calls.append(("rename", src, dst, user))
        os.rename(src, dst)
        return True

    def remove(self, path, user=None):
        self.calls.append(("remove", path, user))
        os.remove(path)
        return True


@pytest.fixture
def userfs():
    return UserFS()


class Clock:
    def __init__(self):
        self.now = 100.0

    def monotonic(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


@pytest.fixture
def clock(monkeypatch):
    fake = Clock()
    monkeypatch.setattr(mpi, "time", fake)
    return fake


@pytest.fixture
def configure_loader_modules(cfg, slurm, userfs):
    def settings(cached=False):
        assert cached is True, "mpi read settings with a fileserver fetch"
        return copy.deepcopy(cfg)

    return {
        mpi: {
            "__salt__": {
                "cluster.settings": settings, "cluster.parse_hostfile": cluster.parse_hostfile,
                "cmd.run_all": slurm.run_all, "userfs.directory": userfs.directory, "userfs.write": userfs.write,
                "userfs.rename": userfs.rename, "userfs.remove": userfs.remove,
            },  # fmt: skip
            "__grains__": {"id": "master", "host": "master"},
            "__context__": {},
        }
    }


# -- no queue without Slurm


@pytest.mark.parametrize("scheduler", ["none"])
@pytest.mark.parametrize(
    "call", [lambda: mpi.submit("cpi"), mpi.jobs, lambda: mpi.cancel(12), lambda: mpi.output(12)],
    ids=["submit", "jobs", "cancel", "output"],
)
def test_without_slurm_the_queue_functions_say_there_is_none(scheduler, call, slurm, userfs):
    with pytest.raises(CommandExecutionError) as exc:
        call()
    assert "there is no queue: saltcluster:scheduler is 'none'" in str(exc.value)
    assert "set it to slurm" in str(exc.value)
    assert slurm.calls == [] and userfs.calls == []


@pytest.mark.parametrize("scheduler", ["none"])
def test_without_slurm_mpi_run_is_as_it_always_was(scheduler, slurm):
    ret = mpi.run("cpi", np=4)
    (cmd,) = slurm.calls
    assert cmd[0] == "/usr/bin/mpiexec" and "-f" in cmd and "jobid" not in ret


# -- mpi.submit


def test_submit_writes_the_script_as_the_user_and_queues_it(slurm, userfs, home):
    ret = mpi.submit("cpi", np=4, args="100", time_limit=30, name="pi-4")
    jobs = home / "jobs"
    assert ret["jobid"] == "17" and ret["name"] == "pi-4" and ret["np"] == 4 and ret["time_limit"] == 30
    assert ret["script"] == str(jobs / "17.sh") and ret["stdout"] == str(jobs / "17.out")
    assert ret["stderr"] == str(jobs / "17.err") and ret["hosts"] == ["node1", "node2"]
    (write,) = [c for c in userfs.calls if c[0] == "write"]
    assert write[2] == "jobhandler" and write[1].startswith(str(jobs / ".submit-"))
    assert ("directory", str(jobs), "jobhandler") in userfs.calls
    (sbatch,) = slurm.ran("sbatch")
    assert sbatch == ["/usr/bin/sbatch", "--parsable", write[1]]
    assert ("rename", write[1], str(jobs / "17.sh"), "jobhandler") in userfs.calls
    script = (jobs / "17.sh").read_text()
    assert script.startswith("#!/bin/sh\n")
    for line in ("#SBATCH --job-name=pi-4", "#SBATCH --ntasks=4", "#SBATCH --time=30", "#SBATCH --partition=batch",
                 f"#SBATCH --output={jobs}/%j.out", f"#SBATCH --error={jobs}/%j.err", "#SBATCH --requeue"):  # fmt: skip
        assert line + "\n" in script
    (exec_line,) = [line for line in script.splitlines() if line.startswith("exec ")]
    # Hydra inside the allocation: no hostfile, the job's tag and UCX settings
    assert exec_line.startswith("exec /usr/bin/mpiexec -n 4 -genv UCX_TLS tcp,sm,self -genv UCX_NET_DEVICES vec0 ")
    assert f"-genv SALTCLUSTER_JOB {ret['job']} {home}/bin/cpi 100" in exec_line
    assert " -f " not in exec_line and "--nodelist" not in script
    assert f"export SALTCLUSTER_JOB={ret['job']} HYDRA_CONFIG_FILE=/dev/null\n" in script


def test_submit_defaults_every_slot_the_program_name_and_max_time(slurm, cfg):
    ret = mpi.submit("hellow")
    assert (ret["np"], ret["name"], ret["time_limit"]) == (4, "hellow", cfg["slurm"]["max_time"])


def test_submit_to_chosen_hosts_asks_for_exactly_those(slurm, home):
    ret = mpi.submit("cpi", np=2, hosts="node2")
    script = (home / "jobs" / "17.sh").read_text()
    assert "#SBATCH --nodelist=node2\n#SBATCH --nodes=1\n" in script and ret["hosts"] == ["node2"]


def test_submit_quotes_arguments_for_the_scripts_shell(slurm, home):
    mpi.submit("cpi", args=["a b", "-f", "x=1"])
    exec_line = [ln for ln in (home / "jobs" / "17.sh").read_text().splitlines() if ln.startswith("exec ")][0]
    assert exec_line.endswith(f"{home}/bin/cpi 'a b' -f x=1")


@pytest.mark.parametrize(
    "time_limit,minutes",
    [(1, 1), ("90", 90), ("1:30:00", 90), ("0:00:30", 1), ("1-00:00:00", 1440), (1440, 1440)],
)
def test_submit_time_limits(slurm, time_limit, minutes):
    assert mpi.submit("cpi", time_limit=time_limit)["time_limit"] == minutes


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"program": "../x"}, "mpi.submit: program '../x' is refused: not a plain program name"),
        ({"program": "cpi;rm"}, "mpi.submit: program 'cpi;rm' is refused: not a plain program name"),
        ({"program": "/bin/sh"}, "mpi.submit: program '/bin/sh' is outside the allowed directories"),
        ({"program": "nope"}, "mpi.submit: program 'nope' not found as an executable"),
        ({"np": 0}, "mpi.submit: np=0 must be a positive integer"),
        ({"np": 5}, "mpi.submit: np=5 is more than the 4 slots of the chosen hosts"),
        ({"np": "4; x"}, "mpi.submit: np='4; x' must be a positive integer"),
        ({"args": [":", "-n", "1", "/bin/sh"]}, "mpi.submit: argument ':' is refused"),
        ({"args": "$(id)"}, "mpi.submit: argument '$(id)' holds shell metacharacters"),
        ({"hosts": "node9"}, "mpi.submit: host 'node9' is not in the hostfile (node1, node2)"),
        ({"hosts": "-N5"}, "mpi.submit: host '-N5' is not a host name"),
        ({"time_limit": 0}, "mpi.submit: time_limit=0 must be a positive number of minutes"),
        ({"time_limit": "1:30"}, "mpi.submit: time_limit='1:30' must be a positive number of minutes"),
        ({"time_limit": True}, "mpi.submit: time_limit=True must be a positive number of minutes"),
        ({"time_limit": 1441}, "mpi.submit: time_limit=1441 is more than saltcluster:slurm:max_time (1440 minutes)"),
        ({"name": "a b"}, "mpi.submit: name='a b' is not a job name"),
        ({"name": "--wrap=id"}, "mpi.submit: name='--wrap=id' is not a job name"),
        ({"name": "x\n#SBATCH --uid=0"}, "mpi.submit: name='x\\n#SBATCH --uid=0' is not a job name"),
        ({"name": "x" * 65}, "is not a job name"),
    ],
)
def test_submit_refuses_bad_input_naming_it_before_anything_starts(slurm, userfs, home, kwargs, message):
    kwargs = {"program": "cpi", **kwargs}
    with pytest.raises((SaltInvocationError, CommandExecutionError)) as exc:
        mpi.submit(**kwargs)
    assert message in str(exc.value)
    assert slurm.calls == [] and userfs.calls == [] and os.listdir(home / "jobs") == []


def test_submit_np_above_the_slots_advises_what_submit_takes(slurm, userfs):
    """mpi.submit has no oversubscribe: its advice names what it accepts;
    mpi.run's still offers oversubscribe=True."""
    with pytest.raises(SaltInvocationError) as exc:
        mpi.submit("cpi", np=5)
    assert str(exc.value) == (
        "mpi.submit: np=5 is more than the 4 slots of the chosen hosts (a queued job runs one rank per slot: "
        "ask for at most 4, or choose more hosts)"
    )
    assert "oversubscribe" not in str(exc.value) and slurm.calls == [] and userfs.calls == []
    with pytest.raises(SaltInvocationError, match=r"np=5 .* \(pass oversubscribe=True to allow it\)"):
        mpi.run("cpi", np=5)


def test_submit_np_above_max_np_does_not_speak_of_oversubscribing(slurm, cfg):
    cfg["mpi"]["max_np"] = 2
    with pytest.raises(SaltInvocationError) as exc:
        mpi.submit("cpi", np=3)
    assert "np=3 is more than the 2 ranks a job may start" in str(exc.value)
    assert "oversubscri" not in str(exc.value)


def test_sbatch_refusal_is_reported_and_leaves_no_script(slurm, userfs, home):
    slurm.sbatch = {"retcode": 1, "stdout": "", "stderr": "sbatch: error: invalid partition specified: batch"}
    with pytest.raises(CommandExecutionError, match="sbatch refused the job: sbatch: error: invalid partition"):
        mpi.submit("cpi")
    assert os.listdir(home / "jobs") == []


def test_submit_without_slurms_tools_is_a_clear_error(slurm, tools):
    tools.add("sbatch")
    with pytest.raises(CommandExecutionError, match="sbatch not found on this host .*apply cluster.slurm"):
        mpi.submit("cpi")


# -- mpi.jobs


def test_jobs_as_data(slurm):
    slurm.queue = [
        "18|PENDING|0:00|1||jobhandler|batch|Resources|cpi",
        "17|RUNNING|1:02|2|node[1-2]|jobhandler|batch|None|cpi",
        "19|PENDING|0:00|1||jobhandler|batch|Priority|odd|name",
        "garbage line",
    ]
    found = mpi.jobs()
    assert [j["id"] for j in found] == ["17", "18", "19"]
    assert found[0] == {"id": "17", "state": "RUNNING", "elapsed": "1:02", "num_nodes": 2, "nodes": "node[1-2]",
                        "user": "jobhandler", "partition": "batch", "reason": "None", "name": "cpi"}  # fmt: skip
    assert found[2]["name"] == "odd|name" and found[1]["reason"] == "Resources"
    (squeue,) = slurm.ran("squeue")
    assert squeue == ["/usr/bin/squeue", "--noheader", f"--format={mpi.SQUEUE_FORMAT}"]


def test_jobs_when_squeue_fails_is_an_error_not_an_empty_queue(slurm):
    slurm.squeue_fails = "slurm_load_jobs error: Unable to contact slurm controller"
    with pytest.raises(CommandExecutionError, match="squeue failed: slurm_load_jobs error: Unable to contact"):
        mpi.jobs()


# -- mpi.cancel

BAD_IDS = ["12_1", "-1", "0", "012", "1;2", "12\n", " 12", "abc", "--me", "12345678901", True, 1.5, None, -3, [12]]


@pytest.mark.parametrize("jobid", BAD_IDS)
@pytest.mark.parametrize("function", ["cancel", "output"])
def test_job_ids_that_are_not_plain_numbers_are_refused_before_anything_starts(slurm, function, jobid):
    with pytest.raises(SaltInvocationError) as exc:
        getattr(mpi, function)(jobid)
    assert str(exc.value) == f"mpi.{function}: job id {jobid!r} is not a plain job number"
    assert slurm.calls == []


def test_cancel_waits_until_the_job_left_the_queue(slurm, clock):
    slurm.queue = ["17|COMPLETING|0:10|2|node[1-2]|jobhandler|batch|None|cpi"]
    slurm.gone_after = 2
    ret = mpi.cancel("17")
    assert ret == {"jobid": "17", "cancelled": True, "state": None, "waited": 2.0}
    assert slurm.ran("scancel") == [["/usr/bin/scancel", "17"]]
    assert slurm.ran("squeue")[0][-1] == "--jobs=17"


def test_cancel_of_a_job_that_stays_is_reported_after_a_bounded_wait(slurm, clock):
    slurm.queue = ["17|RUNNING|0:10|2|node[1-2]|jobhandler|batch|None|cpi"]
    slurm.gone_after = 10**6
    ret = mpi.cancel(17)
    assert ret["cancelled"] is False and ret["state"] == "RUNNING" and ret["waited"] == mpi.CANCEL_WAIT
    assert mpi.__context__["retcode"] == 1


UNREACHABLE = "slurm_load_jobs error: Unable to contact slurm controller (connect failure)"


def test_cancel_is_not_reported_done_when_squeue_cannot_say(slurm, clock):
    """scancel was accepted, then slurmctld stopped answering: nothing is
    known of the job, so it is an error naming squeue's, not cancelled."""
    slurm.squeue_fails = UNREACHABLE
    with pytest.raises(CommandExecutionError) as exc:
        mpi.cancel("17")
    message = str(exc.value)
    assert message.startswith("mpi.cancel: scancel 17 was sent, but whether the job left the queue is unknown")
    assert f"squeue's last look, {mpi.CANCEL_WAIT} s after, failed: {UNREACHABLE}" in message
    assert len(slurm.ran("squeue")) > 1  # read again until the bound, nothing retried but the read


def test_cancel_rides_out_a_passing_squeue_failure(slurm, clock):
    slurm.squeue_failures = [UNREACHABLE, UNREACHABLE]
    ret = mpi.cancel("17")
    assert ret["cancelled"] is True and ret["state"] is None and ret["waited"] == 2 * mpi.CANCEL_POLL, ret


def test_cancel_that_slurm_refuses_names_the_job(slurm):
    slurm.scancel = {"retcode": 1, "stdout": "", "stderr": "scancel: error: Kill job error on job id 99: Invalid job"}
    with pytest.raises(CommandExecutionError, match="scancel 99 failed: .*Invalid job"):
        mpi.cancel(99)


# -- mpi.output


def _job_file(home, name, text, uid=UID):
    path = home / "jobs" / name
    path.write_text(text)
    os.chown(path, uid, -1)
    return path


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="chowns files to the MPI user's uid")


@needs_root
def test_output_reads_both_files(slurm, home):
    _job_file(home, "17.out", "pi is approximately 3.1416\n")
    _job_file(home, "17.err", "")
    ret = mpi.output(17)
    assert ret["jobid"] == "17" and ret["stdout"] == "pi is approximately 3.1416" and ret["stderr"] == ""
    assert ret["output_cut"] == {"stdout": 0, "stderr": 0}
    assert ret["files"] == {"stdout": str(home / "jobs/17.out"), "stderr": str(home / "jobs/17.err")}
    assert slurm.calls == []


@needs_root
def test_output_reads_a_file_whose_non_blocking_open_would_fail(slurm, home, monkeypatch):
    """On the NFS server a client's delegation on the file makes an
    O_NONBLOCK read-open fail with EWOULDBLOCK: the reading open blocks."""
    _job_file(home, "17.out", "pi is approximately 3.1416\n")
    real_open = os.open

    def delegated(path, flags, *args, **kwargs):
        if flags & os.O_NONBLOCK and not flags & os.O_PATH:
            raise BlockingIOError(errno.EWOULDBLOCK, "Resource temporarily unavailable")
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(mpi.os, "open", delegated)
    assert mpi.output(17)["stdout"] == "pi is approximately 3.1416"


@needs_root
def test_output_is_capped_head_and_tail(slurm, home, cfg):
    cfg["slurm"]["max_output"] = 1024
    _job_file(home, "17.out", "A" * 600 + "B" * 5000 + "C" * 600)
    ret = mpi.output("17")
    assert ret["stdout"].startswith("A" * 512) and ret["stdout"].endswith("C" * 512)
    assert ret["output_cut"]["stdout"] == 6200 - 1024 and ret["stderr"] is None
    assert "slurm:max_output=1024" in ret["stdout"] and "[mpi.output:" in ret["stdout"]


@needs_root
def test_output_of_a_job_without_files_is_an_error(slurm, home):
    with pytest.raises(CommandExecutionError, match="job 17 has no output in .*jobs"):
        mpi.output(17)


@needs_root
@pytest.mark.parametrize("kind", ["symlink", "hardlink", "other owner", "fifo"])
def test_output_never_reads_through_what_the_user_planted(slurm, home, tmp_path_factory, kind):
    secret = tmp_path_factory.mktemp("root-only") / "shadow"
    secret.write_text("root:$6$secret\n")
    target = home / "jobs" / "17.out"
    if kind == "symlink":
        os.symlink(secret, target)
    elif kind == "hardlink":
        os.chown(secret, UID, -1)  # even one of the user's own files, with a second name
        os.link(secret, target)
    elif kind == "other owner":
        _job_file(home, "17.out", "x", uid=0)
    else:
        os.mkfifo(target)
        os.chown(target, UID, -1)
    with pytest.raises(CommandExecutionError) as exc:
        mpi.output(17)
    assert "secret" not in str(exc.value) and "not" in str(exc.value)


@needs_root
def test_output_never_follows_a_planted_jobs_directory(slurm, home, tmp_path_factory):
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    (elsewhere / "17.out").write_text("not the job's")
    os.chown(elsewhere / "17.out", UID, -1)
    os.rmdir(home / "jobs")
    os.symlink(elsewhere, home / "jobs")
    with pytest.raises(CommandExecutionError, match="jobs directory .* cannot be read: a symlink"):
        mpi.output(17)


# -- mpi.run inside an allocation


def test_run_waits_its_turn_in_an_allocation(slurm):
    ret = mpi.run("cpi", np=4, timeout=120)
    (cmd,) = slurm.calls
    name = f"--job-name=saltcluster-run-{ret['job']}"
    assert cmd[:5] == ["/usr/bin/salloc", name, "--partition=batch", "--ntasks=4", "--time=2"]
    mpiexec = cmd.index("/usr/bin/mpiexec")
    # Hydra finds the allocation itself: no hostfile, no host list
    assert cmd[mpiexec:mpiexec + 3] == ["/usr/bin/mpiexec", "-n", "4"] and "-f" not in cmd and "-hosts" not in cmd
    assert ["-genv", "SALTCLUSTER_JOB", ret["job"]] == cmd[-4:-1] and cmd[-1].endswith("/bin/cpi")
    assert ret["jobid"] == "41" and ret["retcode"] == 0 and ret["command"] == cmd
    assert ret["hosts"] == ["node1", "node2"] and ret["np"] == 4
    # mpiexec gets the allocation's SLURM_* from salloc: mpi.run adds none
    assert not [k for k in slurm.bounded_env if k.startswith(("SLURM_", "HYDRA_L", "HYDRA_B"))]


def test_run_on_chosen_hosts_one_rank_each(slurm):
    ret = mpi.run("hellow", np=2, hosts="node1,node2", ppn=1)
    cmd = ret["command"]
    assert "--nodelist=node1,node2" in cmd and "--nodes=2" in cmd
    assert not [a for a in cmd if a.startswith("--ntasks-per-node")]
    assert cmd[cmd.index("/usr/bin/mpiexec"):][:5] == ["/usr/bin/mpiexec", "-n", "2", "-ppn", "1"]


@pytest.mark.parametrize("np, ppn, hosts, nodelist", [
    (1, None, "node1,node2", "node1"),  # Hydra puts the one rank on node1
    (2, None, "node1,node2", "node1"),  # node1's two slots hold both
    (3, None, "node1,node2", "node1,node2"),
    (3, None, "node2,node1", "node2,node1"),
    (1, 1, "node1,node2", "node1"),
    (3, 1, "node1,node2", "node1,node2"),
])
def test_chosen_hosts_never_outnumber_the_ranks(slurm, home, np, ppn, hosts, nodelist):
    """Slurm puts a task on every node it allocates: an allocation names the
    hosts Hydra reaches with np ranks, not more (np=1 on two named hosts
    would be refused, and runs on the first without Slurm)."""
    nodes = len(nodelist.split(","))
    cmd = mpi.run("hellow", np=np, hosts=hosts, ppn=ppn)["command"]
    assert f"--nodelist={nodelist}" in cmd and f"--nodes={nodes}" in cmd
    if ppn is None:
        mpi.submit("hellow", np=np, hosts=hosts)
        (script,) = sorted((home / "jobs").glob("*.sh"))
        assert f"#SBATCH --nodelist={nodelist}\n#SBATCH --nodes={nodes}\n" in script.read_text()


@pytest.mark.parametrize("np, ppn, hostfile, nodes", [
    (2, 1, "node1:2\nnode2:2\n", 2),  # one rank on each
    (4, 1, "node1:2\nnode2:2\n", 2),  # Hydra wraps around: two on each
    (2, 1, "node1:2\n", 1),  # node2 drained out of the hostfile: both on node1
    (4, 2, "node1:2\nnode2:2\n", 2),
    (2, 2, "node1:2\nnode2:2\n", 1),
])
def test_run_ppn_asks_for_the_nodes_hydra_fills_never_a_per_node_maximum(slurm, home, np, ppn, hostfile, nodes):
    """Hydra's -ppn inside the allocation places the ranks; Slurm is asked
    for as many nodes as -ppn fills, at most the hostfile's, so a job never
    waits for nodes the cluster does not have."""
    (home / "hosts").write_text(hostfile)
    cmd = mpi.run("hellow", np=np, ppn=ppn)["command"]
    assert f"--nodes={nodes}" in cmd and not [a for a in cmd if a.startswith(("--ntasks-per-node", "--nodelist"))]
    assert cmd[cmd.index("/usr/bin/mpiexec"):][:5] == ["/usr/bin/mpiexec", "-n", str(np), "-ppn", str(ppn)]


def test_run_oversubscribed_overcommits_the_allocation(slurm):
    assert "--overcommit" in mpi.run("cpi", np=8, oversubscribe=True)["command"]
    assert "--overcommit" not in mpi.run("cpi", np=4, oversubscribe=True)["command"]


def test_run_time_is_capped_by_the_partitions(slurm, cfg):
    cfg["slurm"]["max_time"] = 60
    assert "--time=60" in mpi.run("cpi", timeout=86400)["command"]


def test_run_timeout_cancels_the_allocation(slurm):
    slurm.salloc.update(timed_out=True, retcode=-15)
    ret = mpi.run("cpi", timeout=5)
    assert ret["timed_out"] is True and ret["retcode"] == 124
    (scancel,) = slurm.ran("scancel")
    assert scancel == ["/usr/bin/scancel", f"--name=saltcluster-run-{ret['job']}", "--user=jobhandler"]
    assert ret["killed"] == {"scancel": f"saltcluster-run-{ret['job']}", "retcode": 0}
    # no ssh sweep: Slurm ends the steps, the epilog the strays
    assert not slurm.ran("ssh") and not slurm.ran("sh")


def test_run_still_refuses_what_it_always_refused(slurm):
    with pytest.raises(SaltInvocationError, match=re.escape("mpi.run: np=5 is more than the 4 slots")):
        mpi.run("cpi", np=5)
    assert slurm.calls == []


def test_build_command_under_slurm_is_the_allocation(slurm):
    assert mpi.build_command("cpi")[0] == "/usr/bin/salloc"


def test_run_without_salloc_is_a_clear_error(slurm, tools):
    tools.add("salloc")
    with pytest.raises(CommandExecutionError, match="salloc not found on this host"):
        mpi.run("cpi")
    assert slurm.calls == []
