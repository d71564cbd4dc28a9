{#- Minions gone: lost from presence (salt/presence/change) or key deleted
    (salt/key, act=delete).  Hand over to the leave orchestration.  A deleted
    key that never became a member (a pending or rejected key: no data in
    the master's minion cache) changes nothing. -#}
{%- set gone = [] %}
{%- if data.get('act') == 'delete' %}
{%-   set id = data.get('id', '') | string %}
{%-   if id | regex_match('^([A-Za-z0-9][A-Za-z0-9._-]{0,62})$')
          and salt['file.directory_exists']('/var/cache/salt/master/minions/' ~ id) %}
{%-     do gone.append(id) %}
{%-   endif %}
{%- else %}
{%-   for id in data.get('lost', []) %}
{%-     if id | string | regex_match('^([A-Za-z0-9][A-Za-z0-9._-]{0,62})$') %}
{%-       do gone.append(id | string) %}
{%-     endif %}
{%-   endfor %}
{%- endif %}
{%- if gone %}
saltcluster-reactor-leave:
  runner.state.orchestrate:
    - args:
      - mods: orch.leave
      - pillar:
          saltcluster_gone: {{ gone | json }}
{%- endif %}
