{#- Minions (re)connected (salt/presence/change, "new").  A restarted
    salt-master sees every minion as new in its first presence checks, and
    an orchestration it was running died with it: a node that was joining
    then is finished here.  Only in the master's first 120 s, and only for
    accepted, plain-named minions not yet in the master's /etc/hosts block
    (so an ordinary join, already handled by its start event, is not run
    twice). -#}
{%- set name_re = '^([A-Za-z0-9][A-Za-z0-9._-]{0,62})$' %}
{%- set pid = salt['file.read']('/var/run/salt-master.pid').strip() if salt['file.file_exists']('/var/run/salt-master.pid') else '' %}
{%- set age = salt['cmd.run']('ps -o etimes= -p ' ~ pid, python_shell=False).strip() if pid | regex_match('^([0-9]+)$') else '' %}
{%- if age | regex_match('^([0-9]+)$') and age | int < 120
      and salt['file.file_exists']('/etc/salt/saltcluster.bootstrapped') %}
{%-   for id in data.get('new', []) %}
{%-     set id = id | string %}
{%-     if id | regex_match(name_re)
          and salt['file.file_exists']('/etc/salt/pki/master/minions/' ~ id)
          and not salt['file.search']('/etc/hosts', '\\s' ~ id ~ '$') %}
saltcluster-reactor-rejoin-{{ id }}:
  runner.state.orchestrate:
    - args:
      - mods: orch.join
      - pillar:
          saltcluster_join: {{ id | json }}
{%-     endif %}
{%-   endfor %}
{%- endif %}
