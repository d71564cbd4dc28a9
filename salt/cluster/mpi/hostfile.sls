---
{#- Hydra's hostfile: the compute members with their slots. #}
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import mapdata as sc with context %}

include:
  - {{ tplroot }}.users

cluster-mpi-hostfile-file-managed:
  file.managed:
    - name: {{ sc.mpi.hostfile }}
    - user: {{ sc.user.name }}
    - group: {{ sc.user.group }}
    - mode: '0644'
    - contents: |
        # Managed by Salt (saltcluster): compute members as host:slots
        {{ salt['cluster.hostfile']() | indent(8) }}
    - require:
      - user: cluster-users-user-present-{{ sc.user.name }}
