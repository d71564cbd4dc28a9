"""userfs: the file operations behind mpi_program and user_file act with
the user's rights only."""

import os
import pathlib
import shutil
import tempfile

import pytest
import userfs


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
