"""The UML kernel's xstate patch keeps FP state intact: the same float and
hashing work gives the same results in guests (several processes at once, so
context switches save and restore FP registers) as on this host."""

import shlex
import subprocess
import sys

WORK = (
    "import hashlib, math\n"
    "from concurrent.futures import ProcessPoolExecutor\n"
    "def job(k):\n"
    "    acc = 0.0\n"
    "    for i in range(1, 200000):\n"
    "        acc += math.sin(i * k) * math.sqrt(i) / (1.0 + math.log(i))\n"
    "    return repr(acc) + ' ' + hashlib.sha256(repr(acc).encode() * 2000).hexdigest()\n"
    "with ProcessPoolExecutor(4) as pool:\n"
    "    print('\\n'.join(pool.map(job, range(1, 9))))\n"
)


def test_fp_and_hashing_match_host(lab):
    expected = subprocess.run([sys.executable, "-c", WORK], capture_output=True, text=True, check=True).stdout
    procs = {
        node: lab.ssh(node, f"python3 -c {shlex.quote(WORK)}", timeout=300)
        for node in ("node1", "node2")
    }
    for node, res in procs.items():
        assert res.returncode == 0, res.stderr
        assert res.stdout == expected, node
