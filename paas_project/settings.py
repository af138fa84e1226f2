"""Settings, all from the environment (12-factor). See README "Settings"."""

import os
from datetime import timedelta
from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()

DATA_DIR = Path(env.str("PAAS_DATA_DIR", default=str(BASE_DIR / "var"))).resolve()
DATA_DIR.mkdir(parents=True, exist_ok=True)

DEBUG = env.bool("PAAS_DEBUG", default=False)
SECRET_KEY = env.str("PAAS_SECRET_KEY", default="")
if not SECRET_KEY:
    # A development key kept in the data dir, so restarts keep sessions and tokens valid.
    from django.core.management.utils import get_random_secret_key

    from paas_project.private_files import private_file_create

    SECRET_KEY = private_file_create(path=DATA_DIR / "secret_key",
                                     text=get_random_secret_key()).strip()

# --- Platform settings -------------------------------------------------------
PAAS_INSTANCE = env.str("PAAS_INSTANCE", default="default")
PAAS_PUBLIC_HOST = env.str("PAAS_PUBLIC_HOST", default="")
PAAS_BIND_IP = env.str("PAAS_BIND_IP", default="0.0.0.0")
PAAS_PROBE_HOST = env.str("PAAS_PROBE_HOST", default="127.0.0.1")
PAAS_POOL_SIZES = env.str("PAAS_POOL_SIZES", default="")
PAAS_PORT_RANGES = env.str("PAAS_PORT_RANGES", default="")
PAAS_MONITOR_INTERVAL = env.int("PAAS_MONITOR_INTERVAL", default=120)
PAAS_USER_QUOTA = env.int("PAAS_USER_QUOTA", default=3)
# Who may sign up: "open", "invite" (a class code is needed) or "approval" (staff approve
# each account before it can launch). The initial value; operators change it in the admin.
PAAS_SIGNUP_MODE = env.str("PAAS_SIGNUP_MODE", default="open")
if PAAS_SIGNUP_MODE not in ("open", "invite", "approval"):
    raise ValueError(f"PAAS_SIGNUP_MODE={PAAS_SIGNUP_MODE!r}: use open, invite or approval")
