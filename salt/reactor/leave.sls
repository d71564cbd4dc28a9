{#- Minions gone: lost from presence (salt/presence/change) or key deleted
    (salt/key, act=delete).  Hand over to the leave orchestration. -#}
{%- if data.get('act') == 'delete' %}
{%-   set gone = [data.get('id')] %}
{%- else %}
{%-   set gone = data.get('lost', []) %}
{%- endif %}
{%- if gone %}
saltcluster-reactor-leave:
  runner.state.orchestrate:
    - args:
      - mods: orch.leave
      - pillar:
          saltcluster_gone: {{ gone | json }}
{%- endif %}
