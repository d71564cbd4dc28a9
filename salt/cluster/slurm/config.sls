---
{#- The master's Slurm configuration, in one place: configless slurmd on the
    compute nodes fetch slurm.conf, cgroup.conf and the epilog from
    slurmctld.  No node is listed: compute nodes register themselves as
    dynamic nodes (cluster.slurm.node) and the orchestrations delete them
    when they leave.  Slurm 24.11 has no configuration test mode
    (slurmctld has no -t), so slurm.conf and cgroup.conf land unchecked
    (their templates are tested: tests/functional/test_render_slurm.py);
    the epilog is checked with `sh -n` before it lands. #}
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import mapdata as sc with context %}
{%- set slurm = sc.slurm %}
{%- set masters = salt['cluster.members']('master') | selectattr('name', 'equalto', sc.network.master_host) | list %}

include:
  - {{ tplroot }}.slurm.package
  - {{ tplroot }}.users

cluster-slurm-config-file-directory-config-dir:
  file.directory:
    - name: {{ slurm.config_dir }}
    - mode: '0755'
    - makedirs: true
    - require:
      - pkg: cluster-slurm-package-pkg-installed

cluster-slurm-config-file-managed-slurm-conf:
  file.managed:
    - name: {{ slurm.config_dir }}/slurm.conf
    - source: salt://{{ tplroot }}/files/slurm/slurm.conf.jinja
    - template: jinja
    - mode: '0644'
    - context:
        slurm: {{ slurm | json }}
        master_host: {{ sc.network.master_host | json }}
        master_addr: {{ (masters[0].addr if masters else '') | json }}
    - require:
      - file: cluster-slurm-config-file-directory-config-dir

cluster-slurm-config-file-managed-cgroup-conf:
  file.managed:
    - name: {{ slurm.config_dir }}/cgroup.conf
    - source: salt://{{ tplroot }}/files/slurm/cgroup.conf
    - mode: '0644'
    - require:
      - file: cluster-slurm-config-file-directory-config-dir

cluster-slurm-config-file-managed-epilog:
  file.managed:
    - name: {{ slurm.config_dir }}/{{ slurm.epilog }}
    - source: salt://{{ tplroot }}/files/slurm/epilog.sh
    - mode: '0755'
    - check_cmd: /bin/sh -n
    - require:
      - file: cluster-slurm-config-file-directory-config-dir

{#- batch jobs' scripts and output, in the shared home: the MPI user's,
    written as that user (a link there is replaced, never followed) #}
cluster-slurm-config-user-file-directory-jobs-dir:
  user_file.directory:
    - name: {{ slurm.jobs_dir }}
    - user: {{ sc.user.name }}
    - group: {{ sc.user.group }}
    - mode: '0755'
    - require:
      - user: cluster-users-user-present-{{ sc.user.name }}
