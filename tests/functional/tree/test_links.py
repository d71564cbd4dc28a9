"""Links planted in the MPI user's home: the states that write there run as
root, yet a symlink or hard link the user put in place of any file they
write (or a symlink in place of a directory) changes nothing outside the
home, and afterwards the home holds the user's own regular file.

A real user (made by cluster.users) whose home is in a scratch directory;
the "root file" each link points to is a fresh root-owned 0644 file (or an
empty root-owned directory) outside the home, on the same filesystem.
Needs root: the states drop to the user and the test makes a real account.
"""

import grp
import json
import os
import pathlib
import pwd
import shutil
import stat
import subprocess
import tempfile

import pytest

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: makes a user and plants root's files")

MINION_ID = "links-master"
ROLES = ["master"]


def _free_id():
    """A uid and gid free here (other test runs on this machine may hold one)."""
    for uid in range(64131, 64199):
        try:
            pwd.getpwuid(uid)
            continue
        except KeyError:
            pass
        try:
            grp.getgrgid(uid)
            continue
        except KeyError:
            return uid
    return None


UID = _free_id()
USER = {"name": f"sclk{UID}", "uid": UID, "gid": UID, "group": f"sclk{UID}"}
PROGRAMS_EXCLUDED = ("cluster.mpi.package", "cluster.mpi.config")  # no package installs here
LINKS = ["symlink", "hardlink"]


@pytest.fixture(scope="module")
def workdir():
    # not under pytest's tmp root (mode 0700): the user must reach its home
    root = pathlib.Path(tempfile.mkdtemp(prefix="saltcluster-links-"))
    root.chmod(0o755)
    (root / "home").mkdir()
    (root / "outside").mkdir()
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def pillar_root(tmp_path_factory, workdir):
    root = tmp_path_factory.mktemp("pillar")
    (root / "top.sls").write_text("base:\n  '*':\n    - saltcluster\n    - mine\n    - links\n")
    override = {
        "user": dict(USER, home=str(workdir / "home" / USER["name"]), relocate_uid_holder=False),
        # Debian's mpicc: compiling needs no MPICH that runs
        "mpi": {"provider": "debian", "programs": ["cpi"], "profile_file": str(workdir / "mpi.sh")},
    }
    (root / "links.sls").write_text(json.dumps({"saltcluster": override}))
    return root


@pytest.fixture(scope="module")
def user(loaders):
    if UID is None:
        pytest.skip("no free uid in 64131-64198 on this machine")
    try:
        _ok(loaders.modules.state.sls("cluster.users"))
        yield pwd.getpwnam(USER["name"])
    finally:
        loaders.modules.state.single("user.absent", name=USER["name"], purge=True)
        loaders.modules.state.single("group.absent", name=USER["group"])


@pytest.fixture
def home(user):
    return pathlib.Path(user.pw_dir)


@pytest.fixture
def outside(workdir):
    """A root-owned 0644 file outside the home, as /etc/... would be."""
    fd, path = tempfile.mkstemp(dir=workdir / "outside", prefix="rootfile-")
    os.write(fd, b"root's own file: must not change\n")
    os.fchmod(fd, 0o644)
    os.fchown(fd, 0, 0)
    os.close(fd)
    return pathlib.Path(path)


@pytest.fixture
def outside_dir(workdir):
    path = pathlib.Path(tempfile.mkdtemp(dir=workdir / "outside", prefix="rootdir-"))
    path.chmod(0o755)
    return path


def _states(ret):
    raw = getattr(ret, "raw", ret)
    assert isinstance(raw, dict), raw
    return {key.split("_|-")[1]: value for key, value in raw.items()}


def _ok(ret):
    failed = {k: v["comment"] for k, v in _states(ret).items() if v["result"] is False}
    assert not failed


def _changed(ret):
    return {k: v["changes"] for k, v in _states(ret).items() if v["changes"]}


def snapshot(path):
    st = os.lstat(path)
    return {"content": path.read_bytes(), "uid": st.st_uid, "gid": st.st_gid,
            "mode": stat.S_IMODE(st.st_mode), "inode": st.st_ino}  # fmt: skip


def plant(kind, name, target, user):
    """What the user (or a job of theirs) can do in its home: put a link in
    place of a file the states write."""
    if name.is_symlink() or name.exists():
        name.unlink()
    if kind == "symlink":
        name.symlink_to(target)
        os.lchown(name, user.pw_uid, user.pw_gid)
    else:  # the user may not make this one (protected_hardlinks); assume it made
        os.link(target, name)
    return snapshot(target)


