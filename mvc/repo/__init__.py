"""The repository layer: what the verbs of ``mvc.api`` share (a repository, its work tree, pointer
selection, remote configuration, the registry's state), below every verb and above git and the formats."""
