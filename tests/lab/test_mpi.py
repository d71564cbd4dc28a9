"""MPI jobs never hang: Debian 13's MPICH 4.2.1 on the lab's hosts, every
job run once.  (Debian 12's MPICH 4.0.2 hung in MPI_Finalize in about half
of these runs: the count is the test, not a timing.)"""

import json
import re
from collections import Counter

from tests.lab.conftest import sh

RUNS = 30
# mpi.run's own path (salt CLI, the module, mpiexec) is run fewer times:
# each run costs a salt round trip, and the hang is MPICH's, which the 30
# bare runs below count
MPI_RUN_RUNS = 10
PLACED = re.compile(r"^Process (\d+) of 4 is on (\S+)$", re.M)


def _placement(stdout):
    return Counter(host for _, host in PLACED.findall(stdout))


def test_mpich_is_debian_13s(lab, highstated):
    rc, out, _ = sh("master", "grep VERSION_ID /etc/os-release; mpichversion | head -1")
    assert rc == 0 and 'VERSION_ID="13"' in out and re.search(r"MPICH Version:\s+4\.2\.", out), out


def test_mpi_run_cpi_ten_times_without_a_hang(lab, highstated):
    # one ssh, one salt CLI call per job, each job run once with its own
    # bounded timeout; the loop's own bound covers all of them
    script = (
        f"for i in $(seq {MPI_RUN_RUNS}); do "
        "salt --static --out=json master mpi.run cpi np=4 timeout=30 | tr -d '\\n'; echo; done"
    )
    rc, out, err = sh("master", script, timeout=MPI_RUN_RUNS * 90)
    rets = [json.loads(line).get("master") for line in out.splitlines() if line.strip()]
    assert len(rets) == MPI_RUN_RUNS, (out[-2000:], err[-2000:])
    bad = [r for r in rets if not isinstance(r, dict) or r.get("retcode") != 0 or r.get("timed_out")]
    assert bad == [], f"{len(bad)} of {MPI_RUN_RUNS} runs failed or timed out: {bad[:2]}"
    for ret in rets:
        assert "pi is approximately 3.14159" in ret["stdout"], ret
        assert _placement(ret["stdout"]) == {"node1": 2, "node2": 2}, ret["stdout"]


def test_bare_mpiexec_from_a_login_shell_thirty_times(lab, highstated):
    """The seed's way, with no Salt and no extra flags: whatever UCX needs
    reaches jobhandler's login shell."""
    script = (
        f"for i in $(seq {RUNS}); do "
        "su - jobhandler -c 'timeout -s KILL 30 mpiexec -f hosts -n 4 bin/cpi'; echo \"== rc=$?\"; done"
    )
    rc, out, err = sh("master", script, timeout=RUNS * 60)
    runs = out.split("== rc=")[:-1]
    codes = [int(line.split()[0]) for line in out.split("== rc=")[1:]]
    assert len(codes) == RUNS, (out[-2000:], err[-2000:])
    assert codes == [0] * RUNS, f"{RUNS - codes.count(0)} of {RUNS} failed or hung (137: killed at 30 s): {codes}"
    for text in runs:
        assert "pi is approximately 3.14159" in text, text
        assert _placement(text) == {"node1": 2, "node2": 2}, text
