{#- Key seniority: when the master accepted each minion's key.
    cluster.members (_modules/cluster.py, _settle_claims) gives a name or
    an address two members claim to the one whose key the master accepted
    first, so a member that joins later (a new id registered with the join
    token, or a compromised member) cannot take a name or an address from
    one that was there before it.

    Why the master's key store is the record: it is written by the master
    alone (salt-key, or the master's own autosign of the join token) and
    the minions cannot write it: a minion sets its grains, its mine entries
    and its own files, and publishes into the mine under its own id only.
    Nothing else a host could read says who was there first: the mine holds
    each member's present claims, written by that member, and a generated
    file such as /etc/hosts is output, not a record.

    The pillar is compiled on the master (salt.pillar.get_async_pillar,
    called by the master's _pillar for each minion): `opts` here is the
    master's configuration with only id and grains set to the minion's,
    and salt[...] are execution modules loaded in the master's process, so
    pki_dir is the master's and every path below is on the master.

    The time is the accepted key file's mtime: Salt 3008's key store
    (keys.cache_driver localfs_key, the default) writes <pki_dir>/minions/<id>
    when the key is accepted (salt-key -a, or autosign), and does not
    rewrite it when the minion authenticates again; a deleted key that is
    accepted again starts over.  Nothing is published where no master
    compiles this (`salt-call --local` compiles it with the minion's own
    configuration: no key store), with another key cache driver, or when
    there is no such directory; cluster.members then decides without it. #}
{%- set driver = opts.get('keys.cache_driver') or 'localfs_key' %}
{%- set pki_dir = opts.get('cluster_pki_dir') if opts.get('cluster_id') else opts.get('pki_dir') %}
{%- set keydir = (pki_dir or '') ~ '/minions' %}
{%- if opts.get('__role') == 'master' and driver == 'localfs_key' and pki_dir
      and salt['file.directory_exists'](keydir) %}
{%-   set seniority = {} %}
{%-   for name in salt['file.readdir'](keydir) | sort %}
{%-     set path = keydir ~ '/' ~ name %}
{#-     readdir lists '.' and '..' too; a key file is a regular file #}
{%-     if not name.startswith('.') and salt['file.file_exists'](path) %}
{%-       set found = salt['file.lstat'](path) %}
{%-       if found.get('st_mtime') is number %}
{%-         do seniority.update({name: found['st_mtime']}) %}
{%-       endif %}
{%-     endif %}
{%-   endfor %}
---
# {minion id: epoch seconds its key was accepted}, for cluster.members
saltcluster_key_seniority: {{ seniority | json }}
{%- endif %}
