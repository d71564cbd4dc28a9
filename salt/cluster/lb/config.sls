---
{#- The gateway's load balancer: an upstream of the web servers of the
    compute members that serve (cluster.serving: a drained node is left
    out, unless none serves), in the site file lb:site_file
    (nginx:site_dir).  It goes live only if nginx accepts it together with
    the live nginx.conf and the other sites, and an empty backend list
    stops rendering: the running config stays.  (A host that is compute node and gateway too needs web:port
    apart from lb:listen_port: cluster.validate stops rendering otherwise.) #}
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import mapdata as sc with context %}
{%- from tplroot ~ "/nginx/map.jinja" import nginx with context %}

include:
  - {{ tplroot }}.nginx.config

cluster-lb-config-file-managed-site:
  file.managed:
    - name: {{ nginx.sites.lb.path }}
    - source: {{ sc.lb.template }}
    - template: jinja
    - mode: '0644'
    - check_cmd: {{ nginx.sites.lb.check }}
    - context:
        lb: {{ sc.lb | json }}
        backends: {{ salt['cluster.upstream']() | json }}
    - require:
      - file: cluster-nginx-config-file-managed-nginx-conf
{%- set serving = salt['cluster.serving']() %}
{%- if serving.kept %}

# no compute member serves: every one stays in the upstream, and this says why
cluster-lb-config-test-show-notification-all-kept:
  test.show_notification:
    - text: {{ ('upstream: ' ~ serving.why) | json }}
{%- endif %}