PAAS_MAX_UPLOAD_MB = env.int("PAAS_MAX_UPLOAD_MB", default=50)
PAAS_MAX_UPLOAD_FILES = env.int("PAAS_MAX_UPLOAD_FILES", default=2000)
# Request bodies of every route but the uploads (pages, login, admin, API), in KiB.
PAAS_MAX_REQUEST_KB = env.int("PAAS_MAX_REQUEST_KB", default=1024)
PAAS_MAX_COMPRESSION_RATIO = env.int("PAAS_MAX_COMPRESSION_RATIO", default=100)
# Writable space of one container, shared by the places it may write (content root,
# /tmp, home, venv: tmpfs mounts, the root is read-only); the memory limit grows by it.
PAAS_CONTAINER_DISK_MB = env.int("PAAS_CONTAINER_DISK_MB", default=256)
PAAS_ENGINE = env.str("PAAS_ENGINE", default="docker")  # "docker" (one host) or "swarm"
# Swarm backend: a manager's engine API, and each node's own engine API by its address
# (``10.0.0.5=tcp://10.0.0.5:2376,…``, or unix:// / ssh://; unlisted nodes:
# tcp://<addr>:2376). tcp:// speaks TLS with the files ca.pem, cert.pem, key.pem of
# PAAS_SWARM_TLS_DIR, or of its <addr>/ folder when a node has its own.
# PAAS_SWARM_BUILDER: the engine that builds the runtime images (the control host's own,
# DOCKER_HOST when empty); `pool build-images` sends them on to every pool node.
PAAS_SWARM_MANAGER = env.str("PAAS_SWARM_MANAGER", default="unix:///var/run/docker.sock")
PAAS_SWARM_NODES = env.dict("PAAS_SWARM_NODES", default={})
PAAS_SWARM_TLS_DIR = env.str("PAAS_SWARM_TLS_DIR", default="")
PAAS_SWARM_BUILDER = env.str("PAAS_SWARM_BUILDER", default="")
PAAS_CONTENT_DIR = DATA_DIR / "content"
# Run queued Docker work inline after commit instead of in the cluster (tests only).
PAAS_TASKS_INLINE = env.bool("PAAS_TASKS_INLINE", default=False)
# Fault-injection aid for the tests only: seconds a rebuild waits after creating its
# container, which widens the window in which a test can kill the worker mid-task.
PAAS_FAULT_REBUILD_PAUSE = env.float("PAAS_FAULT_REBUILD_PAUSE", default=0.0)
# Parallel container creations during init/refill: bounded to protect the daemon.
PAAS_CREATE_PARALLEL = env.int("PAAS_CREATE_PARALLEL", default=4)
# One reconcile pass or converge at a time: a killed holder blocks others this long at most.
PAAS_PASS_LEASE_SECONDS = env.int("PAAS_PASS_LEASE_SECONDS", default=300)
# Monitor-pass, recovery and finished task rows older than this are pruned (pool prune).
PAAS_HISTORY_DAYS = env.int("PAAS_HISTORY_DAYS", default=30)
# Elastic pools: grow ahead of demand (min idle, step, max total) and shrink after it
# (idle ttl), a claim asking for a converge at once. Off: each pool keeps its size.
PAAS_ELASTIC = env.bool("PAAS_ELASTIC", default=True)
# Memory (MiB) the host memory budget of a pool leaves to everything else.
PAAS_MEMORY_RESERVE_MB = env.int("PAAS_MEMORY_RESERVE_MB", default=512)
# Seconds a launch may wait, pending, for a container being built (first come, first
# served) before it gives up with ended_reason "not_served"; 0: launches never wait.
PAAS_CLAIM_WAIT = env.int("PAAS_CLAIM_WAIT", default=60)
# Seconds before a deployment's expiry (lifetimes) from which its page warns the user.
PAAS_EXPIRY_WARNING = env.int("PAAS_EXPIRY_WARNING", default=600)
# Live logs: Docker log reads at once per web process (followers share one read per
# container and PAAS_LOG_CACHE_SECONDS), and log polls per user (a page polls every
# second, so 180/min is three open pages).
PAAS_LOG_READERS = env.int("PAAS_LOG_READERS", default=4)
PAAS_LOG_CACHE_SECONDS = env.float("PAAS_LOG_CACHE_SECONDS", default=0.5)
PAAS_LOG_POLL_RATE = env.str("PAAS_LOG_POLL_RATE", default="180/min")

# --- The front door: Caddy (HTTPS and hostnames) ------------------------------
# The platform at https://PAAS_DOMAIN/, each deployment at https://<slug>.PAAS_APPS_DOMAIN/.
PAAS_DOMAIN = env.str("PAAS_DOMAIN", default="localhost")
PAAS_APPS_DOMAIN = env.str("PAAS_APPS_DOMAIN", default="apps.localhost")
# Caddy's admin endpoint ("127.0.0.1:2019" or "unix//run/paas/caddy.sock"); empty: no
# Caddy, the platform serves plain HTTP on its port (unit tests, and the seed's way).
PAAS_CADDY_ADMIN = env.str("PAAS_CADDY_ADMIN", default="127.0.0.1:2019")
PAAS_HTTPS_PORT = env.int("PAAS_HTTPS_PORT", default=443)
PAAS_HTTP_PORT = env.int("PAAS_HTTP_PORT", default=80)
PAAS_CADDY_BIND = env.str("PAAS_CADDY_BIND", default="")  # "" = every interface
PAAS_CADDY_STORAGE = Path(env.str("PAAS_CADDY_STORAGE", default=str(DATA_DIR / "caddy")))
PAAS_PORT = env.int("PAAS_PORT", default=5000)  # gunicorn, on loopback behind Caddy
# Certificates: Caddy's internal CA by default; ACME (on-demand, asking /caddy/ask) when a
# CA or an email is set; or a wildcard certificate for the apps domain from files.
PAAS_ACME_EMAIL = env.str("PAAS_ACME_EMAIL", default="")
PAAS_ACME_CA = env.str("PAAS_ACME_CA", default="")
PAAS_ACME_CA_ROOT = env.str("PAAS_ACME_CA_ROOT", default="")  # a test CA's root (pebble)
PAAS_APPS_CERT_FILE = env.str("PAAS_APPS_CERT_FILE", default="")
PAAS_APPS_KEY_FILE = env.str("PAAS_APPS_KEY_FILE", default="")
# Port URLs (http://host:8003/) on or off; off publishes containers on 127.0.0.1 only.
PAAS_DIRECT_PORTS = env.bool("PAAS_DIRECT_PORTS", default=True)
if not PAAS_DIRECT_PORTS:
    PAAS_BIND_IP = "127.0.0.1"

