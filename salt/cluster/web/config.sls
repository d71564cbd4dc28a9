---
{#- A compute node's web site: a page with its own name, and the site file
    (web:site_file in nginx:site_dir), which goes live only if nginx accepts
    it together with the live nginx.conf and the other sites. #}
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import mapdata as sc with context %}
{%- from tplroot ~ "/nginx/map.jinja" import nginx with context %}
{%- set host = salt['grains.get']('host') or grains.id %}

include:
  - {{ tplroot }}.nginx.config

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
      - pkg: cluster-nginx-package-pkg-installed

cluster-web-config-file-managed-site:
  file.managed:
    - name: {{ nginx.sites.web.path }}
    - source: salt://{{ tplroot }}/files/nginx/web.conf.jinja
    - template: jinja
    - mode: '0644'
    - check_cmd: {{ nginx.sites.web.check }}
    - context:
        web: {{ sc.web | json }}
        docroot: {{ salt['file.dirname'](sc.web.index_file) }}
        index_name: {{ salt['file.basename'](sc.web.index_file) }}
    - require:
      - file: cluster-nginx-config-file-managed-nginx-conf
