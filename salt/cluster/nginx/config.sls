---
{#- The base nginx.conf (global settings, http defaults, an include of the
    site directory), the site directory, and the checker that every
    candidate, this one and the roles' site files, passes before it goes
    live: saltcluster-nginx-check stages the candidate with the live files
    and runs `nginx -t` on the staged copy. #}
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import mapdata as sc with context %}
{%- from tplroot ~ "/nginx/map.jinja" import nginx with context %}

include:
  - {{ tplroot }}.nginx.package

cluster-nginx-config-file-managed-check-command:
  file.managed:
    - name: {{ sc.nginx.check_command }}
    - source: salt://{{ tplroot }}/files/nginx/check-candidate.sh
    - mode: '0755'
    - makedirs: true

cluster-nginx-config-file-directory-site-dir:
  file.directory:
    - name: {{ nginx.site_dir }}
    - mode: '0755'
    - makedirs: true
    - require:
      - pkg: cluster-nginx-package-pkg-installed

cluster-nginx-config-file-managed-nginx-conf:
  file.managed:
    - name: {{ nginx.config_file }}
    - source: salt://{{ tplroot }}/files/nginx/base.conf.jinja
    - template: jinja
    - mode: '0644'
    - check_cmd: {{ nginx.check }}
    - context:
        worker_processes: {{ sc.nginx.worker_processes }}
        site_dir: {{ sc.nginx.site_dir }}
    - require:
      - pkg: cluster-nginx-package-pkg-installed
      - file: cluster-nginx-config-file-managed-check-command
      - file: cluster-nginx-config-file-directory-site-dir
