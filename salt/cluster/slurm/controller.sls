---
{#- slurmctld on the master: restarted when its configuration changes (jobs
    and dynamic nodes survive a restart: StateSaveLocation), then
    `scontrol reconfigure` pushes the new files to every configless
    slurmd. #}
{%- set tplroot = tpldir.split('/')[0] %}

include:
  - {{ tplroot }}.slurm.config
  - {{ tplroot }}.slurm.munge

cluster-slurm-controller-service-running:
  service.running:
    - name: slurmctld
    - enable: true
    - require:
      - service: cluster-slurm-munge-service-running
    - watch:
      - file: cluster-slurm-config-file-managed-slurm-conf
      - file: cluster-slurm-config-file-managed-cgroup-conf
      - file: cluster-slurm-config-file-managed-epilog
      - service: cluster-slurm-munge-service-running

cluster-slurm-controller-cmd-run-reconfigure:
  cmd.run:
    - name: scontrol reconfigure
    - require:
      - service: cluster-slurm-controller-service-running
    - onchanges:
      - file: cluster-slurm-config-file-managed-slurm-conf
      - file: cluster-slurm-config-file-managed-cgroup-conf
      - file: cluster-slurm-config-file-managed-epilog
