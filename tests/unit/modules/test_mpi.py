"""mpi execution module: resolution, refusals, command line, run, check."""

import copy
import os
import pwd
import re
import signal
import subprocess
import sys
import time

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
    """Every command mpi started: the job (through the bounded runner) and
    the kill sweeps (through cmd.run_all), as (argv, kwargs)."""
    return []


@pytest.fixture
def run_all(calls):
    def fake(cmd, **kwargs):
        calls.append((cmd, kwargs))
        return {"retcode": 0, "stdout": "pi is approximately 3.14", "stderr": "", "pid": 1}

    return fake


@pytest.fixture
def job_result():
    """What the fake bounded runner returns for the job; tests change it."""
    return {
        "retcode": 0, "stdout": "pi is approximately 3.14", "stderr": "", "pid": 4242,
        "timed_out": False, "output_cut": {"stdout": 0, "stderr": 0},
    }  # fmt: skip


# the real one, for the tests of the runner itself
REAL_RUN_BOUNDED = getattr(mpi, "_run_bounded", None)


@pytest.fixture(autouse=True)
def runner(monkeypatch, calls, job_result):
    """mpi.run starts mpiexec with its own bounded runner, not cmd.run_all."""

    def fake(argv, **kwargs):
        calls.append((argv, kwargs))
        return dict(job_result)

    monkeypatch.setattr(mpi, "_run_bounded", fake, raising=False)
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
            # the hostfile's one parser, the reader of the format cluster.hostfile writes
            "__salt__": {"cluster.settings": settings, "cluster.parse_hostfile": cluster.parse_hostfile,
                         "cmd.run_all": run_all},  # fmt: skip
            "__grains__": {"id": "master", "host": "master"},
            "__context__": {},
        }
    }


def test_hostfile_parses_slots(home):
    assert mpi.hostfile() == [{"host": "node1", "slots": 2}, {"host": "node2", "slots": 2}]


def test_hostfile_reads_only_the_configured_file():
    """root reads it: a caller of mpi.hostfile names no other path."""
    with pytest.raises(TypeError):
        mpi.hostfile("/etc/shadow")


def test_hostfile_missing_is_clear(home):
    os.remove(home / "hosts")
    with pytest.raises(CommandExecutionError, match="hosts does not exist"):
        mpi.hostfile()


def test_hostfile_reads_what_cluster_hostfile_writes(home):
    """One format: the lines the hostfile state writes are the entries mpi.run places ranks by."""
    members = [{"name": "node1", "num_cpus": 2}, {"name": "node10", "num_cpus": 4}]
    lines = cluster.hostfile_lines(members)
    header = "# Managed by Salt (saltcluster): compute members as host:slots"
    (home / "hosts").write_text("\n".join([header, *lines]) + "\n")
    assert mpi.hostfile() == [{"host": "node1", "slots": 2}, {"host": "node10", "slots": 4}]


# The MPI user (any job) may put anything at ~/hosts; mpi.run, as root,
# names the hosts it read when it refuses one: never another file's lines.
SECRET = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n"


@pytest.mark.parametrize("link", ["symlink", "hardlink"])
def test_hostfile_through_a_link_is_not_read(home, tmp_path_factory, link, calls):
    secret = tmp_path_factory.mktemp("root-only") / "ssh_host_ed25519_key"
    secret.write_text(SECRET)
    os.remove(home / "hosts")
    (os.symlink if link == "symlink" else os.link)(secret, home / "hosts")
    with pytest.raises(CommandExecutionError) as exc:
        mpi.run("cpi", hosts="nothere")
    assert "b3BlbnNz" not in str(exc.value) and ("symlink" in str(exc.value) or "hard link" in str(exc.value))
    with pytest.raises(CommandExecutionError):
        mpi.hostfile()
    assert calls == []


def test_hostfile_fifo_is_not_waited_on(home, calls):
    os.remove(home / "hosts")
    os.mkfifo(home / "hosts")
    with pytest.raises(CommandExecutionError, match="not a regular file"):
        mpi.run("cpi")
    assert calls == []


