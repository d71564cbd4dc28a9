"""Through the real master: links the MPI user plants in its home in place
of every file (and directory) the master's states write there change nothing
outside the home, and the states leave the user's own regular files behind.

The "root files" are fresh root-owned 0644 files (and empty root-owned
directories) in the scratch tree, on the same filesystem as the home.
"""

import os
import pathlib
import pwd
import shutil
import stat
import tempfile

import pytest

from tests.integration.conftest import by_id
from tests.integration.conftest import ok

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: plants root's files, applies as root")

SLS = "cluster.ssh.keys,cluster.mpi.hostfile,cluster.mpi.programs"
PROGRAMS = ("cpi", "hellow", "mandel")
HOME_FILES = [
    "hosts",
    ".ssh/id_ed25519",
    ".ssh/id_ed25519.pub",
    ".ssh/authorized_keys",
    *(f"src/{p}.c" for p in PROGRAMS),
    *(f"bin/{p}" for p in PROGRAMS),
    *(f"bin/{p}.sha256" for p in PROGRAMS),
]


@pytest.fixture
def home(mpi_user, salt_cli, scratch):
    path = scratch / "home" / mpi_user
    ok(salt_cli.run("state.apply", SLS, minion_tgt="master"))
    yield path
    # whatever a failing test left planted goes, so the next starts clean
    for name in (*HOME_FILES, ".ssh", "src", "bin"):
        if (path / name).is_symlink() or (path / name).is_file() and (path / name).stat().st_nlink > 1:
            (path / name).unlink()


@pytest.fixture
def outside(scratch):
    root = scratch / "outside"
    root.mkdir(exist_ok=True)
    path = pathlib.Path(tempfile.mkdtemp(dir=root))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _root_file(directory, name):
    path = directory / name.replace("/", "_")
    path.write_text(f"root's own {name}: must not change\n")
    path.chmod(0o644)
    os.chown(path, 0, 0)
    return path


def _snapshot(path):
    st = os.lstat(path)
    return (path.read_bytes(), st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode), st.st_ino)


@pytest.mark.parametrize("kind", ["symlink", "hardlink"])
def test_links_in_home_are_replaced_never_followed(home, salt_cli, outside, kind, mpi_user):
    user = pwd.getpwnam(mpi_user)
    before = {}
    for name in HOME_FILES:
        target = _root_file(outside, name)
        path = home / name
        path.unlink()
        if kind == "symlink":
            path.symlink_to(target)
            os.lchown(path, user.pw_uid, user.pw_gid)
        else:
            os.link(target, path)
        before[name] = (target, _snapshot(target))
    ret = salt_cli.run("state.apply", SLS, minion_tgt="master")
    for name, (target, snap) in before.items():
        assert _snapshot(target) == snap, f"{target} changed through ~/{name}"
    ok(ret)
    for name in HOME_FILES:
        st = os.lstat(home / name)
        assert stat.S_ISREG(st.st_mode) and (st.st_uid, st.st_nlink) == (user.pw_uid, 1), name
    ret = salt_cli.run("state.apply", SLS, minion_tgt="master")
    assert {k: v["changes"] for k, v in by_id(ret).items() if v["changes"]} == {}
    assert salt_cli.run("mpi.programs", minion_tgt="master").data == list(PROGRAMS)


@pytest.mark.parametrize("sub", [".ssh", "src", "bin"])
def test_directory_symlinked_to_a_root_directory(home, salt_cli, outside, sub, mpi_user):
    user = pwd.getpwnam(mpi_user)
    rootdir = outside / "dir"
    rootdir.mkdir(mode=0o755)
    shutil.rmtree(home / sub)
    (home / sub).symlink_to(rootdir)
    os.lchown(home / sub, user.pw_uid, user.pw_gid)
    ret = salt_cli.run("state.apply", SLS, minion_tgt="master")
    st = os.stat(rootdir)
    assert os.listdir(rootdir) == [] and (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (0, 0, 0o755)
    ok(ret)
    st = os.lstat(home / sub)
    assert stat.S_ISDIR(st.st_mode) and st.st_uid == user.pw_uid
    assert salt_cli.run("mpi.programs", minion_tgt="master").data == list(PROGRAMS)
