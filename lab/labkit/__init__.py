"""labkit: the saltcluster lab as a library; `lab/saltlab` is its command
line, and tests/lab and bench/ use the same functions.

Modules, each calling only those listed before it:

    base      LabError, say, run, need_root
    config    paths, lab/topology.yaml, the kernels, the image's contents, timeouts
    figures   figures.json (what the lab measured) and the benchmarks' results table
    picture   the mandel picture: a PGM read strictly, written as a PNG
    keys      the lab's ssh key, the minions' keys, the join token (0600 files)
    build     the UML kernel and the Debian image, cached by their inputs
    network   the network namespace, its bridges and the hosts' taps
    hosts     the hosts' specs, shares, boot and pid files
    remote    ssh and salt on the hosts, and the waits on them
    ops       build, up, down, status, join, leave, exec, salt, highstate, mpi.run
    probes    membership views, the timing floor, the lab's memory
    demo      the whole demo
    cli       saltlab's arguments, mapped to keyword parameters of the above

Importing a module reads lab/topology.yaml and starts nothing.
"""
