"""Settings for the MIS, read from environment variables only.

``MIS_MODE`` picks the run mode explicitly: ``embedded`` (the default: SQLite, a filesystem
Celery broker and media under ``var/``) or ``production`` (PostgreSQL, Redis, secrets from the
environment). A missing variable never switches the mode; production refuses to start without
``DATABASE_URL``, ``CELERY_BROKER_URL``, ``SECRET_KEY`` and ``ALLOWED_HOSTS``.
"""

import secrets
from pathlib import Path

import dj_database_url
from django.utils.translation import gettext_lazy as _

from mis.env import env_bool, env_choice, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent

MIS_MODE = env_choice("MIS_MODE", ("embedded", "production"), "embedded")
EMBEDDED = MIS_MODE == "embedded"
PRODUCTION = MIS_MODE == "production"

VAR_DIR = Path(env_str("MIS_VAR_DIR", str(BASE_DIR / "var")))

DEBUG = env_bool("DEBUG", False)


def _embedded_secret_key() -> str:
    """A per-installation key kept in var/, so sessions survive restarts of the embedded mode."""
    key_file = VAR_DIR / "secret_key"
    if key_file.exists():
        return key_file.read_text().strip()
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(50)
    key_file.write_text(key)
    key_file.chmod(0o600)
    return key


if PRODUCTION:
    SECRET_KEY = env_str("SECRET_KEY", required=True)
    ALLOWED_HOSTS = env_list("ALLOWED_HOSTS")
    if not ALLOWED_HOSTS:
        from django.core.exceptions import ImproperlyConfigured

        raise ImproperlyConfigured(
            "Environment variable ALLOWED_HOSTS is required in production mode "
            "(comma-separated host names); set it and start again."
        )
else:
    SECRET_KEY = env_str("SECRET_KEY") or _embedded_secret_key()
    ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]", "testserver"])

CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "rest_framework",
    "django_filters",
    "guardian",
    "axes",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "accounts",
    "patients",
    "studies",
    "diagnostics",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "accounts.audit.AuditActorMiddleware",
    "accounts.middleware.IdleTimeoutMiddleware",
    "accounts.middleware.ForcedPasswordChangeMiddleware",
    "accounts.middleware.SecurityHeadersMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last: turns a lockout flagged during authentication into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "mis.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "accounts.context_processors.session_timeout",
            ],
        },
    },
]

WSGI_APPLICATION = "mis.wsgi.application"

# --- Database -------------------------------------------------------------------------------
# Embedded: SQLite in WAL mode with IMMEDIATE transactions, so concurrent writers queue on the
# busy timeout instead of failing with "database is locked" on lock upgrade.
_database_url = env_str("DATABASE_URL", required=PRODUCTION)
if _database_url:
    DATABASES = {
        "default": dj_database_url.parse(_database_url, conn_max_age=env_int("DB_CONN_MAX_AGE", 60))
    }
    if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
        DATABASES["default"].setdefault("TEST", {})["NAME"] = env_str("TEST_DATABASE_NAME")
else:
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": VAR_DIR / "mis.sqlite3",
            "OPTIONS": {
                "transaction_mode": "IMMEDIATE",
                "timeout": 20,
                "init_command": (
                    "PRAGMA journal_mode=WAL;PRAGMA synchronous=NORMAL;PRAGMA foreign_keys=ON;"
                ),
            },
        }
    }
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A file, not the in-memory default: its locking (WAL, busy timeout) is the embedded mode's,
    # so concurrency tests mean the same on SQLite as in production.
    DATABASES["default"].setdefault("TEST", {})["NAME"] = env_str(
        "TEST_SQLITE_NAME", str(VAR_DIR / "test.sqlite3")
    )

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = [
    # First: refuse locked-out (username, IP) pairs and over-tried usernames before any password
    # is checked (django-axes counts the failures).
    "axes.backends.AxesStandaloneBackend",
    "accounts.backends.UsernameLockoutBackend",
    # Django's ModelBackend, refusing passwords of service accounts (tokens only).
    "accounts.backends.InteractiveModelBackend",
    "guardian.backends.ObjectPermissionBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": env_int("PASSWORD_MIN_LENGTH", 10)},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "patients:list"
LOGOUT_REDIRECT_URL = "login"
GUARDIAN_RAISE_403 = False
ANONYMOUS_USER_NAME = None  # no guardian anonymous user: anonymous sees nothing

