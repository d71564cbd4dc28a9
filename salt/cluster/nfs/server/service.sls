---
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import mapdata as sc with context %}

include:
  - {{ tplroot }}.nfs.server.config

cluster-nfs-server-service-running:
  service.running:
    - name: {{ sc.nfs.server_service }}
    - enable: true
    - require:
      - nfs_export: cluster-nfs-server-nfs-export-present
