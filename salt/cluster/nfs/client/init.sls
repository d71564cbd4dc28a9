---
{#- Mount the master's export on the MPI user's home, persistently (fstab),
    after the server answers on the NFS port. #}
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import mapdata as sc with context %}
{%- set home = sc.user.home %}
{%- set server = sc.network.master_host %}

include:
  - {{ tplroot }}.users
  - {{ tplroot }}.hosts

cluster-nfs-client-pkg-installed:
  pkg.installed:
    - pkgs: {{ sc.nfs.client_packages | json }}

cluster-nfs-client-cmd-run-wait-for-server:
  cmd.run:
    - name: >-
        timeout {{ sc.nfs.server_wait_seconds }} bash -c
        'until timeout 3 bash -c "</dev/tcp/{{ server }}/2049"; do sleep 2; done'
    - unless: findmnt -rn -t nfs4,nfs -M {{ home }}
    - require:
      - file: cluster-hosts-file-blockreplace-members

cluster-nfs-client-mount-mounted-home:
  mount.mounted:
    - name: {{ home }}
    - device: {{ server }}:{{ sc.nfs.export_path }}
    - fstype: nfs4
    - opts: {{ sc.nfs.mount_options | json }}
    - persist: true
    - mkmnt: true
    - require:
      - pkg: cluster-nfs-client-pkg-installed
      - user: cluster-users-user-present-{{ sc.user.name }}
      - cmd: cluster-nfs-client-cmd-run-wait-for-server
