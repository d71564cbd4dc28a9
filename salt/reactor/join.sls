{#- A minion (re)started.  Reactors render one at a time: hand straight over
    to the join orchestration.  Only minions whose key the master accepted
    (preseeded, or autosigned for presenting the join token) can fire this
    event; an accepted minion could still forge another id's start event
    with event.send, so the id must be a plain name with an accepted key.
    Until the master's first highstate has finished (it writes the marker
    below) the cluster is being bootstrapped by `salt '*' state.apply`, and
    starts are left to that run. -#}
{%- set id = data.get('id', '') | string %}
{%- set plain = id | regex_match('^([A-Za-z0-9][A-Za-z0-9._-]{0,62})$') %}
{%- if plain
      and salt['file.file_exists']('/etc/salt/pki/master/minions/' ~ id)
      and salt['file.file_exists']('/etc/salt/saltcluster.bootstrapped') %}
saltcluster-reactor-join-{{ id }}:
  runner.state.orchestrate:
    - args:
      - mods: orch.join
      - pillar:
          saltcluster_join: {{ id | json }}
{%- endif %}
