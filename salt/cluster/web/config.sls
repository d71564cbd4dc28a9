---
{#- A compute node's web server: a page with its own name, and a config
    that goes live only if `nginx -t` accepts it. #}
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import mapdata as sc with context %}
{%- set host = salt['grains.get']('host') or grains.id %}

include:
  - {{ tplroot }}.web.package

cluster-web-config-file-managed-index:
  file.managed:
    - name: {{ sc.web.index_file }}
    - mode: '0644'
    - makedirs: true
    - contents: |
        <!DOCTYPE html>
        <html><head><title>{{ host }}</title></head>
        <body><h1>{{ host }}</h1><p>saltcluster compute node {{ host }}</p></body></html>
    - require:
      - pkg: cluster-web-package-pkg-installed

cluster-web-config-file-managed-nginx-conf:
  file.managed:
    - name: {{ sc.web.config_file }}
    - source: salt://{{ tplroot }}/files/nginx/web.conf.jinja
    - template: jinja
    - mode: '0644'
    - check_cmd: nginx -t -q -c
    - context:
        web: {{ sc.web | json }}
        worker_processes: {{ sc.web.worker_processes }}
        docroot: {{ salt['file.dirname'](sc.web.index_file) }}
        index_name: {{ salt['file.basename'](sc.web.index_file) }}
    - require:
      - pkg: cluster-web-package-pkg-installed
