---
# The cluster: what an operator sets for a site.  Every key left out comes
# from salt/cluster/parameters/defaults.yaml; pillar.example documents every
# knob.  `salt '*' cluster.settings` shows the merged result, and a bad value
# stops rendering with the key and value named before any state runs.
saltcluster:
  network:
    # The cluster's internal network: a host is a member when its minion
    # publishes an address in it, and that address is the one /etc/hosts,
    # ssh_known_hosts, the NFS export and the load balancer use.
    cidr: 10.5.5.0/24
    # The name compute nodes mount the shared home from: the minion id of
    # the host with the master role.
    master_host: master
  user:
    # The MPI user, with the same uid and gid on every host (NFS with
    # sec=sys checks numbers, not names).  The gid is a group of its own:
    # gid 100 is Debian's `users`.
    name: jobhandler
    uid: 100
    gid: 1100
    # Debian gives uid 100 to the first system account a package adds, so
    # cluster.users fails, naming that account, when it holds the uid.  To
    # have that account moved to a free system uid instead, with the daemons
    # that run under it stopped for the move (rpcbind's `_rpc` on a host
    # with nfs-common, `messagebus` with dbus):
    #   relocate_uid_holder: true
    #   relocate_restart_services: [rpcbind.socket, rpcbind.service]
  # MPI: ranks per compute node in the Hydra hostfile (unset: each node's
  # cpu count) and the NIC the ranks talk over (unset: UCX chooses):
  #   mpi:
  #     slots: 4
  #     ucx_net_device: eth1
  lb:
    # How the gateway spreads requests over the compute nodes: round_robin,
    # least_conn, ip_hash or random.
    method: round_robin
