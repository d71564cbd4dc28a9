{#- A node joined: make it a full member, then tell everyone else.  Runs
    inside the master (reactor -> orchestrate), no CLI start-up per step.

    The start event that brought us here may be forged or replayed (any
    accepted minion can fire it with event.send), so this rendering checks,
    with what the master knows itself, before anything runs:

    1. saltcluster_join is a plain minion name;
    2. the master is bootstrapped: the file saltcluster:network:join_marker
       names (the master's pillar over parameters/defaults.yaml) exists; the
       master's first highstate writes it (cluster.bootstrapped);
    3. the master's key store lists the id as accepted (wheel key.list);
       nothing is sent to an id that is not;
    4. no join of that id is running: a lock directory per id under the
       master's cachedir (<cachedir>/saltcluster/joining/<id>), taken with
       mkdir (atomic) by the first state below and removed at the end,
       failed or not.  A lock older than the salt-master process (the master
       restarted in the middle of that join) is taken over;
    5. a reconnect (saltcluster_join_event `reconnect`: the start event
       carried no grains, as when a salt-master restart brings every minion
       back at once) of a member is nothing to do.  Membership is the mine:
       the minion is a member when the master's copy of the mine holds, under
       its own id, every entry a member publishes (pillar/mine.sls:
       saltcluster_grains with its own id, saltcluster_addrs,
       saltcluster_host_keys), the record cluster.members reads on every
       host.  A minion
       whose join a master restart cut short (check 4 found its stale lock)
       is not taken for one: its reconnect finishes the join.  Nothing is
       asked of the minion for this;
    6. the minion answers, over its own key, with the identity of its
       running salt-minion: the kernel's boot_id and the minion's pid grain
       (asked up to answer_attempts times: a minion that has just started
       on a busy host may miss a question).
       A completed join records that identity (<cachedir>/saltcluster/
       joined/<id>); an identity equal to the record means this salt-minion
       was already joined since it started (a replay, a forged start, a
       reconnect): nothing to do.  A real start (a reboot, a fresh disk, a
       restarted salt-minion) has a new identity and joins again; a join
       that failed left no record and is retried by the next start.

    Any check that fails renders only saltcluster-orch-join-refused, whose
    comment says why.  State runs on minions go through cluster_orch.state
    (_states/cluster_orch.py): one at a time per minion across every
    orchestration, ordered on the master (Salt's own state queue loses or
    deadlocks concurrent runs), and a membership run leaves out a node
    whose first highstate has not synced this tree's modules yet. #}
{%- import_yaml 'cluster/parameters/defaults.yaml' as defaults %}
{%- set name_re = '^([A-Za-z0-9][A-Za-z0-9._-]{0,62})\Z' %}
{%- set identity_re = '^([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12} [0-9]{1,10})\Z' %}
{%- set answer_timeout = 30 %}
{%- set answer_gather_timeout = 10 %}
{%- set answer_attempts = 3 %}
{#- the mine entries every member publishes (cluster.MEMBER_ENTRIES) #}
{%- set member_entries = ['saltcluster_grains', 'saltcluster_addrs', 'saltcluster_host_keys'] %}
{%- set node = salt['pillar.get']('saltcluster_join', '') %}
{%- set node = node if node is string else '' %}
{%- set reconnect = salt['pillar.get']('saltcluster_join_event', 'start') == 'reconnect' %}
{%- set state_dir = opts['cachedir'] ~ '/saltcluster' %}
{%- set lock = state_dir ~ '/joining/' ~ node %}
{%- set record = state_dir ~ '/joined/' ~ node %}
{%- set marker = salt['pillar.get']('saltcluster:network:join_marker', defaults.saltcluster.network.join_marker) %}
{#- Slurm (scheduler: slurm): the node's highstate started its slurmd as a
    dynamic node; the master waits for it to register and resumes it if
    saltcluster had set it aside (slurm_nodes.admit) #}
{%- set slurm = salt['pillar.get']('saltcluster:scheduler', defaults.saltcluster.scheduler) == 'slurm' %}
{%- set register_timeout = salt['pillar.get']('saltcluster:slurm:register_timeout',
                                              defaults.saltcluster.slurm.register_timeout) %}
{%- set ns = namespace(why='', identity='', stale_lock=false, roles=[]) %}
{%- if not node | regex_match(name_re) %}
{%-   set ns.why = 'not a minion name' %}
{%- elif not salt['file.file_exists'](marker) %}
{%-   set ns.why = 'the cluster is still being bootstrapped (no ' ~ marker ~ ')' %}
{%- else %}
{%-   set keys = salt['saltutil.wheel']('key.list', 'accepted') %}
{%-   if not (keys is mapping and keys.get('success') and keys.get('return') is mapping) %}
{%-     set ns.why = "the master's key list could not be read" %}
{%-   elif node not in keys['return'].get('minions', []) %}
{%-     set ns.why = 'no accepted key' %}
{%-   elif salt['file.directory_exists'](lock) %}
{%-     if salt['file.file_exists'](opts['pidfile'])
          and salt['file.stats'](lock).mtime < salt['file.stats'](opts['pidfile']).mtime %}
{%-       set ns.stale_lock = true %}
{%-     else %}
{%-       set ns.why = 'a join of it is in progress (' ~ lock ~ ')' %}
{%-     endif %}
{%-   endif %}
{%-   if not ns.why and reconnect and not ns.stale_lock %}
{%-     set mine = salt['saltutil.runner']('cache.mine', tgt=node, tgt_type='list') %}
{%-     set entries = mine.get(node) if mine is mapping else none %}
{%-     set entries = entries if entries is mapping else {} %}
{%-     set grains = entries.get(member_entries[0]) %}
{%-     if member_entries | reject('in', entries) | list == []
          and grains is mapping and grains.get('id', node) == node %}
{%-       set ns.why = 'a reconnect of a member (its ' ~ member_entries | join(', ') ~ ' are in the mine): nothing to do' %}
{%-     endif %}
{%-   endif %}
{%-   if not ns.why %}
{#-     a minion that has just started on a busy host (several joining at
        once, one vCPU each) may miss one question: the join is decided by
        this answer, and a refused join waits for the minion's next start,
        so the question is asked again, a bounded number of times #}
{%-     for attempt in range(answer_attempts) if not ns.identity %}
{%-       set answer = salt['saltutil.cmd'](node, ['grains.item', 'file.read'],
                                           arg=[['pid', 'roles'], ['/proc/sys/kernel/random/boot_id']],
                                           timeout=answer_timeout, gather_job_timeout=answer_gather_timeout) %}
{%-       set got = answer.get(node) if answer is mapping else none %}
{%-       set ret = got.get('ret') if got is mapping else none %}
{%-       if ret is mapping and ret.get('file.read') is string and ret.get('grains.item') is mapping %}
{%-         set ns.identity = ret['file.read'] | trim ~ ' ' ~ ret['grains.item'].get('pid') | string %}
{%-         set roles = ret['grains.item'].get('roles') %}
{%-         set ns.roles = roles if roles is sequence and roles is not string else [] %}
{%-       endif %}
{%-     endfor %}
{%-     if not ns.identity %}
{%-       set ns.why = 'it did not answer ' ~ answer_attempts ~ ' questions of ' ~ answer_timeout ~ ' s each' %}
{%-     elif not ns.identity | regex_match(identity_re) %}
{%-       set ns.why = 'its answer is not a boot id and a pid' %}
{%-       set ns.identity = '' %}
{%-     elif salt['file.file_exists'](record) and salt['file.read'](record) | trim == ns.identity %}
{%-       set ns.why = 'already joined: its salt-minion has not restarted since its last join (' ~ ns.identity ~ ')' %}
{%-     endif %}
{%-   endif %}
{%- endif %}

{#- only a compute node runs slurmd: a gateway or the master's own minion
    (a reboot, a restarted salt-minion) joins without Slurm steps.  Its
    roles are its own answer, the same grain its highstate is targeted by. #}
{%- set slurm_node = slurm and 'compute' in ns.roles %}
{%- if ns.why %}

saltcluster-orch-join-refused:
  test.show_notification:
    - text: {{ ('not joining ' ~ node ~ ': ' ~ ns.why) | json }}
{%- else %}
{%-   if ns.stale_lock %}

# left by a master that stopped in the middle of this node's join
saltcluster-orch-join-file-absent-stale-lock:
  file.absent:
    - name: {{ lock | json }}
    - require_in:
      - cmd: saltcluster-orch-join-lock
{%-   endif %}

saltcluster-orch-join-file-directory-state:
  file.directory:
    - names:
      - {{ (state_dir ~ '/joining') | json }}
      - {{ (state_dir ~ '/joined') | json }}
    - makedirs: true
    - mode: '0700'

# mkdir fails if another join of this node holds the lock: that run goes on,
# this one stops here
saltcluster-orch-join-lock:
  cmd.run:
    - name: {{ ('mkdir ' ~ lock | quote) | json }}
    - require:
      - file: saltcluster-orch-join-file-directory-state

# the start-up mine run is not ordered with the start event: publish now
# (core functions only, pillar/mine.sls: nothing to sync first; the
# highstate below syncs this tree's modules itself, autoload_dynamic_modules)
saltcluster-orch-join-mine-update:
  salt.function:
    - name: mine.update
    - tgt: {{ node | json }}
    - require:
      - cmd: saltcluster-orch-join-lock

# the export lists the compute members' addresses: add this node's before
# its highstate mounts the shared home
saltcluster-orch-join-nfs-export:
  cluster_orch.state:
    - tgt: 'G@roles:master'
    - tgt_type: compound
    - sls: cluster.nfs.server
    - require:
      - salt: saltcluster-orch-join-mine-update

saltcluster-orch-join-node-highstate:
  cluster_orch.state:
    - tgt: {{ node | json }}
    - highstate: true
    - require:
      - cluster_orch: saltcluster-orch-join-nfs-export

# the node's own health, after its highstate: it enters the hostfile and
# the upstream only if its checks pass now (cluster_health.publish admits
# it: its claim in the mine says serving from here on, and the renders
# below list it); retcode 1 when it does not serve
saltcluster-orch-join-node-health:
  salt.function:
    - name: cluster_health.publish
    - tgt: {{ node | json }}
    - kwarg:
        admit: true
    - require:
      - cluster_orch: saltcluster-orch-join-node-highstate

saltcluster-orch-join-node-health-failed:
  test.fail_without_changes:
    - comment: {{ ('not adding ' ~ node ~ ' to the hostfile and the upstream: its health checks failed after its '
                   ~ 'highstate (the failed checks are in the return of saltcluster-orch-join-node-health; '
                   ~ '`salt ' ~ node ~ ' cluster_health.check` shows them now). Its own health schedule '
                   ~ 'brings it in once they pass.') | json }}
    - onfail:
      - salt: saltcluster-orch-join-node-health

saltcluster-orch-join-membership:
  cluster_orch.state:
    - tgt: '* and not {{ node }}'
    - tgt_type: compound
    - sls: cluster.membership
    - skip_unsynced: true
    - require:
      - salt: saltcluster-orch-join-node-health

{%-   if slurm_node %}

# slurmd registers a dynamic node when it starts, and only then: a node
# that rebooted registered again at boot, and may since have been deleted
# for the loss the master saw of it (its minion was still down).  A restart
# registers it now; running job steps (a restarted salt-minion's join) keep
# running under their slurmstepd.
saltcluster-orch-join-slurm-register:
  salt.function:
    - name: service.restart
    - tgt: {{ node | json }}
    - arg:
      - slurmd
    - require:
      - cluster_orch: saltcluster-orch-join-membership

# Slurm lists the node (registered by its own slurmd, started once its
# health passed) and resumes it if saltcluster had drained or downed it (a
# rejoin); bounded by slurm:register_timeout
saltcluster-orch-join-slurm-admit:
  salt.function:
    - name: slurm_nodes.admit
    - tgt: 'G@roles:master'
    - tgt_type: compound
    - kwarg:
        node: {{ node | json }}
    - timeout: {{ register_timeout + 60 }}
    - require:
      - salt: saltcluster-orch-join-slurm-register
{%-   endif %}

# this salt-minion is joined: its replayed or forged start events stop at
# check 6 above
saltcluster-orch-join-record:
  file.managed:
    - name: {{ record | json }}
    - contents: {{ ns.identity | json }}
    - mode: '0600'
    - require:
      - cluster_orch: saltcluster-orch-join-membership
{%-   if slurm_node %}
      - salt: saltcluster-orch-join-slurm-admit
{%-   endif %}

saltcluster-orch-join-unlock:
  file.absent:
    - name: {{ lock | json }}
    - require:
      - file: saltcluster-orch-join-record

saltcluster-orch-join-unlock-after-failure:
  file.absent:
    - name: {{ lock | json }}
    - require:
      - cmd: saltcluster-orch-join-lock
    - onfail:
      - salt: saltcluster-orch-join-mine-update
      - cluster_orch: saltcluster-orch-join-nfs-export
      - cluster_orch: saltcluster-orch-join-node-highstate
      - salt: saltcluster-orch-join-node-health
      - cluster_orch: saltcluster-orch-join-membership
{%-   if slurm_node %}
      - salt: saltcluster-orch-join-slurm-register
      - salt: saltcluster-orch-join-slurm-admit
{%-   endif %}
      - file: saltcluster-orch-join-record
{%- endif %}
