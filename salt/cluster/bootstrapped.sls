---
{#- Last on the master: from now on a minion that starts is joined
    (salt/orch/join.sls, started by the join reactor, joins nothing until
    this marker, saltcluster:network:join_marker, exists).  Before it, the
    salt-master gets this tree's runners and orchestration states (joins run
    their state runs through cluster_orch.state). #}
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import mapdata as sc with context %}

cluster-bootstrapped-master-extmods-synced:
  master_extmods.synced:
    - name: the salt-master's runners and states
    - order: last

cluster-bootstrapped-file-managed-marker:
  file.managed:
    - name: {{ sc.network.join_marker }}
    - contents: saltcluster bootstrapped; the join reactor is active
    - makedirs: true
    - order: last
    - require:
      - master_extmods: cluster-bootstrapped-master-extmods-synced
