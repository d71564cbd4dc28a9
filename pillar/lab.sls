---
# The lab's tuning (lab/: User-Mode Linux guests from one Debian 13 image),
# applied by top.sls to the lab's hosts only.  Operators set these knobs in
# saltcluster.sls for their own hardware; this file says what the lab's
# guests need.
saltcluster:
  user:
    # The image's nfs-common makes rpcbind's `_rpc` the holder of uid 100:
    # move it, with rpcbind stopped while its uid changes.
    relocate_uid_holder: true
    relocate_restart_services: [rpcbind.socket, rpcbind.service]
  mpi:
    # The guests have one vCPU each: two slots per node let
    # `mpi.run cpi np=4` place two ranks on each of node1 and node2.
    slots: 2
    # The guests' cluster NIC (UML's vector driver names it vec0).
    ucx_net_device: vec0