# --- Internationalisation -----------------------------------------------------------------
LANGUAGE_CODE = env_str("LANGUAGE_CODE", "ru")
LANGUAGES = [("ru", _("Russian")), ("en", _("English"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
USE_I18N = True
USE_TZ = True
# The hospital's zone. DICOM dates and times carry no zone: they are read as local time of this
# zone unless the file has TimezoneOffsetFromUTC (0008,0201), which then wins.
TIME_ZONE = env_str("TIME_ZONE", "Europe/Moscow")

# --- Static and protected files -----------------------------------------------------------
STATIC_URL = "/static/"
STATIC_ROOT = VAR_DIR / "static"
STATICFILES_DIRS = [BASE_DIR / "static"]
WHITENOISE_USE_FINDERS = True  # serves from the app folders when collectstatic has not run
if EMBEDDED:
    STATIC_ROOT.mkdir(parents=True, exist_ok=True)
# Media is never served from a public URL: every file goes through
# accounts.protected_files.protected_file_response, which checks scope and audits.
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(VAR_DIR / "media")))
# The viewer's cache of decoded full-depth frames (keyed by file sha256 and frame; local disk
# of each web host, never served directly; safe to delete at any time).
FRAME_CACHE_DIR = Path(env_str("FRAME_CACHE_DIR", str(VAR_DIR / "frame-cache")))
FRAME_CACHE_MAX_MB = env_int("FRAME_CACHE_MAX_MB", 2048)
# Lifetime of the viewer's signed frame URLs (studies/frame_urls.py), in seconds; never past the
# end of the audited viewing window. Also the longest a revoked access still fetches frames.
FRAME_URL_TTL = env_int("FRAME_URL_TTL", 180)

# Ingest limits: one file, one ZIP (uncompressed), one image's pixels.
STUDIES_MAX_FILE_BYTES = env_int("STUDIES_MAX_FILE_BYTES", 2 * 1024**3)
STUDIES_MAX_ZIP_BYTES = env_int("STUDIES_MAX_ZIP_BYTES", 8 * 1024**3)
STUDIES_MAX_PIXELS = env_int("STUDIES_MAX_PIXELS", 60_000_000)
# The performing department of uploads by a service account without exactly one department.
STUDIES_DEFAULT_DEPARTMENT = env_str("STUDIES_DEFAULT_DEPARTMENT", "")

# Models: one folder per version, ml_weights/<name>/<version>/ (weights + card.json).
ML_WEIGHTS_DIR = Path(env_str("ML_WEIGHTS_DIR", str(BASE_DIR / "ml_weights")))
# Labelled images for training and evaluation; never part of the repository.
ML_DATASETS_DIR = Path(env_str("ML_DATASETS_DIR", str(BASE_DIR.parent / "shared" / "datasets")))
# Threads per inference or training process (the hospital's CPU budget per worker).
ML_THREADS = env_int("ML_THREADS", 2)
# Analysis runs: a running run holds a lease this long; the sweeper (beat, every
# DIAGNOSTICS_SWEEP_SECONDS) gives expired leases back to the queue and re-sends runs still
# queued after DIAGNOSTICS_RESEND_SECONDS; a run fails after DIAGNOSTICS_MAX_ATTEMPTS claims.
DIAGNOSTICS_LEASE_SECONDS = env_int("DIAGNOSTICS_LEASE_SECONDS", 120)
DIAGNOSTICS_SWEEP_SECONDS = env_int("DIAGNOSTICS_SWEEP_SECONDS", 30)
DIAGNOSTICS_RESEND_SECONDS = env_int("DIAGNOSTICS_RESEND_SECONDS", 300)
DIAGNOSTICS_MAX_ATTEMPTS = env_int("DIAGNOSTICS_MAX_ATTEMPTS", 3)
# Feedback-based sensitivity and specificity are shown from this many labelled cases per class.
DIAGNOSTICS_MONITORING_MIN_CASES = env_int("DIAGNOSTICS_MONITORING_MIN_CASES", 10)
# POST /api/v1/predict: the model used when the request names none (NAME or NAME@VERSION).
PREDICT_DEFAULT_MODEL = env_str("PREDICT_DEFAULT_MODEL", "pneumonia")
PREDICT_MAX_BYTES = env_int("PREDICT_MAX_BYTES", 64 * 1024 * 1024)
MEDIA_URL = "/protected/"
PROTECTED_FILES_BACKEND = env_choice("PROTECTED_FILES_BACKEND", ("django", "nginx"), "django")
PROTECTED_FILES_NGINX_PREFIX = env_str("PROTECTED_FILES_NGINX_PREFIX", "/_protected/")
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024

# --- Security ---------------------------------------------------------------------------------
# Follows USE_HTTPS, never DEBUG: a TLS-terminated deployment says so explicitly.
USE_HTTPS = env_bool("USE_HTTPS", False)
SESSION_COOKIE_SECURE = USE_HTTPS
CSRF_COOKIE_SECURE = USE_HTTPS
SECURE_SSL_REDIRECT = USE_HTTPS
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000) if USE_HTTPS else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = USE_HTTPS
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if USE_HTTPS else None
SECURE_REDIRECT_EXEMPT = [r"^health/"]
# Behind nginx the client's address arrives in X-Real-IP; trusted only when said so, otherwise a
# client could write any address into the audit.
BEHIND_PROXY = env_bool("BEHIND_PROXY", False)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_AGE = env_int("SESSION_COOKIE_AGE", 8 * 3600)
# Signed out after this many seconds without activity (pages, API calls with the session, and
# the viewer's keep-alive); the page warns SESSION_IDLE_WARNING seconds before.
SESSION_IDLE_TIMEOUT = env_int("SESSION_IDLE_TIMEOUT", 30 * 60)
SESSION_IDLE_WARNING = env_int("SESSION_IDLE_WARNING", 2 * 60)
CONTENT_SECURITY_POLICY = env_str(
    "CONTENT_SECURITY_POLICY",
    "default-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; "
    "script-src 'self' 'unsafe-inline'; object-src 'none'; base-uri 'self'; "
    "frame-ancestors 'none'; form-action 'self'",
)

