"""kdsnn.deploy: reference simulator, Lava backend, SynOps/energy and reports."""
