"""gunicorn settings for the wsgi process type, read from GUNICORN_* variables.

Run as: gunicorn -c /app/gunicorn.conf.py djchat.wsgi:application
"""

import multiprocessing
import sys
from pathlib import Path

# gunicorn executes this file before it puts the application directory on sys.path.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from djchat.env import env_bool, env_choice, env_int, env_str

bind = [env_str("GUNICORN_BIND", "0.0.0.0:8000")]
worker_class = env_choice("GUNICORN_WORKER_CLASS", "gevent", ("gevent", "gthread", "sync"))
# A gevent worker multiplexes many requests, so one per core (and one to cover a worker busy on
# a slow request) is enough; more processes only contend with nginx and daphne for the same
# cores. bench/results/analysis.md has the measurements.
workers = env_int("GUNICORN_WORKERS", multiprocessing.cpu_count() + 1, minimum=1)
worker_connections = env_int("GUNICORN_WORKER_CONNECTIONS", 1000, minimum=1)
threads = env_int("GUNICORN_THREADS", 4 if worker_class == "gthread" else 1, minimum=1)
timeout = env_int("GUNICORN_TIMEOUT", 30, minimum=1)
graceful_timeout = env_int("GUNICORN_GRACEFUL_TIMEOUT", 30, minimum=1)
keepalive = env_int("GUNICORN_KEEPALIVE", 5, minimum=0)
# Recycling workers bounds a slow leak, but each restart imports Django again (about a second of
# CPU): at a few hundred requests/s a limit of 1000 restarts a worker every few seconds. Off unless
# an operator has a leak to bound (the jitter then keeps workers from restarting at once).
max_requests = env_int("GUNICORN_MAX_REQUESTS", 0, minimum=0)
max_requests_jitter = env_int("GUNICORN_MAX_REQUESTS_JITTER", 0, minimum=0)

# Behind nginx every request is in nginx's access log already; this one is for gunicorn alone.
accesslog = "-" if env_bool("GUNICORN_ACCESS_LOG", True) else None
errorlog = "-"
# Containers: keep the worker heartbeat files in memory rather than on the (overlay) disk.
_SHARED_MEMORY = Path("/dev/shm")  # noqa: S108 (gunicorn's own recommendation for containers)
worker_tmp_dir = str(_SHARED_MEMORY) if _SHARED_MEMORY.is_dir() else None
# The runtime control socket (gunicornc) would go under $HOME, which the read-only container has
# not got; nothing here uses it, so it stays off instead of logging an error at every start.
control_socket_disable = True
