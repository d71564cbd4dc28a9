{#- The cluster's munge key (Slurm's authentication: every munged of the
    cluster shares one key), served to the hosts that run munge only.

    The pillar is compiled on the master (salt.pillar.get_async_pillar,
    called by the master's _pillar for each minion, over the channel that
    minion's accepted key authenticated): `opts` is the master's
    configuration with only id and grains set to the minion's, and
    salt[...] are execution modules in the master's process, so every path
    below is on the salt-master.  Pillar data is per minion and encrypted
    for it in transit; it is never served to every minion (pillar/ is not
    in file_roots).

    The key: 128 random bytes (mungekey's default length) made once, the
    first time a member's pillar asks for it, in the salt-master's own key
    store (<pki_dir>/saltcluster/munge.key, root only), never in this
    repository, in a pillar file on disk, or in the mine.  Made there and
    not by the master host's highstate, so that one `salt '*' state.apply`
    converges: every member's first highstate compiles its pillar at once,
    before any host has installed munge.  Made atomically: a temporary file
    linked to the name, which fails if another render linked first, so two
    pillars compiled at once never serve two keys.

    Who gets it, a member that runs munge: a minion id that is a plain name,
    whose key the master accepted (<pki_dir>/minions/<id>, the key store
    the master alone writes), holding the master or the compute role.  The
    roles are the minion's own claim (its grains, as sent with this pillar
    request, and as it publishes them in the mine): any accepted minion is
    trusted that far (root on a member can read the key of the node it
    runs on anyway).  The gateway, a host with no role, a pending or
    rejected key, and `salt-call --local` (no master compiles it: no key
    store) get nothing.  Nothing is made either unless such a member asks,
    so a master whose cluster runs no Slurm keeps no key beyond the first
    member's pillar.

    cluster.slurm.munge writes it with file.decode (state output shows
    checksums only) to slurm:munge_key, owner munge, mode 0400. #}
{%- set driver = opts.get('keys.cache_driver') or 'localfs_key' %}
{%- set pki_dir = opts.get('cluster_pki_dir') if opts.get('cluster_id') else opts.get('pki_dir') %}
{%- set minion = opts.get('id') %}
{%- set roles = grains.get('roles', []) %}
{%- set roles = [roles] if roles is string else (roles if roles is iterable and roles is not mapping else []) %}
{%- if opts.get('__role') == 'master' and driver == 'localfs_key' and pki_dir
      and minion is string and minion | regex_match('^([A-Za-z0-9][A-Za-z0-9._-]{0,62})\Z')
      and salt['file.file_exists'](pki_dir ~ '/minions/' ~ minion)
      and ('master' in roles or 'compute' in roles) %}
{%-   set key_dir = pki_dir ~ '/saltcluster' %}
{%-   set key_file = key_dir ~ '/munge.key' %}
{%-   if not salt['file.file_exists'](key_file) %}
{%-     do salt['cmd.run'](
          'umask 077 && mkdir -p ' ~ key_dir | quote ~ ' && tmp=$(mktemp ' ~ (key_dir ~ '/.munge.key.XXXXXX') | quote
          ~ ') && head -c 128 /dev/urandom > "$tmp" && { ln "$tmp" ' ~ key_file | quote
          ~ ' 2>/dev/null; rm -f "$tmp"; }',
          python_shell=True) %}
{%-   endif %}
{%-   if salt['file.file_exists'](key_file) %}
---
saltcluster_munge:
  # base64 of the key file; the key itself never appears in any SLS
  key: {{ salt['hashutil.base64_encodefile'](key_file) | json }}
{%-   endif %}
{%- endif %}
