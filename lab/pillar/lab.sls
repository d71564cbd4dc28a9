---
# The lab's tuning (lab/: User-Mode Linux guests from one Debian 13 image),
# applied to the lab's hosts only: the lab's master has lab/pillar as its
# second pillar root (lab/labkit/hosts.py) and pillar/top.sls adds `lab` on
# that master alone (saltcluster_lab).  No top file here: pillar/top.sls is
# the only one.  Operators set these knobs in pillar/saltcluster.sls for
# their own hardware; this file says what the lab's guests need.
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
  # Slurm follows membership in the lab (issue 15): the image carries
  # Debian's munge and Slurm packages with no key and no unit enabled
  # (lab/labkit/build.py); cluster.slurm configures and starts them.
  scheduler: slurm
