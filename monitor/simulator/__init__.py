"""A fake of Tencent's room_config admin API: a real aiohttp server for tests, the demo and benchmarks.

It answers ``POST /v4/room_config/{get,set,update,delete}_callback`` as the vendor documents (see
shared/reference): the JSON envelope on HTTP 200, UserSig v2 checked against each app's key with the
injected clock, one callback configuration per SDKAppID. Checks run in this order, first failure wins:
sdkappid absent or not a number (60006), ``contenttype`` not ``json`` or ``random`` not a uint32 or
``identifier`` absent (60002), unknown app (70016), UserSig empty (70002) or failing verification
(expired 70001, malformed 70003, other app's key 70009, identifier 70013, sdkappid 70014), identifier
not an admin (60010), body empty or not a JSON object (60003), bad ``Url``/``CallbackCommandList``
(100002), then set-when-present (100300) and update/get-when-absent (100301). Delete always succeeds.

Faults (``Faults``) are decided per request with the seeded random source before normal handling, in
the order hang, reset, latency, 502, HTML, garbage, empty, rate limit (60007), error code; an app's own
faults replace the global ones. A faulted request changes no state. Every request is counted by
(action, sdkappid) and the last 1000 are kept in ``Simulator.requests`` (never with the UserSig).

State file (YAML, or JSON when the name ends in ``.json``), the same shape ``dump_state`` returns::

    apps:
      - sdkappid: 1400000001
        name: demo-in-sync            # optional label, kept but unused
        key: <the app's secret key>
        admins: [administrator]       # optional, this is the default
        callback:                     # or null: no configuration
          url: https://hooks.example.com/tencent/room
          commands: [Room.CallbackAfterCreateRoom]
    faults: {latency: 0.1}            # optional, global; fields of Faults
    app_faults:                       # optional, per SDKAppID; replaces the global faults
      1400000002: {http_502_rate: 1.0}

The control API under ``/_sim/`` (JSON) is a test tool: ``GET /_sim/state`` returns the state above
*including the secret keys*; ``PUT /_sim/apps/{sdkappid}`` (``{"key", "admins", "callback"}``, creates
or replaces), ``DELETE /_sim/apps/{sdkappid}``, ``PUT /_sim/apps/{sdkappid}/callback`` (``{"url",
"commands"}`` or null), ``PUT /_sim/faults`` and ``PUT /_sim/apps/{sdkappid}/faults`` (Faults fields;
``{}`` clears), ``GET /_sim/counts``, ``POST /_sim/reset-counts``, ``GET /_sim/requests``. Nothing it
logs carries a key, and the server runs without an access log because request URLs carry UserSigs.
The control API has no authentication: listen on loopback unless the network is a test's own.
"""

from monitor.simulator.api import ACTIONS, ERROR_INFO, VendorAPI
from monitor.simulator.api import _Reject as _Reject
from monitor.simulator.control import describe_callback
from monitor.simulator.server import Simulator, serve_forever
from monitor.simulator.state import (
    RECORDED_REQUESTS,
    SAMPLE_DESIRED,
    Faults,
    RecordedRequest,
    SimulatorState,
    parse_callback,
    sample_key,
    sample_state,
)

__all__ = [
    "ACTIONS",
    "ERROR_INFO",
    "RECORDED_REQUESTS",
    "SAMPLE_DESIRED",
    "Faults",
    "RecordedRequest",
    "Simulator",
    "SimulatorState",
    "VendorAPI",
    "describe_callback",
    "parse_callback",
    "sample_key",
    "sample_state",
    "serve_forever",
]
