---
# Every host publishes what membership needs (roles, addresses, cpus, ssh
# host keys) in one mine entry; cluster.members reads it on the other side.
mine_functions:
  saltcluster_host:
    mine_function: cluster.host_info
mine_interval: 5
