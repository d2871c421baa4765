from django.contrib import admin


class ConsoleSite(admin.AdminSite):
    site_header = "Berth console"
    site_title = "Berth console"
    index_title = "Operate the installation"
    site_url = "/api/docs/"
