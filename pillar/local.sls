---
# Single-host cluster for `salt-call --local` from the repository root: this
# host is master, compute node and gateway, reached on loopback.
saltcluster:
  network:
    cidr: 127.0.0.0/8
    master_host: localhost
  mpi:
    ucx_net_device: null