def assert_safe(name, target, before, user):
    assert snapshot(target) == before, f"{target} changed through {name}"
    st = os.lstat(name)
    assert stat.S_ISREG(st.st_mode), f"{name} is not a regular file"
    assert (st.st_uid, st.st_nlink) == (user.pw_uid, 1), f"{name}: uid {st.st_uid}, {st.st_nlink} links"


def apply_programs(modules):
    """cluster.mpi.programs as rendered, without the package and profile
    states it requires (installing MPICH is not this test's business)."""
    high = modules.state.show_sls("cluster.mpi.programs")
    assert isinstance(high, dict), high
    high = {k: v for k, v in high.items() if v["__sls__"] not in PROGRAMS_EXCLUDED}
    for body in high.values():
        for key, args in body.items():
            if key.startswith("__"):
                continue
            for arg in args:
                if isinstance(arg, dict) and "require" in arg:
                    arg["require"] = [r for r in arg["require"] if "sls" not in r]
    return modules.state.high(high)


@pytest.fixture
def mpicc(modules):
    path = modules.cluster.settings()["mpi"]["mpicc"]
    if not os.access(path, os.X_OK):
        pytest.skip(f"{path} is not installed")
    return path


# -- the hostfile -----------------------------------------------------------


@pytest.mark.parametrize("kind", LINKS)
def test_hostfile_link_is_replaced_not_followed(modules, home, user, outside, kind):
    _ok(modules.state.sls("cluster.mpi.hostfile"))
    before = plant(kind, home / "hosts", outside, user)
    ret = modules.state.sls("cluster.mpi.hostfile")
    assert_safe(home / "hosts", outside, before, user)
    _ok(ret)
    assert "node1:2\n" in (home / "hosts").read_text()
    assert _changed(modules.state.sls("cluster.mpi.hostfile")) == {}


def test_hostfile_test_mode_touches_nothing(modules, home, user, outside):
    _ok(modules.state.sls("cluster.mpi.hostfile"))
    before = plant("symlink", home / "hosts", outside, user)
    ret = _states(modules.state.sls("cluster.mpi.hostfile", test=True))
    assert ret["cluster-mpi-hostfile-file-managed"]["result"] is None
    assert ret["cluster-mpi-hostfile-file-managed"]["changes"]["replaced"] == "symlink"
    assert snapshot(outside) == before and (home / "hosts").is_symlink()
    _ok(modules.state.sls("cluster.mpi.hostfile"))


# -- the key pair and authorized_keys ---------------------------------------


def _key_matches(ssh):
    pub = (ssh / "id_ed25519.pub").read_text().split()[:2]
    derived = subprocess.run(["ssh-keygen", "-y", "-f", str(ssh / "id_ed25519")], capture_output=True,
                             text=True, check=True).stdout.split()[:2]  # fmt: skip
    authorized = [line.split()[:2] for line in (ssh / "authorized_keys").read_text().splitlines()]
    return pub == derived and pub in authorized


@pytest.mark.parametrize("kind", LINKS)
@pytest.mark.parametrize("name", ["id_ed25519", "id_ed25519.pub", "authorized_keys"])
def test_ssh_key_files_link_is_replaced_not_followed(modules, home, user, outside, name, kind):
    _ok(modules.state.sls("cluster.ssh.keys"))
    ssh = home / ".ssh"
    before = plant(kind, ssh / name, outside, user)
    ret = modules.state.sls("cluster.ssh.keys")
    assert_safe(ssh / name, outside, before, user)
    _ok(ret)
    assert _key_matches(ssh)
    assert stat.S_IMODE((ssh / "id_ed25519").stat().st_mode) == 0o600
    assert stat.S_IMODE((ssh / "authorized_keys").stat().st_mode) == 0o600
    assert _changed(modules.state.sls("cluster.ssh.keys")) == {}


def test_ssh_keys_kept_and_idempotent(modules, home, user):
    _ok(modules.state.sls("cluster.ssh.keys"))
    ssh = home / ".ssh"
    key = (ssh / "id_ed25519").read_bytes()
    other = "ssh-ed25519 AAAAotherkey someone@else\n"
    (ssh / "authorized_keys").write_text(other + (ssh / "authorized_keys").read_text())
    assert _changed(modules.state.sls("cluster.ssh.keys")) == {}
    assert (ssh / "id_ed25519").read_bytes() == key
    assert "someone@else" in (ssh / "authorized_keys").read_text() and _key_matches(ssh)


# -- the program sources, binaries, build stamps -----------------------------


