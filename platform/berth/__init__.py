"""Berth control plane: tenancy, applications, the REST API and the operator console."""