def test_hostfile_size_is_bounded(home):
    (home / "hosts").write_text("node1:2\n" * (mpi.MAX_HOSTFILE // 8 + 1))
    with pytest.raises(CommandExecutionError, match="larger than"):
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


JOB = "0123456789abcdef0123456789abcdef"


def test_build_command_full(home):
    cmd = mpi.build_command("cpi", np=4, args=["1000"], job=JOB)
    assert cmd == [
        "/usr/bin/mpiexec", "-f", str(home / "hosts"), "-n", "4",
        "-genv", "UCX_TLS", "tcp,sm,self", "-genv", "UCX_NET_DEVICES", "vec0",
        "-genv", "SALTCLUSTER_JOB", JOB,
        str(home / "bin" / "cpi"), "1000",
    ]  # fmt: skip


def test_build_command_tags_each_job_afresh():
    first, second = mpi.build_command("cpi"), mpi.build_command("cpi")
    tags = [c[c.index("SALTCLUSTER_JOB") + 1] for c in (first, second)]
    assert all(re.fullmatch(r"[0-9a-f]{32}", t) for t in tags) and tags[0] != tags[1]


@pytest.mark.parametrize("job", ["x", "0" * 31, "0" * 32 + "\n", "-genv"])
def test_build_command_refuses_a_malformed_tag(job):
    with pytest.raises(SaltInvocationError, match=re.escape(repr(job))):
        mpi.build_command("cpi", job=job)


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
    # (the runner's pid is mpiexec's: a timeout signals mpiexec itself)
    assert cmd[:5] == ["setpriv", "--reuid=100", "--regid=1100", "--init-groups", "--"]
    assert cmd[5] == "/usr/bin/mpiexec" and cmd[5:] == ret["command"]
    # the small fixed environment, nothing of the minion's
    assert set(kwargs["env"]) == {
        "HOME", "USER", "LOGNAME", "SHELL", "PATH", "LANG", "SALTCLUSTER_JOB", "HYDRA_CONFIG_FILE"
    }  # fmt: skip
    assert kwargs["env"]["HOME"] == str(home) and kwargs["env"]["USER"] == "jobhandler"
    # Hydra reads no ~/.mpiexec.hydra.conf a job could have written
    assert kwargs["env"]["HYDRA_CONFIG_FILE"] == "/dev/null"
    assert kwargs["env"]["SALTCLUSTER_JOB"] == ret["job"]
    assert kwargs["cwd"] == str(home)
    assert kwargs["timeout"] == 300
    assert kwargs["max_output"] == 262144
    assert ret["retcode"] == 0 and ret["np"] == 4 and ret["hosts"] == ["node1", "node2"]
    assert ret["stdout"].startswith("pi is") and ret["timed_out"] is False
    assert ret["output_cut"] == {"stdout": 0, "stderr": 0}
    assert set(ret) >= {"retcode", "stdout", "stderr", "np", "hosts", "duration", "job"}


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


@pytest.mark.parametrize(
    "timeout",
    [0, -5, "soon", True, float("inf"), float("-inf"), float("nan"), 7 * 86400 + 1, 1e300],
)
def test_run_bad_timeout(timeout, calls):
    with pytest.raises(SaltInvocationError, match=re.escape(f"timeout={timeout!r}")):
        mpi.run("cpi", timeout=timeout)
    assert calls == []


def test_run_timeout_capped_by_pillar(cfg, calls):
    cfg["mpi"]["max_timeout"] = 60
    with pytest.raises(SaltInvocationError, match=r"timeout=61 .*mpi:max_timeout.*60"):
        mpi.run("cpi", timeout=61)
    mpi.run("cpi", timeout=60)
    mpi.run("cpi", timeout=0.5)
    assert [kw["timeout"] for _, kw in calls] == [60, 0.5]


def _kill_commands(calls):
    """The kill sweeps mpi.run started after the job: argv as run (past setpriv)."""
    return [c[c.index("--") + 1 :] if c[0] == "setpriv" else c for c, _ in calls[1:]]


def test_run_timeout_kills_only_this_jobs_tag_everywhere(calls, job_result):
    job_result.update(retcode=-15, stdout="", stderr="", timed_out=True)
    ret = mpi.run("cpi", np=4, timeout=5)
    assert ret["timed_out"] is True and ret["retcode"] == 124
    job = ret["job"]
    assert re.fullmatch(r"[0-9a-f]{32}", job)
    # the tag every rank carries (-genv) and mpiexec itself (its environment)
    cmd, kwargs = calls[0]
    assert cmd[cmd.index("SALTCLUSTER_JOB") - 1 : cmd.index("SALTCLUSTER_JOB") + 2] == ["-genv", "SALTCLUSTER_JOB", job]
    assert kwargs["env"]["SALTCLUSTER_JOB"] == job
    kills = _kill_commands(calls)
    # this host (mpiexec's, its local proxies) and every host the job used, over ssh
    local = [c for c in kills if c[0] == "sh"]
    remote = {c[c.index("--") + 1]: c for c in kills if c[0] == "ssh"}
    assert len(local) == 1 and set(remote) == {"node1", "node2"} and len(kills) == 3
    for c in kills:
        text = " ".join(c)
        # by the job's tag only: never by user or by program / process name
        assert f"SALTCLUSTER_JOB={job}" in text
        assert "pkill" not in text and "killall" not in text and "-u" not in c
    for host, c in remote.items():
        # ssh options end before the host: a host name is never an option
        assert c[:2] == ["ssh", "-o"] and c[c.index(host) - 1] == "--"
        assert c[-1].startswith("sh -c ")
    # every sweep runs as the MPI user: it can signal nothing of anyone else
    assert all(c[:5] == ["setpriv", "--reuid=100", "--regid=1100", "--init-groups", "--"] for c, _ in calls[1:])
    assert all(kw.get("python_shell") is False for _, kw in calls[1:])
    assert set(ret["killed"]) == {"localhost", "node1", "node2"}


def test_run_timeout_kills_the_chosen_hosts_only(calls, job_result):
    job_result.update(timed_out=True)
    ret = mpi.run("cpi", np=2, hosts="node2", timeout=5)
    remote = [c for c in _kill_commands(calls) if c[0] == "ssh"]
    assert [c[c.index("--") + 1] for c in remote] == ["node2"]
    assert set(ret["killed"]) == {"localhost", "node2"}


def test_run_without_timeout_kills_nothing(calls):
    ret = mpi.run("cpi", np=4)
    assert len(calls) == 1 and "killed" not in ret


def test_run_failure_sets_retcode_context(job_result):
    job_result.update(retcode=3, stdout="", stderr="boom")
    ret = mpi.run("cpi", np=1)
    assert ret["retcode"] == 3 and mpi.__context__["retcode"] == 3


def test_check_reports_missing_hosts(job_result):
    job_result.update(stdout="Hello world from rank 0 of 2 on node1")
    res = mpi.check()
    assert res["result"] is False
    assert res["answered"] == ["node1"] and res["missing"] == ["node2"]


def test_check_all_answer(calls, job_result):
    job_result.update(stdout="Hello world from rank 0 of 2 on node1\nHello world from rank 1 of 2 on node2")
    res = mpi.check()
    assert res["result"] is True and res["missing"] == []
    cmd = calls[0][0]
    assert cmd[cmd.index("-ppn") + 1] == "1"
    assert cmd[0] == "setpriv"


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
    assert cmd[:5] == ["setpriv", "--reuid=100", "--regid=1100", "--init-groups", "--"]
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


# --- untrusted callers: each attack refused, naming the value -------------

# Hydra's parser (MPICH src/pm/hydra/mpiexec/get_parameters.c parse_args, and
# lib/utils/args.c HYDU_parse_array): options while an element starts with
# "-", then the executable and its arguments up to an element equal to ":",
# which starts the next section (MPMD) with options of its own.
HYDRA_ARITY = {"f": 1, "hosts": 1, "n": 1, "ppn": 1, "genv": 2}


def hydra_sections(cmd):
    """``cmd`` (an mpiexec argument list) as Hydra splits it: a list of
    (options, executable and arguments) per section."""
    argv, sections = list(cmd[1:]), []
    while argv:
        options = []
        while argv and argv[0].startswith("-"):
            name = argv.pop(0).lstrip("-")
            assert name in HYDRA_ARITY, f"option -{name} would reach Hydra"
            # -genv NAME=VALUE takes one element, -genv NAME VALUE two
            arity = 1 if name == "genv" and "=" in argv[0] else HYDRA_ARITY[name]
            options.append((name, [argv.pop(0) for _ in range(arity)]))
        program = []
        while argv and argv[0] != ":":
            program.append(argv.pop(0))
        if argv:
            argv.pop(0)
        sections.append((options, program))
    return sections


@pytest.mark.parametrize(
    "args",
    [
        [":", "-n", "1", "/usr/bin/touch", "/tmp/x"],
        ": -n 1 /usr/bin/touch /tmp/x",
        ["1000", ":", "/usr/bin/id"],
        [":"],
    ],
)
def test_mpmd_separator_in_args_refused(args, calls):
    with pytest.raises(SaltInvocationError, match=re.escape("argument ':'")):
        mpi.build_command("cpi", args=args)
    with pytest.raises(SaltInvocationError, match=re.escape("':'")):
        mpi.run("hellow", args=args)
    assert calls == []


@pytest.mark.parametrize(
    "args",
    [
        ["-genv", "LD_PRELOAD", "/tmp/evil.so"],
        ["-f", "/etc/passwd", "-n", "99"],
        ["--", "-hosts", "evil:64"],
        ["-configfile", "/tmp/evil"],
        [" :", ": ", "::", "a:b"],
        ["-n=4", "-genv=X=1"],
    ],
)
def test_built_command_is_one_section_with_only_our_options(args, home):
    """Whatever the args, Hydra sees one section, our options only, and the
    program (from bin_dir) with the args as its own."""
    cmd = mpi.build_command("cpi", args=args, env={"OMP_NUM_THREADS": "2"}, job=JOB)
    [(options, program)] = hydra_sections(cmd)
    assert program == [str(home / "bin" / "cpi"), *args]
    assert [name for name, _ in options] == ["f", "n", "genv", "genv", "genv", "genv"]


@pytest.mark.parametrize(
    "hosts,named",
    [
        ("node1,-genv", "'-genv'"),
        (["-f"], "'-f'"),
        (["node1,node2"], "'node1,node2'"),
        (["node1:64"], "'node1:64'"),
        (["node1 "], "'node1 '"),
        (["node1\n"], "'node1\\n'"),
        ([":"], "':'"),
        (["-hosts=evil"], "'-hosts=evil'"),
    ],
)
def test_host_injection_refused(hosts, named, calls):
    with pytest.raises(SaltInvocationError, match=re.escape(named)):
        mpi.build_command("cpi", np=1, hosts=hosts)
    with pytest.raises(SaltInvocationError, match=re.escape(named)):
        mpi.run("cpi", np=1, hosts=hosts)
    assert calls == []


@pytest.mark.parametrize("hosts", ["node1,node1,node1", ["node1", "node1"], "node1,,node1,"])
def test_hosts_deduplicated_before_the_slot_check(hosts):
    cmd = mpi.build_command("cpi", hosts=hosts)
    assert cmd[1:3] == ["-hosts", "node1:2"]
    assert cmd[cmd.index("-n") + 1] == "2"
    with pytest.raises(SaltInvocationError, match="np=4 is more than the 2 slots"):
        mpi.build_command("cpi", np=4, hosts=hosts)


def test_run_reports_the_deduplicated_hosts(calls):
    ret = mpi.run("cpi", hosts="node2,node1,node2")
    assert ret["hosts"] == ["node2", "node1"] and ret["np"] == 4


@pytest.mark.parametrize(
    "kwargs,np",
    [({}, 4), ({"hosts": "node2"}, 2), ({"np": 3}, 3), ({"np": 8, "oversubscribe": True}, 8), ({"np": 2.0}, 2)],
)
def test_run_reports_np_as_decided(kwargs, np):
    """np is the rank count mpi.run settled on (default: every slot of the
    chosen hosts), an integer, as passed to mpiexec."""
    ret = mpi.run("cpi", **kwargs)
    assert ret["np"] == np and type(ret["np"]) is int
    assert ret["command"][ret["command"].index("-n") + 1] == str(np)


@pytest.mark.parametrize(
    "env,named",
    [
        ({"X\n": "1"}, "'X\\n'"),
        ({"X=Y": "1"}, "'X=Y'"),
        ({"": "1"}, "''"),
        ({"LD_PRELOAD": "/tmp/evil.so"}, "'LD_PRELOAD'"),
        ({"LD_AUDIT": "/tmp/evil.so"}, "'LD_AUDIT'"),
        ({"LD_LIBRARY_PATH": "/tmp"}, "'LD_LIBRARY_PATH'"),
        ({"LD_DEBUG_OUTPUT": "/home/jobhandler/.ssh/authorized_keys"}, "'LD_DEBUG_OUTPUT'"),
        ({"LD_DEBUG": "libs /tmp"}, "'LD_DEBUG'"),
        ({"LD_DEBUG": "files,../x"}, "'LD_DEBUG'"),
        ({"ld_preload": "/tmp/evil.so"}, "'ld_preload'"),
        ({"GCONV_PATH": "/tmp"}, "'GCONV_PATH'"),
        ({"GLIBC_TUNABLES": "glibc.malloc.check=3"}, "'GLIBC_TUNABLES'"),
        ({"HYDRA_LAUNCHER_EXEC": "/tmp/evil"}, "'HYDRA_LAUNCHER_EXEC'"),
        ({"HYDRA_CONFIG_FILE": "/tmp/evil"}, "'HYDRA_CONFIG_FILE'"),
        ({"PMI_PORT": "evil:1"}, "'PMI_PORT'"),
        ({"SALTCLUSTER_JOB": "0" * 32}, "'SALTCLUSTER_JOB'"),
        ({"UCX_MODULE_DIR": "/tmp"}, "'UCX_MODULE_DIR'"),
        ({"UCX_GDB_COMMAND": "/tmp/evil"}, "'UCX_GDB_COMMAND'"),
        ({"UCX_HANDLE_ERRORS": "debug"}, "'UCX_HANDLE_ERRORS'"),
        ({"UCX_LOG_FILE": "/tmp/x"}, "'UCX_LOG_FILE'"),
        ({"FI_PROVIDER_PATH": "/tmp"}, "'FI_PROVIDER_PATH'"),
        ({"MPICH_DBG_FILENAME": "/tmp/x"}, "'MPICH_DBG_FILENAME'"),
        ({"PATH": "/tmp"}, "'PATH'"),
        ({"HOME": "/tmp"}, "'HOME'"),
        ({"BASH_ENV": "/tmp/evil.sh"}, "'BASH_ENV'"),
        ({"PYTHONPATH": "/tmp"}, "'PYTHONPATH'"),
        ({"PERL5OPT": "-Mevil"}, "'PERL5OPT'"),
        ({"X": "a\0b"}, "'X'"),
        ({"X": "a\rb"}, "'X'"),
    ],
)
def test_bad_env_refused_naming_it(env, named, calls):
    with pytest.raises(SaltInvocationError, match=re.escape(named)):
        mpi.build_command("cpi", env=env)
    with pytest.raises(SaltInvocationError, match=re.escape(named)):
        mpi.run("cpi", env=env)
    assert calls == []


@pytest.mark.parametrize(
    "env",
    [
        {"OMP_NUM_THREADS": "2"},
        {"UCX_TLS": "tcp,self"},
        {"MPIR_CVAR_ASYNC_PROGRESS": "1"},
        {"MPIR_CVAR_CH4_NETMOD": "ucx"},
        {"LD_DEBUG": "libs"},
        {"LD_DEBUG": "files,bindings"},
        {"MY_APP_ITERATIONS": "-5:x"},
    ],
)
def test_harmless_env_passes(env):
    cmd = mpi.build_command("cpi", env=env, job=JOB)
    [(name, value)] = env.items()
    i = cmd.index(name)
    assert cmd[i - 1 : i + 2] == ["-genv", name, value]
    [(options, program)] = hydra_sections(cmd)
    assert program[0].endswith("/cpi")


@pytest.mark.parametrize(
    "np,oversubscribe,named",
    [
        (17, True, "np=17"),
        (100, True, "np=100"),
        (10**9, True, "np=1000000000"),
        (float("inf"), True, "np=inf"),
        (float("nan"), True, "np=nan"),
        (2.5, False, "np=2.5"),
        ("4 : /bin/id", False, "np='4 : /bin/id'"),
    ],
)
def test_np_capped_even_with_oversubscribe(np, oversubscribe, named):
    with pytest.raises(SaltInvocationError, match=re.escape(named)):
        mpi.build_command("cpi", np=np, oversubscribe=oversubscribe)


def test_np_cap_defaults_to_four_times_the_slots():
    # 2 hosts x 2 slots: 16 ranks at most, whatever oversubscribe says
    cmd = mpi.build_command("cpi", np=16, oversubscribe=True)
    assert cmd[cmd.index("-n") + 1] == "16"
    with pytest.raises(SaltInvocationError, match=r"np=9 .*mpi:max_np.*8"):
        mpi.build_command("cpi", np=9, hosts="node1", oversubscribe=True)


def test_np_cap_from_pillar(cfg):
    cfg["mpi"]["max_np"] = 6
    mpi.build_command("cpi", np=6, oversubscribe=True)
    with pytest.raises(SaltInvocationError, match=r"np=7 .*mpi:max_np.*6"):
        mpi.build_command("cpi", np=7, oversubscribe=True)


@pytest.mark.parametrize("oversubscribe", ["yes", 1, None])
def test_oversubscribe_must_be_a_bool(oversubscribe):
    with pytest.raises(SaltInvocationError, match=re.escape(f"oversubscribe={oversubscribe!r}")):
        mpi.build_command("cpi", np=8, oversubscribe=oversubscribe)


@pytest.mark.parametrize("ppn", ["\u00b2", "1\n", -1, 1.5, 10**6])
def test_ppn_refused(ppn):
    with pytest.raises(SaltInvocationError, match=re.escape(f"ppn={ppn!r}")):
        mpi.build_command("cpi", np=2, ppn=ppn)


@pytest.mark.parametrize("program", ["cpi\n", "hellow\n"])
def test_resolve_trailing_newline_refused(program):
    with pytest.raises(SaltInvocationError, match=re.escape(repr(program))):
        mpi.resolve(program)


@pytest.mark.parametrize(
    "key,value",
    [
        ("max_np", 0), ("max_np", "16"), ("max_np", True),
        ("max_timeout", 0), ("max_timeout", 10**9),
        ("max_output", 10), ("max_output", "1M"),
        ("programs", ["cpi\n"]), ("ucx_tls", "tcp\n"),
    ],
)  # fmt: skip
def test_validate_refuses_bad_mpi_limits(cfg, grains, key, value):
    cfg = copy.deepcopy(cfg)
    cfg["mpi"][key] = value
    with pytest.raises(CommandExecutionError, match=re.escape(f"saltcluster:mpi:{key}")):
        cluster.validate(cfg, grains=grains)


def test_validate_timeout_within_max_timeout(cfg, grains):
    cfg = copy.deepcopy(cfg)
    cfg["mpi"].update(timeout=600, max_timeout=300)
    with pytest.raises(CommandExecutionError, match="saltcluster:mpi:timeout: 600"):
        cluster.validate(cfg, grains=grains)


def test_run_passes_the_output_cap_and_reports_the_cut(cfg, calls, job_result):
    cfg["mpi"]["max_output"] = 4096
    job_result.update(stdout="head [cut] tail", output_cut={"stdout": 123, "stderr": 0})
    ret = mpi.run("cpi", np=4)
    assert calls[0][1]["max_output"] == 4096
    assert ret["output_cut"] == {"stdout": 123, "stderr": 0}


# --- the bounded runner, for real (no MPI: plain processes) ---------------


def _py(code):
    return [sys.executable, "-c", code]


def test_runner_keeps_head_and_tail_and_says_what_it_cut():
    code = "import sys; sys.stdout.write('A' * 600 + 'B' * 100000 + 'Z' * 600); sys.stderr.write('err')"
    res = REAL_RUN_BOUNDED(_py(code), env=dict(os.environ), cwd="/", timeout=30, max_output=1024)
    assert res["retcode"] == 0 and res["timed_out"] is False
    assert res["stdout"].startswith("A" * 512) and res["stdout"].endswith("Z" * 512)
    assert res["output_cut"] == {"stdout": 101200 - 1024, "stderr": 0}
    assert "100176 bytes of stdout cut" in res["stdout"] and "mpi:max_output" in res["stdout"]
    assert len(res["stdout"]) < 1024 + 200
    assert res["stderr"] == "err"


def test_runner_memory_stays_bounded_on_a_flood():
    # 64 MiB through a 64 KiB cap: read to the end, nothing but the cap kept
    code = "import sys\nfor _ in range(1024): sys.stdout.write('x' * 65536)"
    res = REAL_RUN_BOUNDED(_py(code), env=dict(os.environ), cwd="/", timeout=60, max_output=65536)
    assert res["retcode"] == 0 and res["output_cut"]["stdout"] == 64 * 2**20 - 65536
    assert len(res["stdout"]) < 65536 + 200


def test_runner_timeout_ends_the_same_pid():
    start = time.monotonic()
    res = REAL_RUN_BOUNDED(
        _py("import time; print('started', flush=True); time.sleep(60)"),
        env=dict(os.environ), cwd="/", timeout=1, max_output=1024,
    )  # fmt: skip
    assert res["timed_out"] is True and res["stdout"] == "started"
    assert time.monotonic() - start < 10
    with pytest.raises(ProcessLookupError):
        os.kill(res["pid"], 0)


def test_runner_timeout_kills_what_ignores_sigterm():
    code = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('up', flush=True); time.sleep(60)"
    start = time.monotonic()
    res = REAL_RUN_BOUNDED(_py(code), env=dict(os.environ), cwd="/", timeout=1, max_output=1024)
    assert res["timed_out"] is True and res["retcode"] == -signal.SIGKILL
    assert time.monotonic() - start < 15


# --- the per-job kill sweep, for real (plain processes with the tag) ------


def _tagged(tag, *cmd, **kw):
    env = dict(os.environ, SALTCLUSTER_JOB=tag) if tag else dict(os.environ)
    return subprocess.Popen(list(cmd), env=env, stdin=subprocess.DEVNULL, **kw)


def test_sweep_kills_the_tagged_processes_and_their_proxy_only(tmp_path):
    mine, other = "a" * 32, "b" * 32
    # a fake hydra_pmi_proxy (no tag, as over ssh) whose rank carries the tag
    proxy = tmp_path / "hydra_pmi_proxy"
    proxy.write_text('#!/bin/sh\nSALTCLUSTER_JOB="$1" sleep 300 &\nwait\n')
    proxy.chmod(0o755)
    procs = {
        "rank": _tagged(mine, "sleep", "300"),
        "proxy": _tagged(None, str(proxy), mine),
        "other_rank": _tagged(other, "sleep", "300"),
        "other_proxy": _tagged(None, str(proxy), other),
        "untagged": _tagged(None, "sleep", "300"),
        "prefix": _tagged(mine + "0", "sleep", "300"),
    }
    try:
        time.sleep(0.5)
        res = subprocess.run(["sh", "-c", mpi._sweep_script(mine)], capture_output=True, text=True, timeout=30)
        assert res.returncode == 0, res.stderr
        time.sleep(0.3)
        alive = {name for name, p in procs.items() if p.poll() is None}
        assert alive == {"other_rank", "other_proxy", "untagged", "prefix"}
        # the rank, the proxy, the proxy's rank
        assert res.stdout.strip() == "killed 3"
    finally:
        # what this test started, by pid: the processes and the proxies' ranks
        for pid in [c for p in procs.values() for c in _children(p.pid)] + [p.pid for p in procs.values()]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for p in procs.values():
            p.wait()


def _children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as fh:
            return [int(c) for c in fh.read().split()]
    except OSError:
        return []


def test_sweep_refuses_a_malformed_tag():
    with pytest.raises(SaltInvocationError):
        mpi._sweep_script("x'; reboot; '")
