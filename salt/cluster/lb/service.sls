---
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import mapdata as sc with context %}

include:
  - {{ tplroot }}.lb.config

cluster-lb-service-running:
  service.running:
    - name: {{ sc.lb.service }}
    - enable: true
    - reload: true
    - watch:
      - file: cluster-lb-config-file-managed-nginx-conf
