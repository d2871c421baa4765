"""The operator console: Django's admin, staff only, at /console/."""
