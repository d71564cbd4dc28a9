"""Custom states: nfs_export, mpi_program, mpi_venv, cluster_user, user_file (test=True honoured)."""

import os
import pathlib
import pwd
import shutil
import stat
import tempfile

import cluster_user
import mpi_program
import mpi_venv
import nfs_export
import pytest
import user_file
import userfs


@pytest.fixture
def calls():
    return []


@pytest.fixture
def configure_loader_modules(calls):
    def run_all(cmd, **kwargs):
        calls.append(cmd)
        return {"retcode": 0, "stdout": "", "stderr": ""}

    salt = {"cmd.run_all": run_all, "service.stop": lambda s: True, "service.start": lambda s: True}
    # the real userfs: its file operations are what mpi_program and user_file are about
    salt.update({f"userfs.{fun}": getattr(userfs, fun) for fun in USERFS})
    opts = {"test": False}
    return {
        nfs_export: {"__salt__": salt, "__opts__": opts},
        mpi_program: {"__salt__": salt, "__opts__": opts},
        mpi_venv: {"__salt__": salt, "__opts__": opts},
        cluster_user: {"__salt__": salt, "__opts__": opts},
        user_file: {"__salt__": salt, "__opts__": opts, "__env__": "base"},
    }


USERFS = ("inspect", "write", "rename", "remove", "directory", "manage")


@pytest.fixture
def exports(tmp_path):
    path = tmp_path / "exports"
    path.write_text("# keep me\n/srv/other 10.0.0.0/8(ro)\n/home/jobhandler 1.2.3.4(rw)\n")
    return path


def present(exports, **kw):
    args = {"clients": ["10.5.5.0/24"], "options": ["rw", "sync"], "exports": str(exports)}
    args.update(kw)
    return nfs_export.present("/home/jobhandler", **args)


def test_export_replaces_only_its_line_and_reexports(exports, calls, monkeypatch):
    monkeypatch.setattr(nfs_export.salt.utils.path, "which", lambda n: "/usr/sbin/exportfs")
    ret = present(exports)
    assert ret["result"] is True
    assert ret["changes"] == {
        "old": "/home/jobhandler 1.2.3.4(rw)",
        "new": "/home/jobhandler 10.5.5.0/24(rw,sync)",
    }
    assert exports.read_text() == (
        "# keep me\n/srv/other 10.0.0.0/8(ro)\n/home/jobhandler 10.5.5.0/24(rw,sync)\n"
    )
    assert calls == [["exportfs", "-ra"]]
    # idempotent: no change, no re-export
    ret = present(exports)
    assert ret["result"] is True and ret["changes"] == {} and calls == [["exportfs", "-ra"]]


def test_export_test_mode_touches_nothing(exports, calls):
    before = exports.read_text()
    nfs_export.__opts__["test"] = True
    ret = present(exports)
    assert ret["result"] is None and ret["changes"]["new"].startswith("/home/jobhandler 10.5.5.0/24")
    assert exports.read_text() == before and calls == []


def test_export_creates_missing_file(tmp_path, monkeypatch):
    monkeypatch.setattr(nfs_export.salt.utils.path, "which", lambda n: None)
    ret = present(tmp_path / "new-exports")
    assert ret["result"] is True and "exportfs not found" in ret["comment"]
    assert (tmp_path / "new-exports").read_text() == "/home/jobhandler 10.5.5.0/24(rw,sync)\n"


@pytest.mark.parametrize(
    "kw,bad",
    [
        ({"clients": ["10.5.5.0/24 *(rw)"]}, "'10.5.5.0/24 *(rw)'"),
        ({"clients": []}, "no clients"),
        ({"options": ["rw", "no root squash"]}, "'no root squash'"),
    ],
)
def test_export_refuses_bad_input_before_writing(exports, kw, bad, calls):
    before = exports.read_text()
    ret = present(exports, **kw)
    assert ret["result"] is False and bad in ret["comment"]
    assert exports.read_text() == before and calls == []


