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
  # A role's site file goes with the role (before the other role's site is
  # checked beside the live ones); one nginx (cluster.nginx, included by
  # cluster.web and cluster.lb) serves the sites of the roles a host holds.
  'not G@roles:compute':
    - match: compound
    - cluster.web.clean
  'not G@roles:gateway':
    - match: compound
    - cluster.lb.clean
  'G@roles:compute':
    - match: compound
    - cluster.web
    # last: the node's own health checks admit it to the hostfile and the upstream
    - cluster.health
  'G@roles:gateway':
    - match: compound
    - cluster.lb
