---
# Every host publishes what membership needs in three mine entries, each the
# return of a core Salt function: a minion has them from its first start
# (Salt runs mine.update when the minion starts), before any module of this
# tree is synced to it, so the first `salt '*' state.apply` finds every
# member.  cluster.members (_modules/cluster.py) assembles and checks them on
# the other side; `salt HOST cluster.host_info` shows what HOST publishes.
mine_functions:
  # {id, roles, num_cpus}; a grain the host lacks comes as [] (no roles)
  saltcluster_grains:
    - mine_function: grains.item
    - id
    - roles
    - num_cpus
    - default: []
  # every IPv4 address; members take the first one in network:cidr
  saltcluster_addrs:
    - mine_function: network.ip_addrs
    - include_loopback: true
  # {<type>.pub: "<type> <base64> <comment>"}: the public host keys only.
  # private: false matters: ssh.host_keys returns the private keys too
  # by default, and the mine serves every entry to every minion.
  saltcluster_host_keys:
    - mine_function: ssh.host_keys
    - keydir: /etc/ssh
    - private: false
    - certs: false
mine_interval: 5
