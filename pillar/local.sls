---
# Single-host cluster for `salt-call --local` from the repository root: this
# host is master, compute node and gateway, reached on loopback.
saltcluster:
  network:
    cidr: 127.0.0.0/8
    master_host: localhost
  user:
    # The tree is applied to the Debian host it runs on, where uid 100
    # belongs to a package's system account (rpcbind's `_rpc` once
    # cluster.nfs has installed nfs-common): move it rather than fail.
    relocate_uid_holder: true
    relocate_restart_services: [rpcbind.socket, rpcbind.service]
  mpi:
    # A fixed slot count, so what this profile renders (the hostfile, the
    # np limits) is the same on every machine, whatever its cpu count.
    slots: 2
    # Loopback: UCX picks the device.
    ucx_net_device: null
  # One nginx serves this host's page and its load balancer, each the
  # default server of its own port: the page moves off the balancer's port
  # 80 (cluster.validate refuses one port for both).
  web:
    port: 8080
  lb:
    backend_port: 8080
