{#- A compute node's health flipped (cluster_health.publish fires
    saltcluster/health/<id>/changed when its own state goes serving,
    drained, or back): hand its id to orch.health, which re-applies
    membership on the master and the gateway.

    Nothing in this event can be trusted: any accepted minion can fire the
    tag with `event.send`, and with `preload={"events": [...]}` the whole
    payload is its own.  The event carries no decision: orch.health reads
    the node's claim from the master's copy of the mine, where only the
    node itself can write it (Salt stores mine data under the id whose key
    signed it), so a forged event changes nothing but a render.

    What this checks only drops events early, never lets more through:
    - the id must be a plain name, and the one in the tag (a minion's own
      event.send carries its real id: node2 cannot name node1 that way);
    - its key accepted (the master's key store under pki_dir).
    It reads no file the cluster's states write. -#}
{%- set id = data.get('id', '') | string %}
{%- set plain = id | regex_match('^([A-Za-z0-9][A-Za-z0-9._-]{0,62})\Z') %}
{%- if plain and tag == 'saltcluster/health/' ~ id ~ '/changed'
      and salt['file.file_exists'](opts['pki_dir'] ~ '/minions/' ~ id) %}
saltcluster-reactor-health-{{ id }}:
  runner.state.orchestrate:
    - args:
      - mods: orch.health
      - pillar:
          saltcluster_health_node: {{ id | json }}
{%- endif %}
