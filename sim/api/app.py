"""The sim's whole API surface on one aiohttp application: the venue's REST (/api/...), both
SignalR hubs (/hubs/user, /hubs/market) and the loopback admin endpoint (/admin/...).

Built from a wired `Venue` here rather than by the venue itself, so the admin endpoint, which
drives the venue, is not also a part the venue imports (no cycle between sim/api/admin.py and
sim/venue.py).
"""

from __future__ import annotations

from aiohttp import web

from sim.api.admin import Admin
from sim.venue import Venue


def build_app(venue: Venue) -> web.Application:
    app = web.Application(client_max_size=4 * 1024 * 1024)
    for hub, path in ((venue.user_hub, "/hubs/user"), (venue.market_hub, "/hubs/market")):
        app.router.add_post(path + "/negotiate", hub.negotiate)
        app.router.add_get(path, hub.websocket)
    Admin(venue).routes(app)
    app.router.add_route("*", "/api/{tail:.*}", venue.api.handle)
    return app
