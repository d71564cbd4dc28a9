"""mpi.run against untrusted callers, for real: a salt-master, its minion
'master', the MPI user and the provider's mpiexec (Hydra) on this machine.

Each test performs the attack through ``salt master mpi.run ...`` and checks
its effect on the machine (a file the attack would create, the processes
left), not only the error text."""

import os
import pathlib
import threading
import time
import uuid

import pytest

from tests.integration.conftest import ok

# rank 0 prints, every rank sleeps argv[1] seconds; argv[2] bytes of output;
# with argv[3], each rank first leaves a child in a session of its own, out
# of reach of Hydra's cleanup (it still carries the job's tag)
PROBE_C = r"""
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    int rank;
    int secs = argc > 1 ? atoi(argv[1]) : 0;
    long bytes = argc > 2 ? atol(argv[2]) : 0;

    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    if (argc > 3 && fork() == 0) {
        setsid();
        close(0);
        close(1);
        close(2);
        sleep(secs);
        _exit(0);
    }
    if (rank == 0) {
        printf("sleeping %d\n", secs);
        for (long i = 0; i < bytes; i++)
            putchar('x' + (int)(i % 3));
        fflush(stdout);
    }
    sleep(secs);
    MPI_Barrier(MPI_COMM_WORLD);
    if (rank == 0)
        printf("\nslept %d\n", secs);
    MPI_Finalize();
    return 0;
}
"""

# a library whose constructor leaves a mark: proof that it was loaded
EVIL_C = r"""
#include <fcntl.h>
#include <unistd.h>
__attribute__((constructor)) static void mark(void)
{
    int fd = open(MARK, O_CREAT | O_WRONLY, 0644);
    if (fd >= 0)
        close(fd);
}
"""


@pytest.fixture(scope="module")
def mpi_settings(synced, salt_cli):
    ret = salt_cli.run("cluster.settings", minion_tgt="master")
    ok(ret)
    return ret.data["mpi"]


@pytest.fixture
def probe(local_hostfile, mpi_user, mpi_settings, salt_cli):
    """``secprobe`` built into bin_dir by the provider's mpicc, as the MPI user."""
    home = local_hostfile.parent
    source = home / "src" / "secprobe.c"
    source.write_text(PROBE_C)
    binary = home / "bin" / "secprobe"
    ret = salt_cli.run(
        "state.single", "mpi_program.built", name=str(binary), source=str(source),
        mpicc=mpi_settings["mpicc"], runas=mpi_user, minion_tgt="master",
    )  # fmt: skip
    ok(ret)
    return binary


@pytest.fixture
def mark():
    """A path an attack would create (world-writable /tmp: the MPI user can)."""
    path = pathlib.Path(f"/tmp/saltcluster-attack-{uuid.uuid4().hex}")
    yield path
    path.unlink(missing_ok=True)


def _error(ret):
    """The refusal text of a failed call (the CLI gives a string, not a dict)."""
    assert ret.returncode != 0, ret
    return str(ret.data) + ret.stdout + ret.stderr


def _run(salt_cli, *args, timeout=120):
    return salt_cli.run("mpi.run", *args, minion_tgt="master", _timeout=timeout + 60)


def _tagged(job):
    """Pids of processes on this machine that carry the job's tag."""
    marker = f"SALTCLUSTER_JOB={job}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as fh:
                if marker in fh.read().split(b"\0"):
                    found.append(int(entry))
        except OSError:
            continue
    return found


@pytest.mark.parametrize(
    "args", ['[":", "-n", "1", "/usr/bin/touch", "@MARK@"]', "': -n 1 /usr/bin/touch @MARK@'"]
)
def test_mpmd_section_starts_nothing_outside_bin_dir(local_hostfile, salt_cli, mark, args):
    """Hydra starts a new section at an argument ':': /usr/bin/touch would run
    as the MPI user."""
    ret = _run(salt_cli, "hellow", f"args={args.replace('@MARK@', str(mark))}", "timeout=60")
    time.sleep(1)  # had it started, touch is done by now
    assert not mark.exists(), f"/usr/bin/touch ran through ':': {ret.data}"
    assert "argument ':'" in _error(ret)


