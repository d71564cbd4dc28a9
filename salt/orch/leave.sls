{#- Nodes left: forget their mine data (it outlives them otherwise), then
    rebuild hosts, known_hosts, hostfile and upstream on the others. #}
{%- set gone = salt['pillar.get']('saltcluster_gone', []) %}

saltcluster-orch-leave-cache-clear-mine:
  salt.runner:
    - name: cache.clear_mine
    - tgt: {{ gone | join(',') | json }}
    - tgt_type: list

saltcluster-orch-leave-membership:
  salt.state:
    - tgt: '* and not L@{{ gone | join(',') }}'
    - tgt_type: compound
    - sls: cluster.membership
    - queue: true
    - require:
      - salt: saltcluster-orch-leave-cache-clear-mine
