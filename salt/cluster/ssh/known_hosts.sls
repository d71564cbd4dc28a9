---
{#- The system-wide known_hosts from the members' real host keys (mine), so
    ssh between hosts works with strict host key checking. #}
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import mapdata as sc with context %}

cluster-ssh-known-hosts-file-managed:
  file.managed:
    - name: {{ sc.ssh.known_hosts_file }}
    - mode: '0644'
    - makedirs: true
    - contents: |
        # Managed by Salt (saltcluster): host keys of the cluster's members.
        {{ salt['cluster.known_hosts']() | indent(8) }}
