{#- A compute node's health claim changed: re-apply what follows membership
    on the master and the gateway, so the hostfile and the upstream follow
    it (a drained node out, a node back in service in).  Runs inside the
    master (reactor -> orchestrate), started by salt/reactor/health.sls.

    The claim is the node's own: cluster_health.publish on the node sends
    it to the mine (saltcluster_health), and Salt stores mine data under the
    id whose key signed it, so a host can drain only itself; the renders
    (cluster.hostfile, cluster.upstream) read it from the mine on the master
    and the gateway, never from an event.  The event that brought us here
    may be forged or replayed, so this rendering checks, with what the
    master knows itself, before anything runs:

    1. saltcluster_health_node is a plain minion name with an accepted key
       (wheel key.list);
    2. the master's copy of the mine holds a health claim of that node
       (a state: joining, serving or drained, and since when);
    3. that claim is not the one the last health orchestration of the node
       applied (its record, <cachedir>/saltcluster/health/<id>, written
       after the membership run that saw it): a replayed or forged event,
       or a second event for one flip, costs a render and nothing else.

    No lock refuses a second orchestration of the same node while one runs:
    the node may flip back meanwhile (drained, then serving again), and a
    refused run would lose that flip.  Each run is bounded instead (the
    membership run's timeout), and cluster_orch.state runs the state runs on
    each host one at a time, the last one seeing the newest claims. -#}
{%- import_yaml 'cluster/parameters/defaults.yaml' as defaults %}
{%- set name_re = '^([A-Za-z0-9][A-Za-z0-9._-]{0,62})\Z' %}
{#- Slurm (scheduler: slurm): a drained node is DRAIN in Slurm too, and
    resumed when it serves again (slurm_nodes.follow_health) #}
{%- set slurm = salt['pillar.get']('saltcluster:scheduler', defaults.saltcluster.scheduler) == 'slurm' %}
{%- set states = ['joining', 'serving', 'drained'] %}
{#- seconds the master waits for the membership runs' returns #}
{%- set membership_timeout = 300 %}
{%- set node = salt['pillar.get']('saltcluster_health_node', '') %}
{%- set node = node if node is string else '' %}
{%- set state_dir = opts['cachedir'] ~ '/saltcluster' %}
{%- set record = state_dir ~ '/health/' ~ node %}
{%- set ns = namespace(why='', claim='', state='') %}
{%- if not node | regex_match(name_re) %}
{%-   set ns.why = 'not a minion name' %}
{%- else %}
{%-   set keys = salt['saltutil.wheel']('key.list', 'accepted') %}
{%-   if not (keys is mapping and keys.get('success') and keys.get('return') is mapping) %}
{%-     set ns.why = "the master's key list could not be read" %}
{%-   elif node not in keys['return'].get('minions', []) %}
{%-     set ns.why = 'no accepted key' %}
{%-   else %}
{%-     set mine = salt['saltutil.runner']('cache.mine', tgt=node, tgt_type='list') %}
{%-     set entries = mine.get(node) if mine is mapping else none %}
{%-     set claim = entries.get('saltcluster_health') if entries is mapping else none %}
{%-     if not (claim is mapping and claim.get('state') in states) %}
{%-       set ns.why = 'no health claim of its own in the mine' %}
{%-     else %}
{%-       set ns.claim = claim['state'] ~ ' since ' ~ (claim.get('since') | string) %}
{%-       set ns.state = claim['state'] %}
{%-       if salt['file.file_exists'](record) and salt['file.read'](record) | trim == ns.claim %}
{%-         set ns.why = 'its claim (' ~ ns.claim ~ ') is the one the last health orchestration applied' %}
{%-       endif %}
{%-     endif %}
{%-   endif %}
{%- endif %}

{%- if ns.why %}

saltcluster-orch-health-refused:
  test.show_notification:
    - text: {{ ('not following the health of ' ~ node ~ ': ' ~ ns.why) | json }}
{%- else %}

# the hostfile (master) and the upstream (gateway) read every member's claim
# from the mine as they render
saltcluster-orch-health-membership:
  cluster_orch.state:
    - tgt: 'G@roles:master or G@roles:gateway'
    - tgt_type: compound
    - sls: cluster.membership
    - skip_unsynced: true
    - timeout: {{ membership_timeout }}
    - lock_timeout: {{ membership_timeout }}

saltcluster-orch-health-file-directory:
  file.directory:
    - name: {{ (state_dir ~ '/health') | json }}
    - makedirs: true
    - mode: '0700'

# what the membership run above (and Slurm, when it runs) saw of this node
# at least: a later event with the same claim changes nothing, so the
# record is written only once every step has followed the claim
saltcluster-orch-health-record:
  file.managed:
    - name: {{ record | json }}
    - contents: {{ ns.claim | json }}
    - mode: '0600'
    - require:
      - cluster_orch: saltcluster-orch-health-membership
      - file: saltcluster-orch-health-file-directory
{%-   if slurm and ns.state == 'serving' %}
      - cluster_orch: saltcluster-orch-health-slurm-node
{%-   endif %}
{%-   if slurm %}
      - salt: saltcluster-orch-health-slurm
{%-   endif %}
{%-   if slurm and ns.state == 'serving' %}

# a node whose first highstate failed its health gate never started slurmd:
# start it now that it serves (cluster.slurm on the node; nothing changes
# where it runs)
saltcluster-orch-health-slurm-node:
  cluster_orch.state:
    - tgt: {{ node | json }}
    - sls: cluster.slurm
    - timeout: {{ membership_timeout }}
    - lock_timeout: {{ membership_timeout }}
{%-   endif %}
{%-   if slurm %}

saltcluster-orch-health-slurm:
  salt.function:
    - name: slurm_nodes.follow_health
    - tgt: 'G@roles:master'
    - tgt_type: compound
    - kwarg:
        node: {{ node | json }}
        state: {{ ns.state | json }}
    - timeout: 120
{%-   endif %}
{%- endif %}
