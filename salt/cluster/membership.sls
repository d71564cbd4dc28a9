---
{#- Everything that follows membership, for this host's roles: applied to
    every other host when a node joins or leaves. #}
{%- set roles = salt['grains.get']('roles', []) %}
include:
  - cluster.hosts
  - cluster.ssh.known_hosts
{%- if 'master' in roles %}
  - cluster.mpi.hostfile
{%- endif %}
{%- if 'gateway' in roles %}
  - cluster.lb.config
  - cluster.nginx.service
{%- endif %}