def test_export_refuses_relative_path(exports):
    ret = nfs_export.present("home/x", clients=["a"], exports=str(exports))
    assert ret["result"] is False and "'home/x'" in ret["comment"]


def test_export_reexport_failure_reported(exports, monkeypatch):
    monkeypatch.setattr(nfs_export.salt.utils.path, "which", lambda n: "/usr/sbin/exportfs")
    nfs_export.__salt__["cmd.run_all"] = lambda cmd, **kw: {"retcode": 1, "stdout": "", "stderr": "nfsd gone"}
    ret = present(exports)
    assert ret["result"] is False and "nfsd gone" in ret["comment"]


def test_export_absent(exports, calls, monkeypatch):
    monkeypatch.setattr(nfs_export.salt.utils.path, "which", lambda n: "/usr/sbin/exportfs")
    ret = nfs_export.absent("/srv/other", exports=str(exports))
    assert ret["changes"] == {"old": "/srv/other 10.0.0.0/8(ro)", "new": None}
    assert "/srv/other" not in exports.read_text() and "# keep me" in exports.read_text()
    assert nfs_export.absent("/srv/other", exports=str(exports))["changes"] == {}


@pytest.fixture
def source(tmp_path):
    src = tmp_path / "cpi.c"
    src.write_text("int main(void){return 0;}\n")
    return src


def fake_mpicc(calls):
    def run_all(cmd, **kwargs):
        calls.append(cmd)
        out = cmd[cmd.index("-o") + 1]
        with open(out, "w") as fh:
            fh.write("binary")
        return {"retcode": 0, "stdout": "", "stderr": ""}

    return run_all


def test_program_built_once_then_up_to_date(tmp_path, source, calls, monkeypatch):
    monkeypatch.setattr(mpi_program.salt.utils.path, "which", lambda n: "/usr/bin/mpicc")
    mpi_program.__salt__["cmd.run_all"] = fake_mpicc(calls)
    binary = tmp_path / "cpi"
    ret = mpi_program.built(str(binary), str(source))
    assert ret["result"] is True and ret["changes"]["built"] == str(binary)
    assert binary.read_text() == "binary" and len(calls) == 1
    ret = mpi_program.built(str(binary), str(source))
    assert ret["result"] is True and ret["changes"] == {} and len(calls) == 1
    source.write_text("int main(void){return 1;}\n")
    ret = mpi_program.built(str(binary), str(source))
    assert ret["changes"] and len(calls) == 2


def test_program_test_mode(tmp_path, source, calls, monkeypatch):
    monkeypatch.setattr(mpi_program.salt.utils.path, "which", lambda n: "/usr/bin/mpicc")
    mpi_program.__opts__["test"] = True
    ret = mpi_program.built(str(tmp_path / "cpi"), str(source))
    assert ret["result"] is None and ret["changes"] and calls == []
    assert not (tmp_path / "cpi").exists()


def test_program_compile_error_keeps_old_binary(tmp_path, source, monkeypatch):
    monkeypatch.setattr(mpi_program.salt.utils.path, "which", lambda n: "/usr/bin/mpicc")
    binary = tmp_path / "cpi"
    binary.write_text("old")
    mpi_program.__salt__["cmd.run_all"] = lambda cmd, **kw: {"retcode": 1, "stdout": "", "stderr": "syntax error"}
    ret = mpi_program.built(str(binary), str(source))
    assert ret["result"] is False and "syntax error" in ret["comment"] and ret["changes"] == {}
    assert binary.read_text() == "old"


def test_program_missing_source_and_compiler(tmp_path, monkeypatch):
    ret = mpi_program.built(str(tmp_path / "x"), str(tmp_path / "x.c"))
    assert ret["result"] is False and "does not exist" in ret["comment"]
    (tmp_path / "x.c").write_text("")
    monkeypatch.setattr(mpi_program.salt.utils.path, "which", lambda n: None)
    ret = mpi_program.built(str(tmp_path / "x"), str(tmp_path / "x.c"))
    assert ret["result"] is False and "not found" in ret["comment"]


