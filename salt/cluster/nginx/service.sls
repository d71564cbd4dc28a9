---
{#- Reloaded, not restarted, when nginx.conf or a role's site file changes:
    a candidate that fails its check never lands (check_cmd), and its state
    fails, so this watch does not fire with it. #}
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import mapdata as sc with context %}
{%- from tplroot ~ "/nginx/map.jinja" import nginx with context %}

include:
  - {{ tplroot }}.nginx.config

cluster-nginx-service-running:
  service.running:
    - name: {{ sc.nginx.service }}
    - enable: true
    - reload: true
    - watch:
      # a glob over file state names: nginx.conf and whichever site files
      # this run manages or removes (cluster.web, cluster.lb and their
      # clean twins), without this SLS naming the roles' states
      - file: {{ nginx.conf_dir }}/*
