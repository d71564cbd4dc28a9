---
{#- A host without the gateway role keeps no load-balancer site file: one
    left from a role it no longer holds would go on balancing.  When this
    host still runs nginx for another role, cluster.nginx.service reloads it
    after the removal (its watch covers every file state in nginx's
    directory). #}
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/nginx/map.jinja" import nginx with context %}

cluster-lb-clean-file-absent-site:
  file.absent:
    - name: {{ nginx.sites.lb.path }}
