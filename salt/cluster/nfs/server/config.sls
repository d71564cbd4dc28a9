---
{#- The shared home, owned by the MPI user, exported to the hosts that mount
    it; `exportfs -ra` runs only when the export line changes, and an export
    that exportfs refuses is rolled back (nfs_export.present).

    Who may mount it: with sec=sys the server believes the uid a client
    sends, so root on any host the export admits can act as the MPI user and
    read its private key; root_squash does not change that.  The export
    therefore lists the compute members' addresses inside network:cidr
    (cluster.members: the hosts whose minion is accepted and publishes to
    the mine), the hosts cluster.nfs.client mounts it on; not the cidr (any
    host there, accepted or not), not the gateway (it faces the outside and
    mounts nothing), not the master (the export is its own disk).  orch.join
    and orch.leave re-apply this SLS on the master, so the list follows
    membership the way the hostfile does (a joining node is added before its
    highstate mounts).  An empty list (no compute member yet, or no mine
    data: then rendering fails) leaves the running export as it is.

    Pillar saltcluster:nfs:clients, when set, wins over the members: it is
    the site's explicit choice (validated to stay inside network:cidr) and
    is taken as it is, without following membership. -#}
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import mapdata as sc with context %}
{%- if sc.nfs.clients %}
{%-   set clients = sc.nfs.clients %}
{%- else %}
{%-   set clients = salt['cluster.members'](role='compute') | map(attribute='addr') | unique | list %}
{%- endif %}

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
    - clients: {{ clients | json }}
    - options: {{ sc.nfs.options | json }}
    - exports: {{ sc.nfs.exports_file }}
    - require:
      - file: cluster-nfs-server-file-directory-export
      - pkg: cluster-nfs-server-package-pkg-installed
