---
{#- The cluster's munge key, the same on the master and every compute node:
    made once on the salt-master and served in this host's own pillar
    (pillar/munge.sls: to members with the master or compute role and an
    accepted key only, never to the gateway), written here without its
    contents in any state output (file.decode shows checksums only), owned
    by munge, mode 0400 (munged refuses a key others can read).
    Never readable by anyone else, not for a moment: file.decode writes
    into the file it finds (open "wb": truncated in place, its owner and
    mode kept) and would create a missing one with the default umask
    (0644), so the file is made first, empty, owner munge, mode 0400
    (file.managed makes a new file under umask 077, then sets owner and
    mode, all before it holds a byte), and a key already there (Debian's
    package makes one) gets that owner and mode before it is rewritten. #}
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import mapdata as sc with context %}
{%- set key = sc.slurm.munge_key %}

include:
  - {{ tplroot }}.slurm.package
{%- if salt['pillar.get']('saltcluster_munge:key') %}

# first: the file as it must stay (empty if new; a key there is not read)
cluster-slurm-munge-file-managed-key-mode:
  file.managed:
    - name: {{ key }}
    - replace: false
    - user: munge
    - group: munge
    - mode: '0400'
    - show_changes: false
    - require:
      - pkg: cluster-slurm-package-pkg-installed

# then the key into it, in place
cluster-slurm-munge-file-decode-key:
  file.decode:
    - name: {{ key }}
    - contents_pillar: saltcluster_munge:key
    - encoding_type: base64
    - checksum: sha256
    - require:
      - file: cluster-slurm-munge-file-managed-key-mode

cluster-slurm-munge-service-running:
  service.running:
    - name: munge
    - enable: true
    - watch:
      - file: cluster-slurm-munge-file-managed-key-mode
      - file: cluster-slurm-munge-file-decode-key
{%- else %}

cluster-slurm-munge-file-decode-key:
  test.fail_without_changes:
    - comment: >-
        no munge key in this host's pillar (saltcluster_munge:key): the
        salt-master serves it only to hosts with the master or compute role
        and an accepted key (pillar/munge.sls); refresh the pillar once the
        key is accepted
    - require:
      - pkg: cluster-slurm-package-pkg-installed

# not started on the key the package made: fails with the notice above
cluster-slurm-munge-service-running:
  service.running:
    - name: munge
    - enable: true
    - require:
      - test: cluster-slurm-munge-file-decode-key
{%- endif %}
