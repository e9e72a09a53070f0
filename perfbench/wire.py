"""What the engine and the services it loads agree on over the wire.

The engine sends every request's id in ``REQUEST_ID_HEADER``; the agent (and the demo target)
read it to attribute the service's work to that request. One definition, so the two sides
cannot drift apart.
"""

from __future__ import annotations

REQUEST_ID_HEADER = "X-Request-Id"
