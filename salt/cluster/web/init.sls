---
{#- A compute node's web site, served by the host's nginx (cluster.nginx). #}
include:
  - cluster.nginx
  - .config
