---
{#- The shared home, owned by the MPI user, exported to the cluster cidr;
    `exportfs -ra` runs only when the export line changes. #}
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import mapdata as sc with context %}

include:
  - {{ tplroot }}.users
  - {{ tplroot }}.nfs.server.package

cluster-nfs-server-file-directory-export:
  file.directory:
    - name: {{ sc.nfs.export_path }}
    - user: {{ sc.user.name }}
    - group: {{ sc.user.group }}
    - mode: '0755'
    - require:
      - user: cluster-users-user-present-{{ sc.user.name }}

cluster-nfs-server-nfs-export-present:
  nfs_export.present:
    - name: {{ sc.nfs.export_path }}
    - clients: {{ sc.nfs.clients | json }}
    - options: {{ sc.nfs.options | json }}
    - exports: {{ sc.nfs.exports_file }}
    - require:
      - file: cluster-nfs-server-file-directory-export
      - pkg: cluster-nfs-server-package-pkg-installed
