"""The daemon's HTTP surface: the application (app), its guards (guard), the JSON status (view) and the
HTML page (page).

Access logs: pass ``access_log_class=AccessLogger`` to ``web.AppRunner`` to log the pages people
open without a line for every probe and scrape.
"""

from monitor.web.app import make_app
from monitor.web.guard import CLIENT_MAX_SIZE, AccessLogger
from monitor.web.page import relative, status_html
from monitor.web.view import View, status_json

__all__ = ["CLIENT_MAX_SIZE", "AccessLogger", "View", "make_app", "relative", "status_html", "status_json"]
