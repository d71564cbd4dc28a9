"""The lab's UML kernel keeps FP state intact: the same float and hashing
work gives the same results in guests (several processes at once, so context
switches save and restore FP registers) as on this host.  In seccomp mode
the FP state travels in the stub's signal frame, sized by the host's xstate
at run time; 6.12 in ptrace mode needs lab/kernel/uml-xstate-size.patch on
hosts with a large xstate."""

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


def test_guests_run_in_seccomp_mode(lab):
    """The lab's default kernel boots every guest with seccomp=on, the mode
    its speed figures assume.  With "on" (not "auto") UML stops at boot if
    seccomp mode does not work: a guest that answers runs in it."""
    for node in ("master", "node1"):
        res = lab.ssh(node, "cat /proc/cmdline; uname -r", timeout=60)
        assert res.returncode == 0, res.stderr
        if lab.KERNEL == "7.3":
            assert "seccomp=on" in res.stdout.split() and res.stdout.split()[-1].startswith("7.3"), res.stdout
