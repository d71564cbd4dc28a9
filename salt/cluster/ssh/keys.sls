---
{#- One key pair for the MPI user, made once on the master in the shared
    home, and its public half authorised; the nodes see both through NFS. #}
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import mapdata as sc with context %}
{%- set user = sc.user %}
{%- set key = user.home ~ '/.ssh/id_' ~ sc.ssh.key_type %}

include:
  - {{ tplroot }}.users

cluster-ssh-keys-file-directory-dot-ssh:
  file.directory:
    - name: {{ user.home }}/.ssh
    - user: {{ user.name }}
    - group: {{ user.group }}
    - mode: '0700'
    - require:
      - user: cluster-users-user-present-{{ user.name }}

cluster-ssh-keys-cmd-run-keygen:
  cmd.run:
    - name: ssh-keygen -q -t {{ sc.ssh.key_type }} -N '' -C '{{ user.name }}@saltcluster' -f {{ key }}
    - runas: {{ user.name }}
    - creates: {{ key }}
    - require:
      - file: cluster-ssh-keys-file-directory-dot-ssh

cluster-ssh-keys-file-managed-private-key-mode:
  file.managed:
    - name: {{ key }}
    - replace: false
    - user: {{ user.name }}
    - group: {{ user.group }}
    - mode: '0600'
    - require:
      - cmd: cluster-ssh-keys-cmd-run-keygen

cluster-ssh-keys-cmd-run-authorize:
  cmd.run:
    - name: cat {{ key }}.pub >> {{ user.home }}/.ssh/authorized_keys && chmod 600 {{ user.home }}/.ssh/authorized_keys
    - runas: {{ user.name }}
    - unless: grep -qxF "$(cat {{ key }}.pub)" {{ user.home }}/.ssh/authorized_keys
    - require:
      - cmd: cluster-ssh-keys-cmd-run-keygen
