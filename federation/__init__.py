"""Role code for the federated-analytics deployment: one package, three roles.

The sync server, the data owners (DO) and the data scientist (DS) all run this
package from the same image; `federation.cli` picks the role.
"""
