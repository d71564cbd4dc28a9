{#- Minions gone: lost from presence (salt/presence/change) or key deleted
    (salt/key, act=delete; Salt flushes the minion's cached data, mine
    included, with the key).  Hand the ids and which of the two events it
    was to orch.leave.

    Nothing in these events can be trusted: a minion can fire either tag
    with `event.send` (salt/key is blacklisted only in the `events` form).
    orch.leave evicts only what the master confirms itself: for a presence
    loss, an accepted key, no connection (manage.alived), no answer to a
    ping and mine data still to forget; for a key event, a key that is no
    longer accepted.  The filters here only drop events early: ids that are
    not plain minion names, and events a minion sent (the master stamps
    those with `cmd: _minion_event`; its own presence and key events carry
    no `cmd`). -#}
{%- set name_re = '^([A-Za-z0-9][A-Za-z0-9._-]{0,62})\Z' %}
{%- set candidates = [] %}
{%- if data.get('cmd') %}
{#-   sent by a minion: neither event ever legitimately is #}
{%- elif tag == 'salt/key' and data.get('act') == 'delete' %}
{%-   set event = 'key' %}
{%-   do candidates.append(data.get('id', '')) %}
{%- elif tag == 'salt/presence/change' and data.get('lost') is iterable
      and data.get('lost') is not string and data.get('lost') is not mapping %}
{%-   set event = 'presence' %}
{%-   do candidates.extend(data.get('lost')) %}
{%- endif %}
{%- set gone = [] %}
{%- for id in candidates %}
{%-   if id is string and id | regex_match(name_re) %}
{%-     do gone.append(id) %}
{%-   endif %}
{%- endfor %}
{%- if gone %}
saltcluster-reactor-leave:
  runner.state.orchestrate:
    - args:
      - mods: orch.leave
      - pillar:
          saltcluster_gone: {{ gone | json }}
          saltcluster_leave_event: {{ event }}
{%- endif %}
