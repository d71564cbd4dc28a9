---
{#- The gateway's load balancer, served by the host's nginx (cluster.nginx). #}
include:
  - cluster.nginx
  - .config
