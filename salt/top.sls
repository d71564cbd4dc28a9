---
# Roles come from the `roles` grain; a host may hold several.
base:
  '*':
    - cluster.users
    - cluster.hosts
    - cluster.ssh
    - cluster.mpi
  'G@roles:master':
    - match: compound
    - cluster.nfs.server
    - cluster.ssh.keys
    - cluster.mpi.hostfile
    - cluster.mpi.programs
    - cluster.bootstrapped
  # the master's home is the export itself: only other compute nodes mount it
  'G@roles:compute and not G@roles:master':
    - match: compound
    - cluster.nfs.client
  'G@roles:compute':
    - match: compound
    - cluster.web
  'G@roles:gateway':
    - match: compound
    - cluster.lb
