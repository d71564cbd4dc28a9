---
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import mapdata as sc with context %}

include:
  - {{ tplroot }}.web.config

cluster-web-service-running:
  service.running:
    - name: {{ sc.web.service }}
    - enable: true
    - reload: true
    - watch:
      - file: cluster-web-config-file-managed-nginx-conf
