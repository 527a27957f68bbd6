"""Hash-addressed objects: oids, the local cache (:mod:`odb`) and directory manifests."""