def test_ld_preload_refused(local_hostfile, salt_cli, mark, scratch, tmp_path):
    library = scratch / f"evil-{mark.name}.so"
    (tmp_path / "evil.c").write_text(EVIL_C)
    build = os.system(f"gcc -shared -fPIC -DMARK='\"{mark}\"' -o {library} {tmp_path / 'evil.c'}")
    assert build == 0 and library.is_file()
    library.chmod(0o755)
    try:
        ret = _run(salt_cli, "hellow", f'env={{"LD_PRELOAD": "{library}"}}', "timeout=60")
        assert not mark.exists(), f"the preloaded library ran in a rank: {ret.data}"
        assert "'LD_PRELOAD'" in _error(ret)
    finally:
        library.unlink(missing_ok=True)


def test_timeout_kills_its_own_job_and_nothing_of_another(probe, salt_master):
    """Two jobs of the MPI user at once: the one that times out is ended on
    every host, the other finishes intact."""
    results = {}

    def job(name, *args, timeout):
        # a CLI per thread: one holds a single subprocess at a time
        cli = salt_master.salt_cli(timeout=180)
        results[name] = _run(cli, "secprobe", "np=2", *args, f"timeout={timeout}", timeout=timeout)

    steady = threading.Thread(target=job, args=("steady", "args=[12]"), kwargs={"timeout": 120})
    hung = threading.Thread(target=job, args=("hung", "args=[600, 0, orphan]"), kwargs={"timeout": 4})
    steady.start()
    time.sleep(1)
    hung.start()
    hung.join(120)
    steady.join(180)
    assert not hung.is_alive() and not steady.is_alive()
    steady_ret, hung_ret = results["steady"].data, results["hung"].data
    assert isinstance(steady_ret, dict) and isinstance(hung_ret, dict), results
    both = {name: dict(ret.data, stdout=ret.data["stdout"][-200:]) for name, ret in results.items()}
    # the other job: untouched by the kill
    assert steady_ret["retcode"] == 0, both
    assert steady_ret["timed_out"] is False and "slept 12" in steady_ret["stdout"]
    assert steady_ret["duration"] >= 12
    # the job that timed out: ended, and nothing of it left on this host
    assert hung_ret["timed_out"] is True and hung_ret["retcode"] == 124, hung_ret
    assert hung_ret["duration"] < 30
    assert hung_ret["job"] != steady_ret["job"]
    # Hydra ended its ranks; the sweep by tag the children they left
    assert hung_ret["killed"]["localhost"] >= 2, hung_ret
    assert _tagged(hung_ret["job"]) == []
    assert _tagged(steady_ret["job"]) == []  # finished: gone by itself


def test_output_kept_to_max_output(probe, salt_cli, mpi_settings):
    """3 MiB on rank 0's stdout: the result keeps mpi:max_output (1 MiB by
    default) and says how much it cut."""
    cap = mpi_settings["max_output"]
    ret = _run(salt_cli, "secprobe", "np=2", f"args=[0, {3 * 2**20}]", "timeout=120")
    data = ret.data
    assert isinstance(data, dict) and data["retcode"] == 0, ret
    assert data["output_cut"]["stdout"] >= 3 * 2**20 - cap
    assert len(data["stdout"].encode()) < cap + 512
    assert data["stdout"].startswith("sleeping 0") and data["stdout"].endswith("slept 0")
    assert "bytes of stdout cut" in data["stdout"]


def test_hostfile_link_is_not_read(local_hostfile, salt_cli, tmp_path):
    """The MPI user (any job) points ~/hosts at a file only root may read and
    asks mpi.run for a host the hostfile lacks (the refusal names the hosts
    it lists): root does not read through the link, and nothing of that
    file comes back."""
    secret = tmp_path / "root-only-key"
    secret.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nc2VjcmV0LWtleS1tYXRlcmlhbA\n")
    secret.chmod(0o600)
    saved = local_hostfile.read_text()
    local_hostfile.unlink()
    local_hostfile.symlink_to(secret)
    try:
        for args in (("cpi", "hosts=nothere", "timeout=60"), ("cpi", "np=1", "timeout=60")):
            text = _error(_run(salt_cli, *args))
            assert "c2VjcmV0" not in text and "PRIVATE KEY" not in text, text
            assert "symlink" in text, text
    finally:
        local_hostfile.unlink()
        local_hostfile.write_text(saved)


def test_cpi_still_runs(local_hostfile, salt_cli):
    ret = _run(salt_cli, "cpi", "np=4", "timeout=60")
    assert isinstance(ret.data, dict) and ret.data["retcode"] == 0, ret
    assert "pi is approximately 3.14159265" in ret.data["stdout"]
    assert ret.data["output_cut"] == {"stdout": 0, "stderr": 0}
