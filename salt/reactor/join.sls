{#- A minion (re)started.  Reactors render one at a time: hand straight over
    to the join orchestration.  Only minions whose key the master accepted can
    fire this event at all.  Until the master's first highstate has finished
    (it writes the marker below) the cluster is being bootstrapped by
    `salt '*' state.apply`, and starts are left to that run. -#}
{%- if salt['file.file_exists']('/etc/salt/saltcluster.bootstrapped') %}
saltcluster-reactor-join-{{ data['id'] }}:
  runner.state.orchestrate:
    - args:
      - mods: orch.join
      - pillar:
          saltcluster_join: {{ data['id'] | json }}
{%- endif %}