# --- Login protection (django-axes) ---------------------------------------------------------
# Locked out after AXES_FAILURE_LIMIT failures of one username from one address, and after
# LOGIN_USERNAME_FAILURE_LIMIT failures of one username from any addresses (a distributed guess),
# for LOGIN_LOCKOUT_MINUTES; a successful login resets the pair's count.
AXES_ENABLED = env_bool("AXES_ENABLED", True)
AXES_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5)
LOGIN_USERNAME_FAILURE_LIMIT = env_int("LOGIN_USERNAME_FAILURE_LIMIT", 20)
AXES_COOLOFF_TIME = env_int("LOGIN_LOCKOUT_MINUTES", 15) / 60
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "accounts.audit.client_ip"
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_VERBOSE = False

# --- Audit ------------------------------------------------------------------------------------
# Reads of patient data are always audited in production; AUDIT_READS=false exists only for
# bench/audit_overhead.py to measure the cost of auditing (embedded mode).
AUDIT_READS = env_bool("AUDIT_READS", True)
if PRODUCTION and not AUDIT_READS:
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured("AUDIT_READS=false is refused in production mode.")
# On PostgreSQL a request's viewing-window events are committed on a connection of their own
# while the response is prepared (accounts.audit.audit_view); the response still waits for the
# commit. false writes them on the request's connection before going on.
AUDIT_READS_DEFERRED = env_bool("AUDIT_READS_DEFERRED", True)
AUDIT_SEAL_INTERVAL = env_int("AUDIT_SEAL_INTERVAL", 30)
# Break-glass grants last this long.
EMERGENCY_ACCESS_HOURS = env_int("EMERGENCY_ACCESS_HOURS", 24)

# --- Celery -----------------------------------------------------------------------------------
# Embedded: the filesystem broker and result backend under var/, so nothing but Python is needed.
_broker_url = env_str("CELERY_BROKER_URL", required=PRODUCTION)
# For a Redis broker: one that does not answer must not hang an upload's publish on commit.
REDIS_BROKER_TRANSPORT_OPTIONS = {
    "socket_connect_timeout": env_int("CELERY_BROKER_CONNECT_TIMEOUT", 3),
    # A publish tries to connect twice, quickly, rather than kombu's default back-off (about
    # 6 s against a refused port). The worker's consumer reconnects under its own retry rules.
    "max_retries": 1,
    "interval_start": 0,
    "interval_step": 0.2,
    "interval_max": 0.5,
}
if _broker_url:
    CELERY_BROKER_URL = _broker_url
    CELERY_RESULT_BACKEND = env_str("CELERY_RESULT_BACKEND", _broker_url)
    CELERY_BROKER_TRANSPORT_OPTIONS = REDIS_BROKER_TRANSPORT_OPTIONS
