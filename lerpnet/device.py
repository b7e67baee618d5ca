"""What a result was measured on: the device, the software versions and the date.

Every program that reports a figure records `device_info()` beside it; benchmarks file their tables
under `device_slug()` so that results from different devices sit side by side.
"""

from __future__ import annotations

import datetime
import platform
import re
from typing import Any

import jax
import jaxlib


def device_info() -> dict[str, Any]:
    """The first device's kind and platform, the device count, jax/jaxlib/Python versions, the UTC date."""
    devices = jax.devices()
    return {
        "device": devices[0].device_kind,
        "platform": devices[0].platform,
        "device_count": len(devices),
        "jax": jax.__version__,
        "jaxlib": jaxlib.__version__,
        "python": platform.python_version(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def device_slug() -> str:
    """The first device's kind as a folder name: 'nvidia_h200', 'cpu'."""
    return re.sub(r"[^a-z0-9]+", "_", jax.devices()[0].device_kind.lower()).strip("_")
