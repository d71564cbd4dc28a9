---
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import mapdata as sc with context %}

cluster-nginx-package-pkg-installed:
  pkg.installed:
    - pkgs: {{ sc.nginx.packages | json }}
