---
{#- MPICH, headers and compiler from the provider `cluster.settings` derived:
    debian: Debian's packages;  pypi: build tools from Debian, then PyPI's
    mpich wheel in a venv at mpi:pypi:prefix (the same path on every host:
    Hydra starts hydra_pmi_proxy from its own bin directory). #}
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import mapdata as sc with context %}

cluster-mpi-package-pkg-installed:
  pkg.installed:
    - pkgs: {{ sc.mpi.packages | json }}
{%- if sc.mpi.provider == 'pypi' %}

cluster-mpi-package-mpi-venv-installed:
  mpi_venv.installed:
    - name: {{ sc.mpi.pypi.prefix }}
    - requirement: {{ sc.mpi.pypi.requirement | json }}
    - python: {{ sc.mpi.pypi.python }}
    - require:
      - pkg: cluster-mpi-package-pkg-installed

{#- programs built by Debian's mpicc ask for libmpich.so.12 #}
cluster-mpi-package-file-symlink-libmpich:
  file.symlink:
    - name: {{ sc.mpi.pypi.prefix }}/lib/libmpich.so.12
    - target: libmpi.so.12
    - require:
      - mpi_venv: cluster-mpi-package-mpi-venv-installed
{%- endif %}
