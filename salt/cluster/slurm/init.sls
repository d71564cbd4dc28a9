---
{#- Slurm (saltcluster:scheduler: slurm; salt/top.sls targets this only
    then), by the host's roles: munge on the master and the compute nodes;
    slurm.conf, cgroup.conf, the epilog and slurmctld on the master; slurmd
    as a dynamic node on each compute node.  The orchestrations keep Slurm's
    node list in step with membership (_modules/slurm_nodes.py). #}
{%- set roles = salt['grains.get']('roles', []) %}
include:
  - .package
  - .munge
{%- if 'master' in roles %}
  - .config
  - .controller
{%- endif %}
{%- if 'compute' in roles %}
  - .node
{%- endif %}
