---
{#- slurmd on a compute node as a dynamic node: `slurmd -Z` registers the
    node with slurmctld without a restart or a slurm.conf line, with the CPUs
    the hostfile gives it (mpi:slots, else its num_cpus in the mine) and the
    feature `compute`; `--conf-server` fetches slurm.conf, cgroup.conf and
    the epilog from slurmctld (configless).  A drop-in replaces ExecStart:
    Debian's unit expands $SLURMD_OPTIONS split at every space, which would
    cut the quoted --conf value apart, and orders slurmd after the home's
    mount (RequiresMountsFor).
    slurmd starts only after the node's own health checks passed
    (cluster.health): a node takes Slurm jobs once it would be in the
    hostfile, and orch.join admits it in Slurm after that. #}
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import mapdata as sc with context %}
{%- set me = salt['cluster.members']('compute') | selectattr('id', 'equalto', grains['id']) | list %}
{%- set cpus = sc.mpi.slots or (me[0].num_cpus if me else grains['num_cpus']) %}
{%- set conf = 'CPUs=' ~ cpus ~ ' Feature=compute' %}

include:
  - {{ tplroot }}.slurm.munge
  - {{ tplroot }}.health

cluster-slurm-node-file-managed-slurmd-dropin:
  file.managed:
    - name: {{ sc.slurm.slurmd_dropin }}
    - mode: '0644'
    - makedirs: true
    - contents: |
        # Managed by Salt (saltcluster): a dynamic node, configless.
        [Unit]
        # at boot, not before the shared home is mounted: a job step
        # started earlier cannot enter the MPI user's home
        RequiresMountsFor={{ sc.user.home }}
        [Service]
        ExecStart=
        ExecStart=/usr/sbin/slurmd --systemd -Z --conf-server {{ sc.network.master_host }} --conf "{{ conf }}"
    - require:
      - pkg: cluster-slurm-package-pkg-installed

cluster-slurm-node-service-running:
  service.running:
    - name: slurmd
    - enable: true
    - require:
      - service: cluster-slurm-munge-service-running
      - cluster_health: cluster-health-cluster-health-serving
    - watch:
      - file: cluster-slurm-node-file-managed-slurmd-dropin
      - service: cluster-slurm-munge-service-running
