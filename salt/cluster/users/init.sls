---
{#- The MPI user with the same uid and gid on every host.  On the master the
    home is created (it is the NFS export); compute nodes get it by mount. #}
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import mapdata as sc with context %}
{%- set user = sc.user %}
{%- set is_master = 'master' in salt['grains.get']('roles', []) %}

cluster-users-cluster-user-uid-free-{{ user.name }}:
  cluster_user.uid_free:
    - name: {{ user.name }}
    - uid: {{ user.uid }}
    - relocate: {{ user.relocate_uid_holder }}
    - restart_services: {{ user.relocate_restart_services | json }}

cluster-users-group-present-{{ user.group }}:
  group.present:
    - name: {{ user.group }}
    - gid: {{ user.gid }}

cluster-users-user-present-{{ user.name }}:
  user.present:
    - name: {{ user.name }}
    - uid: {{ user.uid }}
    - gid: {{ user.gid }}
    - home: {{ user.home }}
    - shell: {{ user.shell }}
    - createhome: {{ is_master }}
    - password: '*'
    - require:
      - cluster_user: cluster-users-cluster-user-uid-free-{{ user.name }}
      - group: cluster-users-group-present-{{ user.group }}
