{#- A minion started, or reconnected: hand its id to orch.join.  Reactors
    render one at a time, so this only checks the event; the orchestration
    decides, from the mine and the master's key store, whether the minion
    is a new member.

    Nothing in this event can be trusted: any accepted minion can fire
    `salt/minion/<id>/start` itself with `event.send`, and with
    `preload={"events": [...]}` the whole payload (id and grains included)
    is its own.  So orch.join checks again, runner side, against what the
    master can confirm: an accepted key, the master bootstrapped, no join
    of that minion running (a lock per id), its membership in the mine, and
    a salt-minion process that is not the one its last completed join
    already handled (the minion itself answers for that, over its own key).
    A forged or replayed start therefore changes nothing.

    What this checks only drops events early, never lets more through:
    - the id must be a plain name, and the one in the tag (a minion's own
      event.send carries its real id: node2 cannot name node1 that way);
    - its key accepted (the master's key store under pki_dir).
    It reads no file the cluster's states write.

    Salt fires this event again whenever a minion's connection to the master
    comes back (every minion at once after a salt-master restart).  That
    reconnect carries no grains; a real start does when the minion sets
    `start_event_grains` (etc/minion.d/saltcluster-join.conf).  Which of the
    two it was goes to orch.join as saltcluster_join_event (`reconnect` or
    `start`): a reconnect of a member stops there, before the orchestration
    asks the minion anything. -#}
{%- set id = data.get('id', '') | string %}
{%- set plain = id | regex_match('^([A-Za-z0-9][A-Za-z0-9._-]{0,62})\Z') %}
{%- if plain and tag == 'salt/minion/' ~ id ~ '/start'
      and salt['file.file_exists'](opts['pki_dir'] ~ '/minions/' ~ id) %}
saltcluster-reactor-join-{{ id }}:
  runner.state.orchestrate:
    - args:
      - mods: orch.join
      - pillar:
          saltcluster_join: {{ id | json }}
          saltcluster_join_event: {{ 'start' if data.get('grains') else 'reconnect' }}
{%- endif %}
