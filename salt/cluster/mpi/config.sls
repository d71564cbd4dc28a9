---
{#- The login environment of MPI users: the provider's bin first on PATH and
    its lib on LD_LIBRARY_PATH (pypi), and the UCX transports and device the
    cluster needs, so a login shell runs `mpiexec -f hosts -n 4 ~/bin/cpi`
    with no extra flags (Hydra passes the environment on to every rank). #}
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import mapdata as sc with context %}

include:
  - {{ tplroot }}.mpi.package

cluster-mpi-config-file-managed-profile:
  file.managed:
    - name: {{ sc.mpi.profile_file }}
    - source: salt://{{ tplroot }}/files/mpi/profile.sh.jinja
    - template: jinja
    - mode: '0644'
    - context:
        mpi: {{ sc.mpi | json }}
    - require:
      - sls: {{ tplroot }}.mpi.package
