{#- A minion started, or reconnected: hand over to orch.join.  Reactors
    render one at a time, so this only filters; the orchestration decides.

    Nothing in this event can be trusted: any accepted minion can fire
    `salt/minion/<id>/start` itself with `event.send`, and with
    `preload={"events": [...]}` the whole payload (id and grains included)
    is its own.  So orch.join checks again, runner side, against what the
    master can confirm: an accepted key, the master bootstrapped, no join
    of that minion running (a lock per id), and a salt-minion process that
    is not the one its last completed join already handled (the minion
    itself answers for that, over its own key).  A forged or replayed start
    therefore changes nothing.

    The filters here only drop events early, never let more through:
    - the id must be a plain name, and the one in the tag (a minion's own
      event.send carries its real id: node2 cannot name node1 that way);
    - its key accepted (pki_dir) and the master bootstrapped (the marker the
      master's first highstate writes; until then `salt '*' state.apply` is
      setting the cluster up and starts are left to it);
    - Salt fires this event again whenever a minion's connection to the
      master comes back (every minion at once after a salt-master restart).
      That reconnect carries no grains; a real start does when the minion
      sets `start_event_grains` (etc/minion.d/saltcluster-join.conf).  A
      reconnect of a minion already in the master's members block of
      /etc/hosts is skipped here, so a master restart starts no
      orchestration per member; a reconnect of a non-member (a join cut
      short by a master restart) goes on to orch.join.

    Master options (etc/master.d/saltcluster.conf): saltcluster_join_marker
    (default /etc/salt/saltcluster.bootstrapped, saltcluster:network:
    join_marker of the master's pillar). -#}
{%- set id = data.get('id', '') | string %}
{%- set plain = id | regex_match('^([A-Za-z0-9][A-Za-z0-9._-]{0,62})$') %}
{%- set marker = opts.get('saltcluster_join_marker', '/etc/salt/saltcluster.bootstrapped') %}
{%- set ns = namespace(member=false) %}
{%- if plain and tag == 'salt/minion/' ~ id ~ '/start'
      and not data.get('grains') and salt['file.file_exists']('/etc/hosts') %}
{%-   set after_begin = salt['file.read']('/etc/hosts').split('# BEGIN saltcluster members')[1:] | join('') %}
{%-   for line in after_begin.split('# END saltcluster members')[0].splitlines() %}
{%-     if line.split()[1:2] == [id] %}
{%-       set ns.member = true %}
{%-     endif %}
{%-   endfor %}
{%- endif %}
{%- if plain and tag == 'salt/minion/' ~ id ~ '/start' and not ns.member
      and salt['file.file_exists'](opts['pki_dir'] ~ '/minions/' ~ id)
      and salt['file.file_exists'](marker) %}
saltcluster-reactor-join-{{ id }}:
  runner.state.orchestrate:
    - args:
      - mods: orch.join
      - pillar:
          saltcluster_join: {{ id | json }}
{%- endif %}
