---
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import mapdata as sc with context %}

cluster-nfs-server-package-pkg-installed:
  pkg.installed:
    - pkgs: {{ sc.nfs.server_packages | json }}
