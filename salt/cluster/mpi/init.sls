---
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import mapdata as sc with context %}

cluster-mpi-package-pkg-installed:
  pkg.installed:
    - pkgs: {{ sc.mpi.packages | json }}
