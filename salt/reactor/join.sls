{#- A minion (re)started.  Reactors render one at a time: hand straight over
    to the join orchestration.  Only minions whose key the master accepted can
    fire this event at all. -#}
saltcluster-reactor-join-{{ data['id'] }}:
  runner.state.orchestrate:
    - args:
      - mods: orch.join
      - pillar:
          saltcluster_join: {{ data['id'] | json }}
