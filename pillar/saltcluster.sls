---
# The cluster's topology and settings.  Everything not set here comes from
# salt/cluster/parameters/defaults.yaml; pillar.example documents each knob.
saltcluster:
  network:
    cidr: 10.5.5.0/24
    master_host: master
  user:
    name: jobhandler
    uid: 100
    gid: 1100
    # Debian hands uid 100 to the first system account a package adds; on
    # Debian 13 with nfs-common that is rpcbind's _rpc (messagebus with dbus):
    # move that account, with its daemon stopped for the move.
    relocate_uid_holder: true
    relocate_restart_services: [rpcbind.socket, rpcbind.service]
  mpi:
    # the lab's hosts have one vCPU each; two ranks per node keeps
    # `mpi.run cpi np=4` within the slots of node1 and node2
    slots: 2
    ucx_net_device: vec0
  lb:
    method: round_robin
