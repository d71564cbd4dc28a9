---
{#- nginx for the roles that serve HTTP (compute: cluster.web, gateway:
    cluster.lb): the package, the base nginx.conf and the service, once per
    host whatever roles it holds.  The roles' sites are theirs. #}
include:
  - .package
  - .config
  - .service
