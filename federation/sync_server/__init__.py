"""The network operator's side: the sync server, its credentials, the kits it issues."""
