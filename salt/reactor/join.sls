{#- A minion started, or reconnected.  Reactors render one at a time: hand
    straight over to the join orchestration.  Only minions whose key the
    master accepted (preseeded, or autosigned for presenting the join token)
    can fire this event; an accepted minion could still forge another id's
    start event with event.send, so the id must be a plain name with an
    accepted key.  Until the master's first highstate has finished (it
    writes the marker below) the cluster is being bootstrapped by
    `salt '*' state.apply`, and starts are left to that run.

    Salt fires this event again whenever a minion's connection to the
    master comes back (every minion at once after a salt-master restart).
    That reconnect carries no grains; a real start does when the minion sets
    `start_event_grains` (etc/minion.d/saltcluster-join.conf).  A reconnect
    of a minion already in the master's members block of /etc/hosts changes
    nothing and is skipped: joining every member again swamped the master.
    A reconnect of a non-member (a join cut short by a master restart) joins
    it. -#}
{%- set id = data.get('id', '') | string %}
{%- set plain = id | regex_match('^([A-Za-z0-9][A-Za-z0-9._-]{0,62})$') %}
{%- set ns = namespace(member=false) %}
{%- if plain and not data.get('grains') and salt['file.file_exists']('/etc/hosts') %}
{%-   set after_begin = salt['file.read']('/etc/hosts').split('# BEGIN saltcluster members')[1:] | join('') %}
{%-   for line in after_begin.split('# END saltcluster members')[0].splitlines() %}
{%-     if line.split()[1:2] == [id] %}
{%-       set ns.member = true %}
{%-     endif %}
{%-   endfor %}
{%- endif %}
{%- if plain and not ns.member
      and salt['file.file_exists']('/etc/salt/pki/master/minions/' ~ id)
      and salt['file.file_exists']('/etc/salt/saltcluster.bootstrapped') %}
saltcluster-reactor-join-{{ id }}:
  runner.state.orchestrate:
    - args:
      - mods: orch.join
      - pillar:
          saltcluster_join: {{ id | json }}
{%- endif %}
