{#- Minions gone: lost from presence (salt/presence/change) or key deleted
    (salt/key, act=delete; Salt flushes the minion's cached data, mine
    included, with the key).  Hand over to the leave orchestration; ids that
    are not plain minion names are ignored. -#}
{%- set name_re = '^([A-Za-z0-9][A-Za-z0-9._-]{0,62})$' %}
{%- if data.get('act') == 'delete' %}
{%-   set candidates = [data.get('id', '')] %}
{%- else %}
{%-   set candidates = data.get('lost', []) %}
{%- endif %}
{%- set gone = [] %}
{%- for id in candidates %}
{%-   if id | string | regex_match(name_re) %}
{%-     do gone.append(id | string) %}
{%-   endif %}
{%- endfor %}
{%- if gone %}
saltcluster-reactor-leave:
  runner.state.orchestrate:
    - args:
      - mods: orch.leave
      - pillar:
          saltcluster_gone: {{ gone | json }}
{%- endif %}
