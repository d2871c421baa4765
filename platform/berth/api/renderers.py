"""CSV for reports a spreadsheet should open (`?format=csv` or `Accept: text/csv`), and log lines as text or NDJSON."""

import csv
import io
import json

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


class _LogLinesRenderer(renderers.BaseRenderer):
    """An app's log lines (a list of LogLine); errors keep their JSON shape."""

    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        response = (renderer_context or {}).get("response")
        if not isinstance(data, list) or (response is not None and response.status_code >= 400):
            if response is not None:
                response["Content-Type"] = "application/json"
            return renderers.JSONRenderer().render(data)
        return self.body(data).encode()

    def body(self, lines) -> str:
        return "".join(self.line(item) + "\n" for item in lines)

    def line(self, item) -> str:
        raise NotImplementedError


class LogTextRenderer(_LogLinesRenderer):
    """`2026-12-06T11:24:12.123456Z app[web.1]: listening on 8080`, one line each (`?format=text`)."""

    media_type = "text/plain"
    format = "text"

    def line(self, item) -> str:
        return item.formatted()


class LogNDJSONRenderer(_LogLinesRenderer):
    """One JSON object per line (`?format=ndjson` or `Accept: application/x-ndjson`)."""

    media_type = "application/x-ndjson"
    format = "ndjson"

    def line(self, item) -> str:
        return json.dumps(item.as_dict(), ensure_ascii=False)


class LogJSONRenderer(_LogLinesRenderer):
    """A JSON array of the same objects as NDJSON's (`?format=json` or `Accept: application/json`)."""

    media_type = "application/json"
    format = "json"

    def body(self, lines) -> str:
        return json.dumps([item.as_dict() for item in lines], ensure_ascii=False)