@pytest.mark.parametrize("kind", LINKS)
@pytest.mark.parametrize("name", ["src/cpi.c", "bin/cpi", "bin/cpi.sha256"])
def test_program_files_link_is_replaced_not_followed(modules, home, user, outside, mpicc, name, kind):
    _ok(apply_programs(modules))
    before = plant(kind, home / name, outside, user)
    ret = apply_programs(modules)
    assert_safe(home / name, outside, before, user)
    _ok(ret)
    for path in ("src/cpi.c", "bin/cpi", "bin/cpi.sha256"):
        assert_safe(home / path, outside, before, user)
    assert b"MPI_Init" in (home / "src/cpi.c").read_bytes()
    assert os.access(home / "bin/cpi", os.X_OK)
    assert _changed(apply_programs(modules)) == {}


@pytest.mark.parametrize("kind", LINKS)
def test_build_temp_link_is_not_followed(modules, home, user, outside, mpicc, kind):
    _ok(apply_programs(modules))
    (home / "bin/cpi.sha256").unlink()  # a rebuild is due
    before = plant(kind, home / "bin/cpi.saltcluster-build", outside, user)
    ret = apply_programs(modules)
    assert snapshot(outside) == before
    _ok(ret)
    assert not os.path.lexists(home / "bin/cpi.saltcluster-build")
    assert_safe(home / "bin/cpi", outside, before, user)


# -- the directories --------------------------------------------------------


@pytest.mark.parametrize("sub", [".ssh", "src", "bin"])
def test_directory_symlink_is_replaced_not_followed(modules, home, user, outside_dir, mpicc, sub):
    apply = (lambda: modules.state.sls("cluster.ssh.keys")) if sub == ".ssh" else (lambda: apply_programs(modules))
    _ok(apply())
    shutil.rmtree(home / sub)
    (home / sub).symlink_to(outside_dir)
    os.lchown(home / sub, user.pw_uid, user.pw_gid)
    ret = apply()
    st = os.stat(outside_dir)
    assert os.listdir(outside_dir) == [], f"written into {outside_dir} through ~/{sub}"
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (0, 0, 0o755)
    _ok(ret)
    st = os.lstat(home / sub)
    assert stat.S_ISDIR(st.st_mode) and st.st_uid == user.pw_uid
    assert _changed(apply()) == {}


def test_mpi_program_alone_never_writes_through_a_linked_bin_dir(modules, home, user, outside_dir, mpicc):
    """Even without the directory state first: the build, the rename and the
    stamp are the user's, so a root directory behind ~/bin stays empty."""
    _ok(apply_programs(modules))
    shutil.rmtree(home / "bin")
    (home / "bin").symlink_to(outside_dir)
    ret = _states(modules.state.single(
        "mpi_program.built", name=str(home / "bin/cpi"), source=str(home / "src/cpi.c"),
        mpicc=mpicc, runas=user.pw_name,
    ))  # fmt: skip
    (result,) = ret.values()
    assert os.listdir(outside_dir) == []
    assert os.stat(outside_dir).st_uid == 0
    assert result["result"] is False
    (home / "bin").unlink()
    _ok(apply_programs(modules))


# -- the state module itself ------------------------------------------------


def test_user_file_managed_new_file_modes_and_test_mode(modules, home, user):
    path = home / "managed.txt"
    ret = _states(modules.state.single("user_file.managed", name=str(path), user=user.pw_name,
                                       contents="one", mode="0640", test=True))  # fmt: skip
    (result,) = ret.values()
    assert result["result"] is None and result["changes"]["diff"] == "New file" and not path.exists()
    ret = _states(modules.state.single("user_file.managed", name=str(path), user=user.pw_name,
                                       contents="one", mode="0640"))  # fmt: skip
    (result,) = ret.values()
    assert result["result"] is True and path.read_text() == "one\n"
    st = path.stat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (user.pw_uid, user.pw_gid, 0o640)
    ret = _states(modules.state.single("user_file.managed", name=str(path), user=user.pw_name,
                                       contents="one", mode="0644"))  # fmt: skip
    (result,) = ret.values()
    assert result["changes"] == {"mode": "0644"} and path.stat().st_ino == st.st_ino
    path.unlink()


def test_user_file_directory_not_owned_is_reported_not_chowned(modules, home, user):
    path = home / "rootowned"
    path.mkdir(mode=0o755)
    try:
        ret = _states(modules.state.single("user_file.directory", name=str(path), user=user.pw_name))
        (result,) = ret.values()
        assert result["result"] is False and "owned by uid 0" in result["comment"]
        assert path.stat().st_uid == 0
    finally:
        path.rmdir()

