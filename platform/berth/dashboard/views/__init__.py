"""The dashboard's views, one module per part of the product. Each parses, calls a service or a
selector, and renders; none decides who may do what (that is `access` and the services)."""
