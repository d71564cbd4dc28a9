"""The lab's secrets, in the cache: its ssh key (how the lab reaches its
hosts), each minion's key pair (kept per name, so a host that comes back is
the same minion) and the join token.  Every private file is 0600 from its
first byte."""

import os
import secrets
import shutil

from labkit import config
from labkit.base import run


def write_secret(path, data):
    """Write a key or a file holding the join token: 0600 from its first byte."""
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb" if isinstance(data, bytes) else "w") as fh:
        fh.write(data)


def ssh_key():
    """The lab's ssh key (made once); its .pub is every host's authorized key."""
    key = config.CACHE / "ssh" / "id_ed25519"
    if not key.exists():
        key.parent.mkdir(parents=True, exist_ok=True)
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "saltlab", "-f", str(key)])
    return key


def minion_keys(share, name, master_share):
    """The host's key pair into SHARE, and with MASTER_SHARE its public half
    preseeded there."""
    keydir = config.CACHE / "keys"
    keydir.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not (keydir / f"{name}.pem").exists():
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        write_secret(keydir / f"{name}.pem", key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption()))  # fmt: skip
        (keydir / f"{name}.pub").write_bytes(key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))  # fmt: skip
    write_secret(share / "minion.pem", (keydir / f"{name}.pem").read_bytes())
    shutil.copy2(keydir / f"{name}.pub", share / "minion.pub")
    if master_share:
        (master_share / "minions").mkdir(parents=True, exist_ok=True)
        shutil.copy2(keydir / f"{name}.pub", master_share / "minions" / name)


def join_token():
    """The lab cluster's join token (the autosign_grains secret)."""
    path = config.CACHE / "keys" / "join-token"
    if not path.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_secret(path, secrets.token_hex(24) + "\n")
    return path.read_text().strip()
