"""The bundled demo target: an aiohttp + SQLAlchemy blog API with known bottlenecks.

It gives perfbench something real to measure on a fresh machine: an N+1 query
(`GET /api/posts`) next to its eager fix (`/api/v2/posts`), an expensive cached
report (`/api/reports/activity`), a deliberate memory leak (`POST /api/leak`),
PBKDF2 logins, and writes. SQLite by default, PostgreSQL and Redis when given URLs.

- `create_app(...)`: the aiohttp Application (see `perfbench.demo.app`)
- `serve(...)` / `run_server(...)`: run it on loopback (see `perfbench.demo.server`)
- `credentials(n)`: `(email, password)` of the n-th seeded user, for logging in

Modules: `models` (tables), `seed` (deterministic data), `auth` (hashing, tokens),
`cache` (memory/Redis), `db` (engine), `app`/`notifications`/`posts`/`reports`
(endpoints), `leak` (the leak), `server` (running it).
"""

from .app import create_app
from .seed import credentials
from .server import run_server, serve

__all__ = ["create_app", "credentials", "run_server", "serve"]
