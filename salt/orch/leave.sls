{#- Nodes left: forget their mine data (it outlives them otherwise) and their
    join record, drop them from the NFS export, then rebuild hosts,
    known_hosts, hostfile and upstream on the others.

    The event that brought us here may be forged (any accepted minion can
    fire salt/presence/change with event.send, and salt/key too), so each id
    is evicted only when the master confirms it itself, while rendering:

    - saltcluster_leave_event `key` (salt/key, act=delete): the master's key
      store no longer lists the id as accepted (wheel key.list).  A minion
      that sends salt/key itself still has its key: refused;
    - saltcluster_leave_event `presence` (salt/presence/change): the id has
      an accepted key (a deleted key leaves through salt/key; an id the
      master never accepted was never a member), the master has no
      connection from it (manage.alived, Salt's own presence test), it has
      mine data left to forget (a second report of the same loss, replayed
      or not, finds none and changes nothing), and it does not answer a
      ping (publish, answered only over the minion's own key);
    - anything else: refused.

    Refused ids are listed in the comment of saltcluster-orch-leave-refused;
    when none is left nothing else runs. #}
{%- import_yaml 'cluster/parameters/defaults.yaml' as defaults %}
{%- set name_re = '^([A-Za-z0-9][A-Za-z0-9._-]{0,62})\Z' %}
{#- Slurm (scheduler: slurm): a node whose key was deleted leaves (drained,
    its jobs finished or requeued by slurm:leave_policy, deleted:
    slurm_nodes.leave); a node lost from presence died (down at once, its
    jobs requeued whatever the policy, then deleted: slurm_nodes.lost).
    A node powered off, then its key deleted (saltlab leave) may come here
    both ways, in either order or at once: each function takes a node
    slurmctld no longer lists as done, so it is deleted once and neither
    step fails (a loss after the key delete is refused above: no accepted
    key) #}
{%- set slurm = salt['pillar.get']('saltcluster:scheduler', defaults.saltcluster.scheduler) == 'slurm' %}
{%- set leave_timeout = salt['pillar.get']('saltcluster:slurm:leave_timeout',
                                           defaults.saltcluster.slurm.leave_timeout) %}
{#- a dead minion costs the leave ping_timeout + gather_timeout seconds #}
{%- set ping_timeout = 3 %}
{%- set gather_timeout = 2 %}
{%- set asked = salt['pillar.get']('saltcluster_gone', []) %}
{%- set asked = asked if asked is iterable and asked is not string and asked is not mapping else [] %}
{%- set event = salt['pillar.get']('saltcluster_leave_event', '') %}
{%- set state_dir = opts['cachedir'] ~ '/saltcluster' %}
{%- set gone = [] %}
{%- set refused = [] %}
{%- set candidates = [] %}
{%- if asked %}
{%-   set keys = salt['saltutil.wheel']('key.list', 'accepted') %}
{%-   set keys_ok = keys is mapping and keys.get('success') and keys.get('return') is mapping %}
{%-   set accepted = keys['return'].get('minions', []) if keys_ok else [] %}
{%-   set alive = salt['saltutil.runner']('manage.alived') if keys_ok and event == 'presence' else none %}
{%-   for id in asked %}
{%-     if not (id is string and id | regex_match(name_re)) %}
{%-       do refused.append((id | string) ~ ': not a minion name') %}
{%-     elif id in gone or id in candidates %}
{#-       listed twice #}
{%-     elif not keys_ok %}
{%-       do refused.append(id ~ ": the master's key list could not be read") %}
{%-     elif event == 'key' and id in accepted %}
{%-       do refused.append(id ~ ': its key is still accepted') %}
{%-     elif event == 'key' %}
{%-       do gone.append(id) %}
{%-     elif event != 'presence' %}
{%-       do refused.append(id ~ ': unknown leave event ' ~ (event | string)) %}
{%-     elif id not in accepted %}
{%-       do refused.append(id ~ ': no accepted key') %}
{%-     elif alive is string or alive is mapping or alive is not iterable %}
{%-       do refused.append(id ~ ": the master's presence view could not be read") %}
{%-     elif id in alive %}
{%-       do refused.append(id ~ ': still connected to the master') %}
{%-     else %}
{%-       do candidates.append(id) %}
{%-     endif %}
{%-   endfor %}
{%- endif %}
{%- if candidates %}
{%-   set mine = salt['saltutil.runner']('cache.mine', tgt=candidates | join(','), tgt_type='list') %}
{%-   set pinged = salt['saltutil.cmd'](candidates | join(','), 'test.ping', tgt_type='list',
                                     timeout=ping_timeout, gather_job_timeout=gather_timeout) %}
{%-   for id in candidates %}
{%-     if not (mine is mapping and mine.get(id)) %}
{%-       do refused.append(id ~ ': no mine data (already forgotten)') %}
{%-     elif pinged is mapping and pinged.get(id) is mapping and pinged[id].get('ret') is sameas true %}
{%-       do refused.append(id ~ ': answered a ping') %}
{%-     else %}
{%-       do gone.append(id) %}
{%-     endif %}
{%-   endfor %}
{%- endif %}

{%- if refused %}

saltcluster-orch-leave-refused:
  test.show_notification:
    - text: {{ ('not evicted: ' ~ refused | join('; ')) | json }}
{%- endif %}
{%- if gone %}

saltcluster-orch-leave-cache-clear-mine:
  salt.runner:
    - name: cache.clear_mine
    - tgt: {{ gone | join(',') | json }}
    - tgt_type: list

# a node that comes back is joined again even if its salt-minion is the one
# that was recorded (it was only cut off)
saltcluster-orch-leave-file-absent-joined:
  file.absent:
    - names:
{%-   for id in gone %}
      - {{ (state_dir ~ '/joined/' ~ id) | json }}
{%-   endfor %}

# the export lists the compute members' addresses: drop the gone ones
saltcluster-orch-leave-nfs-export:
  cluster_orch.state:
    - tgt: 'G@roles:master and not L@{{ gone | join(',') }}'
    - tgt_type: compound
    - sls: cluster.nfs.server
    - require:
      - salt: saltcluster-orch-leave-cache-clear-mine

saltcluster-orch-leave-membership:
  cluster_orch.state:
    - tgt: '* and not L@{{ gone | join(',') }}'
    - tgt_type: compound
    - sls: cluster.membership
    - skip_unsynced: true
    - require:
      - salt: saltcluster-orch-leave-cache-clear-mine
{%-   if slurm %}
{%-     for id in gone %}

# last, needing nothing above: Slurm follows even if a membership run failed
saltcluster-orch-leave-slurm-{{ id }}:
  salt.function:
    - name: {{ 'slurm_nodes.leave' if event == 'key' else 'slurm_nodes.lost' }}
    - tgt: 'G@roles:master and not L@{{ gone | join(',') }}'
    - tgt_type: compound
    - kwarg:
        node: {{ id | json }}
    - timeout: {{ (leave_timeout + 180) if event == 'key' else 180 }}
{%-     endfor %}
{%-   endif %}
{%- endif %}
