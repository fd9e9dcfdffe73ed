"""Plain JSON files, sorted keys and indented so that a change reads as a clear diff, written atomically."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


def dumps(data: Any) -> str:
    return json.dumps(data, indent=2, sort_keys=True, allow_nan=False) + "\n"


def write_json_atomic(path: Path, data: Any) -> None:
    """Write to a temporary file beside `path`, fsync, then rename over it: a reader (or a crash) sees the
    old file or the new one, never half of one."""
    text = dumps(data)  # serialise first: a value JSON cannot hold fails before anything is touched
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_json(path: Path) -> Any:
    with path.open(encoding="utf-8") as fh:
        return json.load(fh)


def unwritable_folder(path: Path) -> str | None:
    """Why `path` cannot serve as a folder perfgate writes into (a file is in the way, it cannot be created, it is
    read-only), or None: it exists now, created where it did not. Asked once as the run starts, so that a bad
    folder is one clear error then, not a traceback in every test that would write there."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        return "is a file, not a folder"
    except NotADirectoryError:
        return "cannot be created: a file is in its way"
    except OSError as exc:
        return f"cannot be created ({exc.strerror or exc})"
    if not path.is_dir():
        return "is not a folder"
    try:
        tempfile.TemporaryFile(dir=path).close()
    except OSError as exc:
        return f"cannot be written ({exc.strerror or exc})"
    return None
