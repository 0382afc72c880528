import gc
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mis.settings")

django_application = get_wsgi_application()

# The viewer's signed frame URLs are answered before Django's middleware (no database); every
# other request, and every frame request it does not verify, goes to Django unchanged.
from studies.frame_urls import FrameFastPath  # noqa: E402 (needs the settings configured above)

application = FrameFastPath(django_application, warm_up=True)

# What was loaded so far lives as long as the process: keep it out of the garbage collector's
# full passes (fewer and shorter pauses in every request).
gc.freeze()