# --- Django behind the front door ------------------------------------------------
# Caddy configured = the platform is served over HTTPS at PAAS_DOMAIN; gunicorn listens on
# loopback only, so the X-Forwarded-Proto it gets comes from Caddy.
PAAS_BEHIND_PROXY = bool(PAAS_CADDY_ADMIN)
_loopback = ["localhost", "127.0.0.1", "[::1]"]  # Caddy's ask, health checks, the tests
ALLOWED_HOSTS = env.list("PAAS_ALLOWED_HOSTS", default=[PAAS_DOMAIN, *_loopback])
_https_origin = f"https://{PAAS_DOMAIN}" + (
    "" if PAAS_HTTPS_PORT == 443 else f":{PAAS_HTTPS_PORT}")
CSRF_TRUSTED_ORIGINS = env.list("PAAS_CSRF_TRUSTED_ORIGINS", default=[_https_origin])
if PAAS_BEHIND_PROXY:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = True
    # Caddy's ask and the health check come over plain HTTP on loopback.
    SECURE_REDIRECT_EXEMPT = [r"^caddy/ask$", r"^healthz$", r"^metrics$"]
    SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = True
    # __Host- cookies are bound to exactly this host, so an app under the apps domain
    # can neither set nor read them.
    SESSION_COOKIE_NAME = "__Host-sessionid"
    CSRF_COOKIE_NAME = "__Host-csrftoken"
# HSTS only for a real domain: on localhost it would follow the browser to every local
# port. Never for subdomains: port URLs use hosts HSTS must not cover.
PAAS_REAL_DOMAIN = PAAS_BEHIND_PROXY and not (
    PAAS_DOMAIN == "localhost" or PAAS_DOMAIN.endswith(".localhost"))
SECURE_HSTS_SECONDS = env.int("PAAS_HSTS_SECONDS", default=31536000) if PAAS_REAL_DOMAIN else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = False
SILENCED_SYSTEM_CHECKS = [
    "security.W005",  # HSTS without subdomains: on purpose (port URLs, see above)
    "security.W021",  # no HSTS preload list: it would need includeSubDomains
]
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'", "'unsafe-inline'"],  # the admin's style attributes
        "img-src": ["'self'", "data:"],
        "frame-ancestors": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "object-src": ["'none'"],
    },
}
PERMISSIONS_POLICY: dict[str, list[str]] = {
    feature: [] for feature in ("accelerometer", "camera", "geolocation", "gyroscope",
                                "microphone", "payment", "usb", "interest-cohort")
}

# --- Metrics (Prometheus) ------------------------------------------------------
# Multiprocess mode: every process (gunicorn and django-q2 workers, the watcher) writes
# its counters under this directory and a scrape sums them. prometheus_client reads the
# variable when it is first imported, which is after the settings.
os.environ["PROMETHEUS_MULTIPROC_DIR"] = env.str("PAAS_METRICS_DIR",
                                                 default=str(DATA_DIR / "metrics"))
Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]).mkdir(parents=True, exist_ok=True)
# Who may read /metrics: a bearer token, a staff user (JWT or session), or a client
# address in this list of addresses/networks. Empty by default: never open to everyone.
PAAS_METRICS_TOKEN = env.str("PAAS_METRICS_TOKEN", default="")
PAAS_METRICS_ALLOW = env.list("PAAS_METRICS_ALLOW", default=[])
# HTTP latency buckets (django-prometheus) suited to milliseconds.
PROMETHEUS_LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                              10.0, float("inf"))

