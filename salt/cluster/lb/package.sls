---
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import mapdata as sc with context %}

cluster-lb-package-pkg-installed:
  pkg.installed:
    - pkgs: {{ sc.lb.packages | json }}
