"""On-disk formats specified in docs/FORMAT.md: pointer files, manifests, config."""
