---
{#- Last in a compute node's highstate: its own health checks, once
    everything they test is configured (cluster_health.serving).  A node
    enters the hostfile and the upstream only when they pass; after that
    its health schedule (pillar/health.sls) drains it and brings it back. #}
cluster-health-cluster-health-serving:
  cluster_health.serving:
    - order: last
