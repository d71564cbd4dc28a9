{#- A node joined: make it a full member, then tell everyone else.  Runs
    inside the master (reactor -> orchestrate), no CLI start-up per step. #}
{%- set node = salt['pillar.get']('saltcluster_join') %}

# only what mine.update needs (cluster.host_info): the highstate below syncs
# everything else itself (autoload_dynamic_modules).  sync_all here made
# about 20 fileserver round trips and took 16 s of a lab join.
saltcluster-orch-join-saltutil-sync-modules:
  salt.function:
    - name: saltutil.sync_modules
    - tgt: {{ node | json }}
    - kwarg:
        refresh: true

# the start-up mine run is not ordered with the start event: publish now
saltcluster-orch-join-mine-update:
  salt.function:
    - name: mine.update
    - tgt: {{ node | json }}
    - require:
      - salt: saltcluster-orch-join-saltutil-sync-modules

saltcluster-orch-join-node-highstate:
  salt.state:
    - tgt: {{ node | json }}
    - highstate: true
    - queue: true
    - require:
      - salt: saltcluster-orch-join-mine-update

saltcluster-orch-join-membership:
  salt.state:
    - tgt: '* and not {{ node }}'
    - tgt_type: compound
    - sls: cluster.membership
    - queue: true
    - require:
      - salt: saltcluster-orch-join-node-highstate
