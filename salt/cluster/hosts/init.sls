---
{#- /etc/hosts entries for every member, from the mine, inside one marked
    block: the file's other lines stay as they are, and departed members
    disappear with the next run. #}
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import mapdata as sc with context %}

cluster-hosts-file-blockreplace-members:
  file.blockreplace:
    - name: {{ sc.network.hosts_file }}
    - marker_start: '# BEGIN saltcluster members (managed by Salt, do not edit)'
    - marker_end: '# END saltcluster members'
    - content: |
        {{ salt['cluster.hosts_block']() | indent(8) }}
    - append_if_not_found: true
    - backup: false
