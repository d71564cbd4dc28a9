---
{#- Hydra's hostfile: the compute members that serve (cluster.serving: a
    drained node is left out, unless none serves) with their slots, in the
    one format cluster.hostfile writes and cluster.parse_hostfile reads back
    (mpi.run).  Written as the MPI user (user_file, not file.managed): the
    home is the user's, so a link the user puts at this name is replaced,
    never followed as root. #}
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import mapdata as sc with context %}

include:
  - {{ tplroot }}.users

{#- named as its file.managed form would be: the tests look the hostfile up by this ID #}
cluster-mpi-hostfile-file-managed:
  user_file.managed:
    - name: {{ sc.mpi.hostfile }}
    - user: {{ sc.user.name }}
    - group: {{ sc.user.group }}
    - mode: '0644'
    - contents: |
        # Managed by Salt (saltcluster): compute members as host:slots
        {{ salt['cluster.hostfile']() | indent(8) }}
    - require:
      - user: cluster-users-user-present-{{ sc.user.name }}
{%- set serving = salt['cluster.serving']() %}
{%- if serving.kept %}

# no compute member serves: every one stays listed, and this says why
cluster-mpi-hostfile-test-show-notification-all-kept:
  test.show_notification:
    - text: {{ ('hostfile: ' ~ serving.why) | json }}
{%- endif %}
