---
{#- Debian's packages for this host's roles.  Installing them adds system
    accounts (munge takes the first free system uid, slurm 64030), so the
    MPI user exists first: Debian would otherwise give munge uid 100, which
    the MPI user holds on every host.  The packages enable and start their
    services as they install; cluster.slurm.munge, .controller and .node own
    those services from then on. #}
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import mapdata as sc with context %}
{%- set roles = salt['grains.get']('roles', []) %}
{%- set pkgs = [] %}
{%- for role in ('master', 'compute') if role in roles %}
{%-   for pkg in sc.slurm[role ~ '_packages'] if pkg not in pkgs %}
{%-     do pkgs.append(pkg) %}
{%-   endfor %}
{%- endfor %}

include:
  - {{ tplroot }}.users

cluster-slurm-package-pkg-installed:
  pkg.installed:
    - pkgs: {{ pkgs | json }}
    - require:
      - user: cluster-users-user-present-{{ sc.user.name }}