@pytest.mark.parametrize("planted", ["cpi", "cpi.sha256", "cpi.saltcluster-build"])
@pytest.mark.parametrize("kind", ["symlink", "hardlink"])
def test_program_links_replaced_never_followed(tmp_path, source, calls, monkeypatch, planted, kind):
    """A link at the binary, the stamp or the build output: rebuilt, the
    link's target untouched, the names regular files with one link."""
    monkeypatch.setattr(mpi_program.salt.utils.path, "which", lambda n: "/usr/bin/mpicc")
    mpi_program.__salt__["cmd.run_all"] = fake_mpicc(calls)
    target = tmp_path / "outside"
    target.write_text("not the program's\n")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    binary = bindir / "cpi"
    assert mpi_program.built(str(binary), str(source))["result"] is True
    if planted != "cpi":
        (bindir / "cpi.sha256").unlink()  # due for a rebuild either way
    plant(kind, bindir / planted, target)
    ret = mpi_program.built(str(binary), str(source))
    assert ret["result"] is True and ret["changes"]["built"] == str(binary), ret["comment"]
    assert target.read_text() == "not the program's\n" and target.stat().st_nlink == 1
    for name in ("cpi", "cpi.sha256"):
        st = os.lstat(bindir / name)
        assert stat.S_ISREG(st.st_mode) and st.st_nlink == 1
    assert binary.read_text() == "binary" and not os.path.lexists(bindir / "cpi.saltcluster-build")
    assert mpi_program.built(str(binary), str(source))["changes"] == {}


# -- user_file: files in a user's home, written as the user (here: this process's user)


ME = pwd.getpwuid(os.geteuid()).pw_name


def plant(kind, name, target):
    if os.path.lexists(name):
        os.unlink(name)
    if kind == "symlink":
        os.symlink(target, name)
    else:
        os.link(target, name)


@pytest.mark.parametrize(
    "kind,replaced", [("symlink", "symlink"), ("hardlink", "file with 2 hard links")]
)
def test_user_file_link_replaced_not_written_through(tmp_path, kind, replaced):
    target = tmp_path / "outside"
    target.write_text("keep\n")
    target.chmod(0o644)
    name = tmp_path / "hosts"
    plant(kind, name, target)
    ret = user_file.managed(str(name), ME, contents="node1:2", mode="0600")
    assert ret["result"] is True and ret["changes"]["replaced"] == replaced
    assert target.read_text() == "keep\n" and stat.S_IMODE(target.stat().st_mode) == 0o644
    st = os.lstat(name)
    assert stat.S_ISREG(st.st_mode) and st.st_nlink == 1 and stat.S_IMODE(st.st_mode) == 0o600
    assert name.read_text() == "node1:2\n"
    ret = user_file.managed(str(name), ME, contents="node1:2", mode="0600")
    assert ret["result"] is True and ret["changes"] == {}


def test_user_file_test_mode_touches_nothing(tmp_path):
    target = tmp_path / "outside"
    target.write_text("keep\n")
    name = tmp_path / "hosts"
    name.symlink_to(target)
    user_file.__opts__["test"] = True
    ret = user_file.managed(str(name), ME, contents="new")
    assert ret["result"] is None and ret["changes"]["replaced"] == "symlink"
    assert name.is_symlink() and target.read_text() == "keep\n"
    ret = user_file.directory(str(tmp_path / "bin"), ME)
    assert ret["result"] is None and not (tmp_path / "bin").exists()


