---
{#- The example MPI programs: sources from the tree into the shared home,
    built into the bin directory with the provider's mpicc (mpi:mpicc) only
    when a source or the compiler changes.  Everything under the home is
    written as the MPI user (user_file, mpi_program): a link the user puts
    in place of a file or directory is replaced, never followed as root. #}
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import mapdata as sc with context %}
{%- set user = sc.user %}

include:
  - {{ tplroot }}.mpi
  - {{ tplroot }}.users

{%- for dir in (sc.mpi.src_dir, sc.mpi.bin_dir) %}

cluster-mpi-programs-user-file-directory-{{ dir }}:
  user_file.directory:
    - name: {{ dir }}
    - user: {{ user.name }}
    - group: {{ user.group }}
    - mode: '0755'
    - require:
      - user: cluster-users-user-present-{{ sc.user.name }}
{%- endfor %}

{%- for prog in sc.mpi.programs %}

cluster-mpi-programs-user-file-managed-{{ prog }}-source:
  user_file.managed:
    - name: {{ sc.mpi.src_dir }}/{{ prog }}.c
    - source: salt://{{ tplroot }}/files/mpi/{{ prog }}.c
    - user: {{ user.name }}
    - group: {{ user.group }}
    - mode: '0644'
    - require:
      - user_file: cluster-mpi-programs-user-file-directory-{{ sc.mpi.src_dir }}

cluster-mpi-programs-mpi-program-built-{{ prog }}:
  mpi_program.built:
    - name: {{ sc.mpi.bin_dir }}/{{ prog }}
    - source: {{ sc.mpi.src_dir }}/{{ prog }}.c
    - mpicc: {{ sc.mpi.mpicc }}
    - runas: {{ user.name }}
    - require:
      - user_file: cluster-mpi-programs-user-file-managed-{{ prog }}-source
      - user_file: cluster-mpi-programs-user-file-directory-{{ sc.mpi.bin_dir }}
      - sls: {{ tplroot }}.mpi.package
{%- endfor %}