else:
    _broker_dir = VAR_DIR / "broker"
    for sub in ("queue", "processed", "results", "control"):
        (_broker_dir / sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_URL = "filesystem://"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
        "polling_interval": 0.25,
    }
    CELERY_RESULT_BACKEND = env_str(
        "CELERY_RESULT_BACKEND", "file://" + str(_broker_dir / "results")
    )
CELERY_TASK_DEFAULT_QUEUE = "celery"
CELERY_TASK_ROUTES = {
    "mis.health.ping": {"queue": "health"},
    "diagnostics.analyse": {"queue": "inference"},
}
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_RESULT_EXPIRES = 3600
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = TIME_ZONE
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
CELERY_BEAT_SCHEDULE: dict = {
    # Chains new audit events into the hash chain; verify with `manage.py audit_verify`.
    "audit-seal": {"task": "accounts.tasks.audit_seal", "schedule": float(AUDIT_SEAL_INTERVAL)},
    # Rescans the registry for likely duplicate patients (the registrars' review queue).
    "patients-refresh-duplicates": {
        "task": "patients.refresh_duplicates",
        "schedule": float(env_int("DUPLICATES_REFRESH_SECONDS", 6 * 3600)),
    },
    # Expired leases back to the queue, stuck queued runs re-sent (diagnostics/services.py).
    "diagnostics-sweep": {
        "task": "diagnostics.sweep",
        "schedule": float(DIAGNOSTICS_SWEEP_SECONDS),
    },
    "idempotency-purge": {"task": "accounts.tasks.idempotency_purge", "schedule": 3600.0},
}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# After a failed publish, the publishes of this process skip the broker this long (mis/broker.py).
CELERY_BROKER_DOWN_SECONDS = env_int("CELERY_BROKER_DOWN_SECONDS", 10)
HEALTH_CELERY_TIMEOUT = env_int("HEALTH_CELERY_TIMEOUT", 5)

# --- REST API -------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # Token first: an anonymous request then gets 401 with WWW-Authenticate, not 403.
        # Hashed keys of our own (accounts/tokens.py), not rest_framework.authtoken.
        "accounts.tokens.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "mis.api.PageNumberPagination",
    "PAGE_SIZE": 25,
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "rest_framework.filters.OrderingFilter",
    ],
    "ORDERING_PARAM": "ordering",
    "DEFAULT_THROTTLE_CLASSES": [
        "rest_framework.throttling.AnonRateThrottle",
        "rest_framework.throttling.UserRateThrottle",
        "accounts.tokens.TokenRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "anon": env_str("API_THROTTLE_ANON", "60/min"),
        "user": env_str("API_THROTTLE_USER", "1200/min"),
        "token": env_str("API_THROTTLE_TOKEN", "600/min"),
    },
    "EXCEPTION_HANDLER": "mis.api.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "mis.openapi.AutoSchema",
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}
# A retried upload, merge or report signing with the same Idempotency-Key replays the first
# response for this long (accounts/idempotency.py).
IDEMPOTENCY_KEY_HOURS = env_int("IDEMPOTENCY_KEY_HOURS", 24)
SPECTACULAR_SETTINGS = {
    "TITLE": "MIS API",
    "DESCRIPTION": "Hospital imaging MIS: patients, studies, reports and AI diagnostics.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "AnalysisRunStatusEnum": "diagnostics.models.AnalysisRun.Status",
        "ReportStatusEnum": "studies.models.Report.Status",
    },
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        # The error shape as reusable components; every operation's 4xx answers (mis/openapi.py).
        "mis.openapi.document_errors",
    ],
}

# --- Caches and logging --------------------------------------------------------------------
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
_redis_cache = env_str("CACHE_URL")
if _redis_cache:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": _redis_cache,
        }
    }

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    # Failed logins are in the audit already; axes' INFO lines repeat them.
    "loggers": {"axes": {"level": "WARNING"}},
}

# --- Demo data ------------------------------------------------------------------------------
DEMO_DATA_ALLOWED = EMBEDDED

# --- Patient identity -----------------------------------------------------------------------
# The charset for DICOM names whose SpecificCharacterSet is missing or wrong (a Python codec).
DICOM_FALLBACK_CHARSET = env_str("MIS_DICOM_FALLBACK_CHARSET", "cp1251")
try:
    import codecs as _codecs

    _codecs.lookup(DICOM_FALLBACK_CHARSET)
except LookupError:
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured(
        f"MIS_DICOM_FALLBACK_CHARSET={DICOM_FALLBACK_CHARSET!r} is not a charset Python knows; "
        "use a codec name such as cp1251 or koi8_r."
    ) from None