INSTALLED_APPS = [
    # The admin without start-up discovery: urls.py discovers the apps' admin modules, so
    # only the processes that serve pages load them (not the task cluster, the watcher
    # or a management command).
    "django.contrib.admin.apps.SimpleAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework_simplejwt.token_blacklist",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI served by us: the docs page works offline
    "django_q",
    "axes",
    "csp",
    "pools",
    "accounts",
    "deployments",
]

MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    # Next (the metrics only start a timer): a body over the limit is refused before
    # anything reads or spools it.
    "paas_project.request_limits.RequestSizeLimitMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django_permissions_policy.PermissionsPolicyMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # browser_middleware: Django's session, auth and messages middleware, passed by for
    # bearer-token API requests, which never use them.
    "paas_project.browser_middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "paas_project.browser_middleware.AuthenticationMiddleware",
    "paas_project.browser_middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]

ROOT_URLCONF = "paas_project.urls"
WSGI_APPLICATION = "paas_project.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database ----------------------------------------------------------------
# SQLite in the data dir by default, tuned for several writers (web, cluster, watcher):
# WAL lets readers run beside a writer, IMMEDIATE takes the write lock at BEGIN so two
# writers queue on the busy timeout instead of failing with "database is locked".
DATABASES = {
    "default": env.db_url(
        "PAAS_DATABASE_URL", default=f"sqlite:///{DATA_DIR / 'paas.sqlite3'}"
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
            "init_command": (
                "PRAGMA journal_mode=WAL;PRAGMA synchronous=NORMAL;"
                "PRAGMA busy_timeout=20000;"
            ),
        }
    )
    # pytest-django uses this file for the test DB, so threads can share it.
    DATABASES["default"]["TEST"] = {"NAME": str(DATA_DIR / "test.sqlite3")}
# A thread keeps its connection for its next request: opening one (and, on SQLite, its
# PRAGMAs) cost about a millisecond, a third of the cheapest API request.
DATABASES["default"].setdefault("CONN_MAX_AGE", 60)
# PostgreSQL: parameters bound by the server and a statement prepared on its second
# run in a connection, so the server no longer parses and plans a launch's statements
# for every launch. (The first run is plain: psycopg then sees which SQL holds several
# statements, as some migrations' does, and never prepares it.) Off
# (PAAS_DB_PREPARED=false) behind a pooler in transaction mode (PgBouncer), which hands
# one connection's prepared statements to another.
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql" and env.bool(
        "PAAS_DB_PREPARED", default=True):
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"server_side_binding": True, "prepare_threshold": 1})

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = DATA_DIR / "staticfiles"
STATIC_ROOT.mkdir(exist_ok=True)  # whitenoise warns on every request without it
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

LOGIN_URL = "/login/"
LOGIN_REDIRECT_URL = "/dashboard/"
LOGOUT_REDIRECT_URL = "/"

# Uploads: let Django spool large files to disk; the body limits are applied before that
# (paas_project.request_limits) and the content limit PAAS_MAX_UPLOAD_MB by the store.
DATA_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
DATA_UPLOAD_MAX_NUMBER_FILES = 1000

