---
{#- One key pair for the MPI user, made once on the master in the shared
    home, and its public half authorised; the nodes see both through NFS.
    All of it written as the MPI user (user_file): a link the user puts in
    place of ~/.ssh or a key file is replaced, never followed as root. #}
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import mapdata as sc with context %}
{%- set user = sc.user %}
{%- set key = user.home ~ '/.ssh/id_' ~ sc.ssh.key_type %}

include:
  - {{ tplroot }}.users

cluster-ssh-keys-user-file-directory-dot-ssh:
  user_file.directory:
    - name: {{ user.home }}/.ssh
    - user: {{ user.name }}
    - group: {{ user.group }}
    - mode: '0700'
    - require:
      - user: cluster-users-user-present-{{ user.name }}

cluster-ssh-keys-user-file-keypair:
  user_file.keypair:
    - name: {{ key }}
    - user: {{ user.name }}
    - group: {{ user.group }}
    - key_type: {{ sc.ssh.key_type }}
    - comment: {{ user.name }}@saltcluster
    - require:
      - user_file: cluster-ssh-keys-user-file-directory-dot-ssh

cluster-ssh-keys-user-file-authorized-key:
  user_file.authorized_key:
    - name: {{ user.home }}/.ssh/authorized_keys
    - source: {{ key }}.pub
    - user: {{ user.name }}
    - group: {{ user.group }}
    - require:
      - user_file: cluster-ssh-keys-user-file-keypair
