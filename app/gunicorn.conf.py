"""gunicorn settings for the wsgi process type, read from GUNICORN_* variables.

Run as: gunicorn -c /app/gunicorn.conf.py djchat.wsgi:application
"""

import sys
from pathlib import Path

# gunicorn executes this file before it puts the application directory on sys.path.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from djchat.cpus import auto_workers, usable_cpus
from djchat.env import env_bool, env_bounded, env_choice, env_str

bind = [env_str("GUNICORN_BIND", "0.0.0.0:8000")]
worker_class = env_choice("GUNICORN_WORKER_CLASS", "gevent", ("gevent", "gthread", "sync"))
# A gevent worker multiplexes many requests, so one per core (and one to cover a worker busy on
# a slow request) is enough; more processes only contend with nginx and daphne for the same
# cores. bench/results/analysis.md has the measurements. 0 (the default) counts the CPUs the
# container's CPU limit allows, not the host's (djchat/cpus.py). Ranges: djchat/bounds.py.
workers = env_bounded("GUNICORN_WORKERS") or auto_workers(usable_cpus())
worker_connections = env_bounded("GUNICORN_WORKER_CONNECTIONS")
threads = env_bounded("GUNICORN_THREADS", default=4 if worker_class == "gthread" else None)
timeout = env_bounded("GUNICORN_TIMEOUT")
graceful_timeout = env_bounded("GUNICORN_GRACEFUL_TIMEOUT")
keepalive = env_bounded("GUNICORN_KEEPALIVE")
# Recycling workers bounds a slow leak, but each restart imports Django again (about a second of
# CPU): at a few hundred requests/s a limit of 1000 restarts a worker every few seconds. Off unless
# an operator has a leak to bound (the jitter then keeps workers from restarting at once).
max_requests = env_bounded("GUNICORN_MAX_REQUESTS")
max_requests_jitter = env_bounded("GUNICORN_MAX_REQUESTS_JITTER")

# Behind nginx every request is in nginx's access log already; this one is for gunicorn alone.
accesslog = "-" if env_bool("GUNICORN_ACCESS_LOG", True) else None
errorlog = "-"
# Containers: keep the worker heartbeat files in memory rather than on the (overlay) disk.
_SHARED_MEMORY = Path("/dev/shm")  # noqa: S108 (gunicorn's own recommendation for containers)
worker_tmp_dir = str(_SHARED_MEMORY) if _SHARED_MEMORY.is_dir() else None
# The runtime control socket (gunicornc) would go under $HOME, which the read-only container has
# not got; nothing here uses it, so it stays off instead of logging an error at every start.
control_socket_disable = True

# Development only (the role's dev mode, with the source mounted over /app): restart a worker when
# the code changes. gunicorn watches the modules a worker has imported from the moment it first
# sees each; the views are imported by the first request, so a view edited between that import
# and the reloader's next look would count as the version running, and the worker would keep the
# old code. Watching every module and template file from the start closes that gap (templates
# because Django's cached template loader keeps a compiled one for the life of a worker). The
# patterns are expanded again on every check, so files added later are watched too.
reload = env_bool("GUNICORN_RELOAD", False)
if reload:
    _APP_DIR = Path(__file__).resolve().parent
    reload_extra_files = [f"{_APP_DIR}/**/*.py", f"{_APP_DIR}/*/templates/**/*"]
    # A reloading worker stops accepting, but answers on its open keep-alive connections (nginx
    # keeps dozens idle) with the old code until graceful_timeout; with none, it exits once its
    # requests are done and the next request meets the new code.
    keepalive = 0