# --- REST framework, JWT, schema ---------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # simplejwt's, joining the rows a launch reads (accounts/authentication.py).
        "accounts.authentication.JWTWithLaunchData",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "paas_project.api_errors.exception_handler",
    "DEFAULT_THROTTLE_RATES": {
        "auth": env.str("PAAS_AUTH_THROTTLE", default="30/min"),
        # New accounts per client address (invite-code holders are exempt).
        "signup": env.str("PAAS_SIGNUP_THROTTLE", default="10/hour"),
        "logs": PAAS_LOG_POLL_RATE,
    },
}
SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(minutes=env.int("PAAS_ACCESS_TOKEN_MINUTES", default=15)),
    "REFRESH_TOKEN_LIFETIME": timedelta(days=1),
    "ROTATE_REFRESH_TOKENS": True,
    "BLACKLIST_AFTER_ROTATION": True,
    "UPDATE_LAST_LOGIN": False,
    # A key of its own, so rotating Django's SECRET_KEY and the JWT key are independent.
    "SIGNING_KEY": env.str("PAAS_JWT_SIGNING_KEY", default="jwt:" + SECRET_KEY),
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Container Pool PaaS API",
    "DESCRIPTION": "Pre-warmed Docker containers handed out in milliseconds.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Request bodies get their own components, with minLength 1 where blank is refused:
    # the schema is as strict as the server.
    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "paas_project.api_schema.forbid_nul_characters",
    ],
}

# --- Client addresses and the shared cache -----------------------------------
# How many proxies sit in front (e.g. 1 behind Caddy), or which (addresses/CIDRs); empty:
# none, the peer address is the client's. See paas_project/client_ip.py. Behind our own
# Caddy gunicorn listens on loopback only, so a loopback peer is Caddy: trusted.
PAAS_TRUSTED_PROXIES = env.str("PAAS_TRUSTED_PROXIES",
                               default="127.0.0.1,::1" if PAAS_BEHIND_PROXY else "")
PAAS_REDIS_URL = env.str("PAAS_REDIS_URL", default="")
# Throttle counts live in the default cache, shared by every worker process: Redis when
# configured, else a table in the database (created by a migration).
CACHES = {
    "default": (
        {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": PAAS_REDIS_URL}
        if PAAS_REDIS_URL else
        {"BACKEND": "django.core.cache.backends.db.DatabaseCache", "LOCATION": "paas_cache"}
    ),
    # Per process, for what need not be shared (django-q2's cluster statistics).
    "local": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
}

# --- Brute-force lockout (django-axes) ---------------------------------------
AXES_FAILURE_LIMIT = env.int("PAAS_LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("PAAS_LOGIN_COOLOFF_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "accounts.lockout.lockout_response"
AXES_VERBOSE = False
AXES_CLIENT_IP_CALLABLE = "paas_project.client_ip.client_ip"

# --- Task queue (django-q2, ORM broker) --------------------------------------
Q_CLUSTER = {
    "name": f"paas-{PAAS_INSTANCE}",
    "orm": "default",
    "cache": "local",
    "workers": env.int("PAAS_Q_WORKERS", default=2),
    "timeout": env.int("PAAS_Q_TIMEOUT", default=120),
    # Must exceed timeout, or a slow task is handed out twice; a task whose worker was
    # killed is handed out again after this many seconds.
    "retry": env.int("PAAS_Q_RETRY", default=180),
    "max_attempts": 3,
    "catch_up": False,
    # The longest an idle cluster waits before it looks at the queue again. Queuing a
    # task on this host wakes it at once (paas_project/task_broker.py): the poll is left
    # for a lost wake-up and for clusters on other hosts sharing a PostgreSQL queue.
    "poll": env.float("PAAS_Q_POLL", default=0.2),
    "broker_class": "paas_project.task_broker.WakeableORM",
    "save_limit": 500,
    "ack_failures": True,
    "log_level": "INFO",
}
# Redis as the task broker for installations with several worker processes or hosts
# (the ORM broker stays the default). Redis does not re-deliver the task of a killed
# worker: the reconcile pass retries a slot left in a busy state past the timeout + 30 s
# (pools.monitor.stuck_seconds).
# (PAAS_REDIS_URL is read above, with the shared cache.)
if PAAS_REDIS_URL:
    del Q_CLUSTER["orm"], Q_CLUSTER["broker_class"]  # Redis blocks on the list: no poll
    Q_CLUSTER["redis"] = PAAS_REDIS_URL

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("PAAS_LOG_LEVEL", default="INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
