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
    # Debian gives uid 100 to messagebus once dbus is installed: move it.
    relocate_uid_holder: true
    relocate_restart_services: [dbus]
  mpi:
    ucx_net_device: vec0
  lb:
    method: round_robin
