---
# Every host checks its own health and says what it found: each
# `seconds`, cluster_health.publish runs the checks its roles promise
# (cluster_health.check), counts passes and failures in a row (a compute
# node is drained after saltcluster:health:fail_after failures and serves
# again after health:pass_after passes), sends that claim to the mine
# (saltcluster_health) and, when a compute node's state flips, fires
# saltcluster/health/<id>/changed: the master's reactor re-applies
# membership on the master and the gateway (salt/orch/health.sls).
# `seconds` is the check interval: a fault drains a node within
# seconds x fail_after (plus the checks' own time) and that orchestration,
# and a node back in health serves again within seconds x pass_after and
# the orchestration (docs/user-guide.md).  Until a host's first
# highstate syncs cluster_health to it, the minion skips the job (logged
# at info level).
schedule:
  saltcluster-health:
    function: cluster_health.publish
    seconds: 10
    # one run at a time: a check that hangs is not piled on
    maxrunning: 1
    jid_include: true
    # the claim goes to the mine; the job's return goes nowhere
    return_job: false
