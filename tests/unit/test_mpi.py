"""mpi execution module: resolution, refusals, command line, run, check."""

import copy
import os
import pwd

import cluster
import mpi
import pytest
import salt.utils.yaml
from salt.exceptions import CommandExecutionError, SaltInvocationError


@pytest.fixture
def home(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for prog in ("cpi", "hellow"):
        (bin_dir / prog).write_text("#!/bin/sh\n")
        (bin_dir / prog).chmod(0o755)
    (bin_dir / "notes.txt").write_text("not a program")
    (tmp_path / "hosts").write_text("# comment\nnode1:2\nnode2:2\n\n")
    return tmp_path


DEBIAN_12 = {"os": "Debian", "osmajorrelease": 12, "oscodename": "bookworm"}
DEBIAN_13 = {"os": "Debian", "osmajorrelease": 13, "oscodename": "trixie"}


@pytest.fixture
def grains():
    """The release of the host mpi.run runs on (its MPI provider follows it)."""
    return DEBIAN_13


@pytest.fixture
def cfg(defaults_text, home, grains):
    cfg = salt.utils.yaml.safe_load(defaults_text)["saltcluster"]
    cfg["user"]["home"] = str(home)
    cfg["mpi"].update(hostfile=str(home / "hosts"), bin_dir=str(home / "bin"), src_dir=str(home / "src"))
    cfg["mpi"]["ucx_net_device"] = "vec0"
    # as cluster.settings hands it over: validated, provider values derived
    return cluster.validate(cfg, grains=grains)


@pytest.fixture(autouse=True)
def mpiexec_present(monkeypatch):
    """The configured mpiexec exists (whichever provider); a test that wants
    it missing sets the returned set's content."""
    missing = set()
    monkeypatch.setattr(mpi, "_executable", lambda path: path not in missing)
    return missing


@pytest.fixture
def calls():
    return []


@pytest.fixture
def run_all(calls):
    def fake(cmd, **kwargs):
        calls.append((cmd, kwargs))
        return {"retcode": 0, "stdout": "pi is approximately 3.14", "stderr": "", "pid": 1}

    return fake


@pytest.fixture(autouse=True)
def mpi_user(monkeypatch):
    """jobhandler as the host's passwd would give it (it need not exist here)."""
    entry = pwd.struct_passwd(("jobhandler", "x", 100, 1100, "", "/home/jobhandler", "/bin/bash"))
    accounts = {"jobhandler": entry, "root": pwd.struct_passwd(("root", "x", 0, 0, "", "/root", "/bin/sh"))}

    def getpwnam(name):
        if name not in accounts:
            raise KeyError(name)
        return accounts[name]

    monkeypatch.setattr(mpi.pwd, "getpwnam", getpwnam)
    return accounts


@pytest.fixture
def configure_loader_modules(cfg, run_all):
    def settings(cached=False):
        # mpi must ask for the cached defaults: a job pays no fileserver trip
        assert cached is True, "mpi read settings with a fileserver fetch"
        return copy.deepcopy(cfg)

    return {
        mpi: {
            "__salt__": {"cluster.settings": settings, "cmd.run_all": run_all},
            "__grains__": {"id": "master", "host": "master"},
            "__context__": {},
        }
    }


def test_hostfile_parses_slots(home):
    assert mpi.hostfile() == [{"host": "node1", "slots": 2}, {"host": "node2", "slots": 2}]


def test_hostfile_missing_is_clear(home):
    os.remove(home / "hosts")
    with pytest.raises(CommandExecutionError, match="hosts does not exist"):
        mpi.hostfile()


def test_programs_lists_executables_only():
    assert mpi.programs() == ["cpi", "hellow"]


def test_resolve_plain_name(home):
    assert mpi.resolve("cpi") == str(home / "bin" / "cpi")


@pytest.mark.parametrize(
    "program",
    ["../cpi", "bin/../../etc/passwd", "/bin/sh", "cpi; rm -rf /", "$(id)", "`id`", "cpi|cat", "", "a b"],
)
def test_resolve_refuses_escapes_and_shell(program):
    with pytest.raises(SaltInvocationError) as exc:
        mpi.resolve(program)
    assert repr(program) in str(exc.value)


def test_resolve_refuses_symlink_escape(home):
    os.symlink("/bin/true", home / "bin" / "sneaky")
    with pytest.raises(SaltInvocationError, match="sneaky"):
        mpi.resolve("sneaky")


def test_resolve_absolute_inside_allowed(home, cfg):
    assert mpi.resolve(str(home / "bin" / "hellow")) == str(home / "bin" / "hellow")


def test_resolve_allowed_dirs(home, cfg, tmp_path_factory):
    extra = tmp_path_factory.mktemp("extra")
    (extra / "solver").write_text("#!/bin/sh\n")
    (extra / "solver").chmod(0o755)
    cfg["mpi"]["allowed_dirs"] = [str(extra)]
    assert mpi.resolve(str(extra / "solver")) == str(extra / "solver")


def test_resolve_not_executable():
    with pytest.raises(SaltInvocationError, match="notes.txt"):
        mpi.resolve("notes.txt")


def test_build_command_full(home):
    cmd = mpi.build_command("cpi", np=4, args=["1000"])
    assert cmd == [
        "/usr/bin/mpiexec", "-f", str(home / "hosts"), "-n", "4",
        "-genv", "UCX_TLS", "tcp,sm,self", "-genv", "UCX_NET_DEVICES", "vec0",
        str(home / "bin" / "cpi"), "1000",
    ]  # fmt: skip


def test_build_command_default_np_is_all_slots():
    cmd = mpi.build_command("hellow")
    assert cmd[cmd.index("-n") + 1] == "4"


def test_build_command_hosts_subset():
    cmd = mpi.build_command("hellow", hosts="node2")
    assert cmd[1:3] == ["-hosts", "node2:2"]
    assert cmd[cmd.index("-n") + 1] == "2"


def test_build_command_ppn_and_env():
    cmd = mpi.build_command("hellow", np=2, ppn=1, env={"OMP_NUM_THREADS": "1"})
    assert cmd[cmd.index("-ppn") + 1] == "1"
    assert ["-genv", "OMP_NUM_THREADS", "1"] == cmd[cmd.index("OMP_NUM_THREADS") - 1 : cmd.index("OMP_NUM_THREADS") + 2]


@pytest.mark.parametrize("np", [0, -1, "x", True, 5, 100])
def test_np_refused(np):
    with pytest.raises(SaltInvocationError) as exc:
        mpi.build_command("cpi", np=np)
    assert f"np={np!r}" in str(exc.value) or f"np={np}" in str(exc.value)


def test_oversubscribe_allows_more_than_slots():
    cmd = mpi.build_command("cpi", np=8, oversubscribe=True)
    assert cmd[cmd.index("-n") + 1] == "8"


def test_unknown_host_refused():
    with pytest.raises(SaltInvocationError, match="'node9' is not in the hostfile"):
        mpi.build_command("cpi", hosts=["node9"])


@pytest.mark.parametrize("arg", ["1; reboot", "$(id)", "a|b", "x>y"])
def test_shell_metacharacters_in_args_refused(arg):
    with pytest.raises(SaltInvocationError, match="shell metacharacters"):
        mpi.build_command("cpi", args=[arg])


@pytest.mark.parametrize("env", [{"BAD NAME": "1"}, {"X": "a\nb"}, "X=1"])
def test_bad_env_refused(env):
    with pytest.raises(SaltInvocationError, match="env"):
        mpi.build_command("cpi", env=env)


def test_bad_ppn_refused():
    with pytest.raises(SaltInvocationError, match="ppn=0"):
        mpi.build_command("cpi", np=2, ppn=0)


def test_empty_hostfile_refused(home):
    (home / "hosts").write_text("# nobody\n")
    with pytest.raises(CommandExecutionError, match="lists no hosts"):
        mpi.build_command("cpi")


def test_run_as_mpi_user_without_shell(calls, home):
    ret = mpi.run("cpi", np=4)
    cmd, kwargs = calls[0]
    # setpriv drops to the user's uid, gid and groups, then execs mpiexec
    assert cmd[:5] == ["setpriv", "--reuid=100", "--regid=1100", "--init-groups", "--"]
    assert cmd[5] == "/usr/bin/mpiexec"
    assert kwargs["python_shell"] is False
    assert kwargs["clean_env"] is True
    assert kwargs["env"]["HOME"] == str(home) and kwargs["env"]["USER"] == "jobhandler"
    assert kwargs["cwd"] == str(home)
    assert kwargs["timeout"] == 300
    assert kwargs["stdin"] == ""
    assert ret["retcode"] == 0 and ret["np"] == 4 and ret["hosts"] == ["node1", "node2"]
    assert ret["stdout"].startswith("pi is") and ret["timed_out"] is False
    assert set(ret) >= {"retcode", "stdout", "stderr", "np", "hosts", "duration"}


def test_run_never_as_root(cfg):
    cfg["user"]["name"] = "root"
    with pytest.raises(CommandExecutionError, match="never run as root"):
        mpi.run("cpi")


def test_run_refuses_an_mpi_user_with_uid_0(mpi_user):
    mpi_user["jobhandler"] = mpi_user["root"]
    with pytest.raises(CommandExecutionError, match="uid 0"):
        mpi.run("cpi")


def test_run_needs_the_mpi_user(mpi_user):
    del mpi_user["jobhandler"]
    with pytest.raises(CommandExecutionError, match="'jobhandler' does not exist"):
        mpi.run("cpi")


@pytest.mark.parametrize("timeout", [0, -5, "soon", True])
def test_run_bad_timeout(timeout):
    with pytest.raises(SaltInvocationError, match="timeout"):
        mpi.run("cpi", timeout=timeout)


def test_run_timeout_kills_ranks_everywhere(calls, monkeypatch, home):
    clock = iter([0.0, 5.0])
    monkeypatch.setattr(mpi.time, "monotonic", lambda: next(clock))

    def fake(cmd, **kwargs):
        calls.append((cmd, kwargs))
        if "/usr/bin/mpiexec" in cmd:
            return {"retcode": 1, "stdout": "", "stderr": "Timed out after 5 seconds"}
        return {"retcode": 0, "stdout": "", "stderr": ""}

    mpi.__salt__["cmd.run_all"] = fake
    ret = mpi.run("cpi", np=4, timeout=5)
    assert ret["timed_out"] is True and ret["retcode"] == 1
    kill_cmds = [c[c.index("--") + 1 :] if c[0] == "setpriv" else c for c, _ in calls[1:]]
    assert any(c[:2] == ["ssh", "-o"] and "node1" in c and "pkill" in c for c in kill_cmds)
    assert any("node2" in c for c in kill_cmds)
    assert ret["killed"] == {"node1": True, "node2": True}
    assert all(kw.get("python_shell") is False for _, kw in calls)


def test_run_failure_sets_retcode_context():
    mpi.__salt__["cmd.run_all"] = lambda cmd, **kw: {"retcode": 3, "stdout": "", "stderr": "boom"}
    ret = mpi.run("cpi", np=1)
    assert ret["retcode"] == 3 and mpi.__context__["retcode"] == 3


def test_check_reports_missing_hosts():
    mpi.__salt__["cmd.run_all"] = lambda cmd, **kw: {
        "retcode": 0,
        "stdout": "Hello world from rank 0 of 2 on node1\n",
        "stderr": "",
    }
    res = mpi.check()
    assert res["result"] is False
    assert res["answered"] == ["node1"] and res["missing"] == ["node2"]


def test_check_all_answer(calls):
    mpi.__salt__["cmd.run_all"] = lambda cmd, **kw: calls.append(cmd) or {
        "retcode": 0,
        "stdout": "Hello world from rank 0 of 2 on node1\nHello world from rank 1 of 2 on node2\n",
        "stderr": "",
    }
    res = mpi.check()
    assert res["result"] is True and res["missing"] == []
    assert calls[0][calls[0].index("-ppn") + 1] == "1"
    assert calls[0][0] == "setpriv"


def test_virtual_does_not_need_mpiexec_on_path(monkeypatch):
    # the pypi provider's mpiexec lives in its prefix, never on PATH
    monkeypatch.setattr(mpi.salt.utils.path, "which", lambda name: None if name == "mpiexec" else f"/usr/bin/{name}")
    assert mpi.__virtual__() == "mpi"


@pytest.mark.parametrize("grains", [DEBIAN_12])
def test_missing_mpiexec_named_at_call_time(grains, mpiexec_present, calls):
    mpiexec_present.add("/opt/saltcluster/mpich/bin/mpiexec")
    with pytest.raises(CommandExecutionError) as exc:
        mpi.run("cpi", np=2)
    msg = str(exc.value)
    assert "/opt/saltcluster/mpich/bin/mpiexec" in msg and "provider pypi" in msg and "cluster.mpi" in msg
    assert calls == []


def test_debian_provider_runs_usr_bin_mpiexec_with_the_plain_environment(calls):
    mpi.run("cpi", np=4)
    cmd, kwargs = calls[0]
    assert cmd[5] == "/usr/bin/mpiexec"
    assert kwargs["env"]["PATH"] == "/usr/local/bin:/usr/bin:/bin"
    assert "LD_LIBRARY_PATH" not in kwargs["env"]


@pytest.mark.parametrize("grains", [DEBIAN_12])
def test_pypi_provider_runs_the_prefix_mpiexec_with_its_bin_and_lib(grains, calls):
    ret = mpi.run("cpi", np=4)
    cmd, kwargs = calls[0]
    assert cmd[5] == "/opt/saltcluster/mpich/bin/mpiexec" == ret["command"][0]
    # Hydra and the ranks from the prefix; Debian-built programs find
    # libmpich.so.12 (the link to the wheel's libmpi.so.12) there
    assert kwargs["env"]["PATH"] == "/opt/saltcluster/mpich/bin:/usr/local/bin:/usr/bin:/bin"
    assert kwargs["env"]["LD_LIBRARY_PATH"] == "/opt/saltcluster/mpich/lib"
    assert kwargs["clean_env"] is True and cmd[:5] == ["setpriv", "--reuid=100", "--regid=1100", "--init-groups", "--"]
    # the UCX settings still reach every rank
    assert cmd[cmd.index("UCX_TLS") - 1] == "-genv" and cmd[cmd.index("UCX_TLS") + 1] == "tcp,sm,self"


@pytest.mark.parametrize("grains", [DEBIAN_12])
@pytest.mark.parametrize(
    "args,named",
    [
        ({"program": "../../bin/sh"}, "'../../bin/sh'"),
        ({"program": "cpi", "np": 0}, "np=0"),
        ({"program": "cpi", "hosts": "node9"}, "'node9'"),
        ({"program": "cpi", "args": ["1;reboot"]}, "'1;reboot'"),
        ({"program": "cpi", "env": {"A B": "1"}}, "'A B'"),
        ({"program": "cpi", "timeout": -1}, "timeout=-1"),
    ],
)
def test_pypi_provider_keeps_every_argument_check(grains, calls, args, named):
    with pytest.raises(SaltInvocationError, match=named.replace("[", r"\[")):
        mpi.run(**args)
    assert calls == []


def test_virtual_needs_setpriv(monkeypatch):
    monkeypatch.setattr(mpi.salt.utils.path, "which", lambda name: None if name == "setpriv" else f"/usr/bin/{name}")
    ok, why = mpi.__virtual__()
    assert ok is False and "setpriv" in why
