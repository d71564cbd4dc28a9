---
{#- sshd: the MPI user logs in by key only. #}
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import mapdata as sc with context %}

include:
  - {{ tplroot }}.ssh.package

cluster-ssh-config-file-managed-sshd-dropin:
  file.managed:
    - name: {{ sc.ssh.sshd_dropin }}
    - mode: '0644'
    - makedirs: true
    - contents: |
        # Managed by Salt (saltcluster): key-only login for the MPI user.
        Match User {{ sc.user.name }}
            PasswordAuthentication no
            KbdInteractiveAuthentication no
    - check_cmd: /usr/sbin/sshd -t -f
    - require:
      - pkg: cluster-ssh-package-pkg-installed
