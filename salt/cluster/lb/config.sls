---
{#- The gateway's nginx: an upstream of the compute members' web servers.
    `nginx -t` checks the new file before it replaces the live one, and an
    empty backend list stops rendering: the running config stays. #}
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import mapdata as sc with context %}

include:
  - {{ tplroot }}.lb.package

cluster-lb-config-file-managed-nginx-conf:
  file.managed:
    - name: {{ sc.lb.config_file }}
    - source: {{ sc.lb.template }}
    - template: jinja
    - mode: '0644'
    - check_cmd: nginx -t -q -c
    - context:
        lb: {{ sc.lb | json }}
        worker_processes: {{ sc.lb.worker_processes }}
        backends: {{ salt['cluster.upstream']() | json }}
    - require:
      - pkg: cluster-lb-package-pkg-installed
