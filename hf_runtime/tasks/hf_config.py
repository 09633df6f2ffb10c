"""The checkpoint's config.json as the task modules read it, for their head's facts.

Loading already read it strictly (`hf_runtime.sources`: a folder without it, or with invalid
JSON, is a ConfigError before any task is built), so this reader is lenient: a task without a
folder or a readable config.json object gets {} and its defaults.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

logger = logging.getLogger("hf_runtime")


def hf_config_or_empty(model_path: Path | None) -> dict[str, Any]:
    """The checkpoint's config.json; {} without a folder or file, or when it is not valid JSON
    (logged) or not a JSON object."""
    path = Path(model_path) / "config.json" if model_path is not None else None
    if path is None or not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        logger.warning("%s is not valid JSON; ignoring it", path)
        return {}
    return data if isinstance(data, dict) else {}
