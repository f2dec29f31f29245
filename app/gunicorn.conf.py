"""gunicorn settings for the wsgi process type, read from GUNICORN_* variables.

Run as: gunicorn -c /app/gunicorn.conf.py djchat.wsgi:application
"""

import multiprocessing
import sys
from pathlib import Path

# gunicorn executes this file before it puts the application directory on sys.path.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from djchat.env import env_int, env_str

WORKER_CLASSES = {"gevent": "gevent", "gthread": "gthread", "sync": "sync"}

_worker_class = (env_str("GUNICORN_WORKER_CLASS", "gevent") or "gevent").strip().lower()
if _worker_class not in WORKER_CLASSES:
    raise SystemExit(
        f"GUNICORN_WORKER_CLASS={_worker_class!r} is not one of {', '.join(WORKER_CLASSES)}"
    )

bind = [env_str("GUNICORN_BIND", "0.0.0.0:8000")]
worker_class = WORKER_CLASSES[_worker_class]
# gevent workers multiplex many requests each, so a few per core are plenty.
workers = env_int("GUNICORN_WORKERS", multiprocessing.cpu_count() * 2 + 1, minimum=1)
worker_connections = env_int("GUNICORN_WORKER_CONNECTIONS", 1000, minimum=1)
threads = env_int("GUNICORN_THREADS", 4 if worker_class == "gthread" else 1, minimum=1)
timeout = env_int("GUNICORN_TIMEOUT", 30, minimum=1)
graceful_timeout = env_int("GUNICORN_GRACEFUL_TIMEOUT", 30, minimum=1)
keepalive = env_int("GUNICORN_KEEPALIVE", 5, minimum=0)
# Recycling workers bounds any slow leak; the jitter keeps them from all restarting at once.
max_requests = env_int("GUNICORN_MAX_REQUESTS", 1000, minimum=0)
max_requests_jitter = env_int("GUNICORN_MAX_REQUESTS_JITTER", 100, minimum=0)

accesslog = "-"
errorlog = "-"
# Containers: keep the worker heartbeat files in memory rather than on the (overlay) disk.
_SHARED_MEMORY = Path("/dev/shm")  # noqa: S108 (gunicorn's own recommendation for containers)
worker_tmp_dir = str(_SHARED_MEMORY) if _SHARED_MEMORY.is_dir() else None
# The runtime control socket (gunicornc) would go under $HOME, which the read-only container has
# not got; nothing here uses it, so it stays off instead of logging an error at every start.
control_socket_disable = True
