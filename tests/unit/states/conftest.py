"""What the custom states' unit tests share: a recorder of the commands
they run, and the loader dunders of nfs_export, mpi_program, mpi_venv,
cluster_user and user_file."""

import os

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
    """The loader dunders of every custom state.  salt-factories mocks the
    loader only for a test module that holds this fixture itself: each
    imports it."""

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


def plant(kind, name, target):
    """A ``kind`` link (symlink or hardlink) at ``name`` to ``target``, in
    place of whatever is there."""
    if os.path.lexists(name):
        os.unlink(name)
    if kind == "symlink":
        os.symlink(target, name)
    else:
        os.link(target, name)

