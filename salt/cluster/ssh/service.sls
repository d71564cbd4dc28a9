---
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import mapdata as sc with context %}

include:
  - {{ tplroot }}.ssh.config

cluster-ssh-service-running:
  service.running:
    - name: {{ sc.ssh.service }}
    - enable: true
    - reload: true
    - watch:
      - file: cluster-ssh-config-file-managed-sshd-dropin
