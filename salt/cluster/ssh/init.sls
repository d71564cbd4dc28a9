---
include:
  - .package
  - .config
  - .service
  - .known_hosts
