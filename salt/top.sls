---
# Roles come from the `roles` grain; a host may hold several.
{#- Slurm only with saltcluster:scheduler: slurm.  The top file is rendered
    before the highstate syncs this tree's modules, so it reads the pillar
    with the formula's default (cluster.settings validates the value in
    every SLS). #}
{%- import_yaml 'cluster/parameters/defaults.yaml' as defaults %}
{%- set scheduler = salt['pillar.get']('saltcluster:scheduler', defaults.saltcluster.scheduler) %}
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
{%- if scheduler == 'slurm' %}
  # after the node's health gate (cluster.health): slurmd starts once it passed
  'G@roles:master or G@roles:compute':
    - match: compound
    - cluster.slurm
{%- endif %}
