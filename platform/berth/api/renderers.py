"""CSV for reports a spreadsheet should open (`?format=csv` or `Accept: text/csv`)."""

import csv
import io

from rest_framework import renderers


class UsageCSVRenderer(renderers.BaseRenderer):
    """The rows of a usage report; errors keep their JSON shape."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        response = (renderer_context or {}).get("response")
        is_report = isinstance(data, dict) and "rows" in data and "group_by" in data
        if not is_report or (response is not None and response.status_code >= 400):
            # Errors and route descriptions (OPTIONS) keep their JSON shape.
            if response is not None:
                response["Content-Type"] = "application/json"
            return renderers.JSONRenderer().render(data)
        columns = [*data["group_by"], "seconds", "cost", "currency"]
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(columns)
        for row in data["rows"]:
            writer.writerow([*(row[name] for name in data["group_by"]), row["seconds"], row["cost"], data["currency"]])
        return out.getvalue().encode()
