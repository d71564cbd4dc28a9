---
{#- slurmctld on the master: started and enabled, never restarted by a
    watch.  One mechanism applies a change of slurm.conf, cgroup.conf or the
    epilog: `scontrol reconfigure`, and only while slurmctld runs.  In Slurm
    24.11 (since 23.11) reconfigure starts a new slurmctld on the new files
    and hands over to it only if it comes up, so a bad file leaves the old
    daemon serving with the old configuration (a restart would leave none),
    and it pushes the files to every configless slurmd.  Running jobs and
    dynamic nodes survive either way (StateSaveLocation).  Restarting on a
    watch as well would apply the same change twice, the second time
    without that safety.
    The reconfigure runs before slurmctld's own state: when slurmctld was
    not running (the first start, or it had stopped) it is skipped, and the
    start reads the new files itself; when it runs, the state that follows
    finds it running and changes nothing.  What reconfigure cannot change
    (slurmctld's listening port, AuthType: neither comes from the pillar)
    needs `systemctl restart slurmctld` by hand. #}
{%- set tplroot = tpldir.split('/')[0] %}

include:
  - {{ tplroot }}.slurm.config
  - {{ tplroot }}.slurm.munge

cluster-slurm-controller-cmd-run-reconfigure:
  cmd.run:
    - name: scontrol reconfigure
    - onlyif: systemctl is-active --quiet slurmctld
    - onchanges:
      - file: cluster-slurm-config-file-managed-slurm-conf
      - file: cluster-slurm-config-file-managed-cgroup-conf
      - file: cluster-slurm-config-file-managed-epilog
    - require:
      - service: cluster-slurm-munge-service-running

cluster-slurm-controller-service-running:
  service.running:
    - name: slurmctld
    - enable: true
    - require:
      - service: cluster-slurm-munge-service-running
      - file: cluster-slurm-config-file-managed-slurm-conf
      - file: cluster-slurm-config-file-managed-cgroup-conf
      - file: cluster-slurm-config-file-managed-epilog
      - cmd: cluster-slurm-controller-cmd-run-reconfigure