def test_user_file_diff_mode_and_source(tmp_path):
    src = tmp_path / "cpi.c"
    src.write_bytes(b"int main(void){return 0;}\n")
    name = tmp_path / "copy.c"
    name.write_text("old\n")
    name.chmod(0o600)
    ret = user_file.managed(str(name), ME, source=str(src))
    assert ret["result"] is True and "-old" in ret["changes"]["diff"] and ret["changes"]["mode"] == "0644"
    assert name.read_bytes() == src.read_bytes() and stat.S_IMODE(name.stat().st_mode) == 0o644
    name.chmod(0o600)
    ino = name.stat().st_ino
    ret = user_file.managed(str(name), ME, source=str(src))
    # right content, wrong mode: fixed in place, not rewritten
    assert ret["changes"] == {"mode": "0644"} and name.stat().st_ino == ino


def test_user_file_directory_symlink_replaced(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    name = tmp_path / "bin"
    name.symlink_to(outside)
    ret = user_file.directory(str(name), ME, mode="0750")
    assert ret["result"] is True and ret["changes"]["replaced"] == "symlink"
    assert not name.is_symlink() and name.is_dir() and stat.S_IMODE(name.stat().st_mode) == 0o750
    assert outside.is_dir() and os.listdir(outside) == []
    assert user_file.directory(str(name), ME, mode="0750")["changes"] == {}
    (tmp_path / "file").write_text("")
    ret = user_file.directory(str(tmp_path / "file"), ME)
    assert ret["result"] is False and "not a directory" in ret["comment"]


def test_user_file_refuses_bad_arguments(tmp_path):
    assert "absolute" in user_file.managed("hosts", ME, contents="x")["comment"]
    assert "exactly one" in user_file.managed(str(tmp_path / "x"), ME)["comment"]
    ret = user_file.managed(str(tmp_path / "x"), "no-such-user-here", contents="x")
    assert ret["result"] is False and "'no-such-user-here' does not exist" in ret["comment"]
    user_file.__opts__["test"] = True
    ret = user_file.managed(str(tmp_path / "x"), "no-such-user-here", contents="x")
    assert ret["result"] is None and "once user no-such-user-here exists" in ret["comment"]


@pytest.mark.skipif(os.geteuid() != 0, reason="dropping to another user needs root")
def test_userfs_acts_with_the_users_rights_only():
    """As 'nobody': root's 0600 file is unreadable and root's directory not
    writable, whatever the path (the kernel checks, not the module)."""
    root = pathlib.Path(tempfile.mkdtemp(prefix="saltcluster-userfs-"))  # pytest's tmp root is 0700
    try:
        root.chmod(0o755)
        secret = root / "secret"
        secret.write_text("root only\n")
        secret.chmod(0o600)
        info = userfs.inspect(str(secret), user="nobody")
        assert info["kind"] == "file" and info["uid"] == 0 and "content" not in info and not info["owned_alone"]
        with pytest.raises(userfs.CommandExecutionError, match="Permission denied"):
            userfs.write(str(root / "new"), "x", user="nobody")
        assert os.listdir(root) == ["secret"] and secret.read_text() == "root only\n"
    finally:
        shutil.rmtree(root)


class Pw:
    def __init__(self, name, uid):
        self.pw_name, self.pw_uid = name, uid


@pytest.fixture
def passwd(monkeypatch):
    users = {100: Pw("messagebus", 100), 101: Pw("_apt", 101)}

    def getpwuid(uid):
        return users[uid]

    monkeypatch.setattr(cluster_user.pwd, "getpwuid", getpwuid)
    monkeypatch.setattr(cluster_user.pwd, "getpwall", lambda: list(users.values()) + [Pw("sys", 999)])
    return users


def test_uid_free_names_holder(passwd, calls):
    ret = cluster_user.uid_free("jobhandler", 100)
    assert ret["result"] is False
    assert "held by 'messagebus'" in ret["comment"] and "relocate_uid_holder" in ret["comment"]
    assert calls == []


def test_uid_free_when_free_or_owned(passwd):
    assert cluster_user.uid_free("jobhandler", 4242)["result"] is True
    passwd[100] = Pw("jobhandler", 100)
    assert cluster_user.uid_free("jobhandler", 100)["comment"] == "uid 100 already belongs to jobhandler"


def test_uid_relocate_moves_system_account(passwd, calls):
    ret = cluster_user.uid_free("jobhandler", 100, relocate=True, restart_services=["dbus"])
    assert ret["result"] is True
    assert ret["changes"] == {"messagebus": {"old": 100, "new": 998}}
    assert calls[0] == ["usermod", "-u", "998", "messagebus"]
    assert calls[1][:4] == ["find", "/", "-xdev", "-uid"]


def test_uid_relocate_test_mode(passwd, calls):
    cluster_user.__opts__["test"] = True
    ret = cluster_user.uid_free("jobhandler", 100, relocate=True)
    assert ret["result"] is None and ret["changes"] and calls == []


def test_uid_relocate_refuses_regular_user(passwd, calls):
    passwd[1000] = Pw("alice", 1000)
    ret = cluster_user.uid_free("jobhandler", 1000, relocate=True)
    assert ret["result"] is False and "'alice'" in ret["comment"] and calls == []


def test_uid_relocate_usermod_failure(passwd):
    cluster_user.__salt__["cmd.run_all"] = lambda cmd, **kw: {"retcode": 8, "stdout": "", "stderr": "user busy"}
    ret = cluster_user.uid_free("jobhandler", 100, relocate=True)
    assert ret["result"] is False and "user busy" in ret["comment"]


def test_real_passwd_is_read_when_not_patched():
    """uid 0 is root on every machine: unpatched, uid_free asks the real
    database and names root as the holder (and as the owner of its uid)."""
    assert pwd.getpwuid(0).pw_name == "root"
    ret = cluster_user.uid_free("jobhandler", 0)
    assert ret["result"] is False and "uid 0 wanted for jobhandler is held by 'root'" in ret["comment"]
    ret = cluster_user.uid_free("root", 0)
    assert ret == {"name": "root", "changes": {}, "result": True, "comment": "uid 0 already belongs to root"}


# -- mpi_venv: the pypi provider's MPICH in a venv at one prefix


@pytest.fixture
def pip(tmp_path):
    """A stand-in for `python -m venv` and pip: records each command and lays
    out what the real ones would (the wheel's bin and lib files)."""
    log = {"calls": [], "fail": None, "layout": mpi_venv.LAYOUT}

    def run_all(cmd, **kwargs):
        log["calls"].append((cmd, kwargs))
        if log["fail"] and log["fail"] in cmd:
            return {"retcode": 1, "stdout": "", "stderr": f"ERROR: {log['fail']} failed"}
        if cmd[1:3] == ["-m", "venv"]:
            prefix = cmd[3]
            os.makedirs(os.path.join(prefix, "bin"))
            open(os.path.join(prefix, "pyvenv.cfg"), "w").close()
            os.symlink(cmd[0], os.path.join(prefix, "bin", "python"))
        else:
            prefix = os.path.dirname(os.path.dirname(cmd[0]))
            for rel in log["layout"]:
                os.makedirs(os.path.dirname(os.path.join(prefix, rel)), exist_ok=True)
                open(os.path.join(prefix, rel), "w").close()
        return {"retcode": 0, "stdout": "", "stderr": ""}

    mpi_venv.__salt__["cmd.run_all"] = run_all
    return log


def venv(prefix, req="mpich==5.0.2"):
    return mpi_venv.installed(str(prefix), requirement=req, python="/usr/bin/python3")


def test_venv_created_then_unchanged(tmp_path, pip):
    prefix = tmp_path / "opt/mpich"
    ret = venv(prefix)
    assert ret["result"] is True, ret["comment"]
    assert ret["changes"] == {
        "venv": f"{prefix} from /usr/bin/python3",
        "installed": {"old": None, "new": "mpich==5.0.2"},
    }
    (venv_cmd, venv_kw), (pip_cmd, pip_kw) = pip["calls"]
    assert venv_cmd == ["/usr/bin/python3", "-m", "venv", str(prefix)]
    assert pip_cmd[:4] == [str(prefix / "bin/python"), "-m", "pip", "install"] and pip_cmd[-1] == "mpich==5.0.2"
    # readable by the MPI user; never through a shell
    assert all(kw["umask"] == "022" and kw["python_shell"] is False for kw in (venv_kw, pip_kw))
    # re-apply: nothing to do, pip not even asked
    ret = venv(prefix)
    assert ret["result"] is True and ret["changes"] == {} and len(pip["calls"]) == 2


def test_venv_test_mode_touches_nothing(tmp_path, pip):
    mpi_venv.__opts__["test"] = True
    ret = venv(tmp_path / "mpich")
    assert ret["result"] is None and ret["changes"]["installed"]["new"] == "mpich==5.0.2"
    assert "would be installed" in ret["comment"]
    assert pip["calls"] == [] and not (tmp_path / "mpich").exists()


def test_venv_new_requirement_reinstalls_without_a_new_venv(tmp_path, pip):
    venv(tmp_path)
    ret = venv(tmp_path, "mpich==5.0.3")
    assert ret["result"] is True
    assert ret["changes"] == {"installed": {"old": "mpich==5.0.2", "new": "mpich==5.0.3"}}
    assert [c[2] for c, _ in pip["calls"]] == ["venv", "pip", "pip"] and pip["calls"][-1][0][-1] == "mpich==5.0.3"
    assert "--force-reinstall" in pip["calls"][-1][0]


def test_venv_local_wheel_reinstalled_when_its_content_changes(tmp_path, pip):
    wheel = tmp_path / "mpich-5.0.2-py3-none-manylinux_2_28_x86_64.whl"
    wheel.write_bytes(b"one")
    prefix = tmp_path / "prefix"
    assert venv(prefix, str(wheel))["result"] is True
    assert venv(prefix, str(wheel))["changes"] == {}
    wheel.write_bytes(b"two")
    ret = venv(prefix, str(wheel))
    assert ret["changes"] and len(pip["calls"]) == 3


def test_venv_files_removed_by_hand_are_reinstalled(tmp_path, pip):
    venv(tmp_path)
    (tmp_path / "lib/libmpi.so.12").unlink()
    ret = venv(tmp_path)
    assert ret["result"] is True and ret["changes"] and (tmp_path / "lib/libmpi.so.12").exists()


def test_venv_pip_failure_reported_and_retried(tmp_path, pip):
    pip["fail"] = "mpich==5.0.2"
    ret = venv(tmp_path / "p")
    assert ret["result"] is False and "ERROR: mpich==5.0.2 failed" in ret["comment"]
    assert not (tmp_path / "p" / mpi_venv.STAMP).exists()
    pip["fail"] = None
    ret = venv(tmp_path / "p")
    assert ret["result"] is True and ret["changes"]["installed"]["new"] == "mpich==5.0.2"
    assert "venv" not in ret["changes"]  # made by the failed run already


def test_venv_not_mpich_refused(tmp_path, pip):
    pip["layout"] = ("lib/python3.11/site-packages/numpy/__init__.py",)
    ret = venv(tmp_path, "numpy")
    assert ret["result"] is False and "bin/mpiexec" in ret["comment"] and "MPICH's wheel" in ret["comment"]
    assert not (tmp_path / mpi_venv.STAMP).exists()


def test_venv_missing_python_named(tmp_path, pip):
    ret = mpi_venv.installed(str(tmp_path / "p"), requirement="mpich==5.0.2", python="/nonexistent/python3")
    assert ret["result"] is False and "/nonexistent/python3" in ret["comment"] and pip["calls"] == []
