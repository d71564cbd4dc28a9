---
{#- Who gets what.  Profiles are chosen by the configuration of whoever
    compiles the pillar (a master's config, or the minion's own config when
    it runs masterless), never by grains: a minion sets its grains itself.
    - saltcluster_lab: true in the lab's master config (lab/ writes it): the
      lab's master serves only the lab's hosts, joined ones included, and
      they all get the lab's tuning (lab/pillar/lab.sls: that master's
      second pillar root).
    - saltcluster_local: true in etc/salt/minion: `salt-call --local` from
      the repository root, this host alone.
    Every host also gets keys.sls: when the master accepted each minion's
    key, read from the master's own key store as the master compiles the
    pillar (nothing when a minion compiles it masterless); and munge.sls:
    the munge key, which that file serves only to members with the master
    or compute role (nothing to any other host, nothing masterless). #}
base:
  '*':
    - saltcluster
    - mine
    - health
    - keys
    - munge
{%- if opts.get('saltcluster_lab') %}
    - lab
{%- endif %}
{%- if opts.get('saltcluster_local') %}
    - local
{%- endif %}
