---
{#- Last on the master: from now on the join reactor handles every minion
    that starts (salt/reactor/join.sls checks this marker). #}
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import mapdata as sc with context %}

cluster-bootstrapped-file-managed-marker:
  file.managed:
    - name: {{ sc.network.join_marker }}
    - contents: saltcluster bootstrapped; the join reactor is active
    - makedirs: true
    - order: last
