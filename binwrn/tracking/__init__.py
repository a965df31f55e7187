"""MLflow tracking: runs, their provenance, and per-epoch metrics. Knows nothing of convs.

Import from the submodules (`binwrn.tracking.run`, `.callback`, `.store`, `.provenance`):
`store` is light, the others load MLflow or Lightning.
"""
