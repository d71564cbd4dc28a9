---
{#- MPICH on every host from the provider mpi:provider names (by Debian
    release unless pillar sets it), and the login environment that puts it
    first.  hostfile and programs are the master's (see salt/top.sls). #}
include:
  - .package
  - .config
