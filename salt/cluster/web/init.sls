---
include:
  - .package
  - .config
  - .service
