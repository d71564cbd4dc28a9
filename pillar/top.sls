---
base:
  '*':
    - saltcluster
    - mine
  # masterless single-host use from the repo (etc/salt/minion sets the grain)
  'saltcluster_local:True':
    - match: grain
    - local
