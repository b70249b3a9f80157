"""The files a command was given: image files as named, folders walked recursively (images by
suffix; symbolic links are not followed into folders, and a link that loops is that entry's
error), each with the path its stripped copy takes under ``--out``."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

SUFFIXES = {".jpg", ".jpeg", ".jpe", ".png", ".webp", ".heic", ".heif", ".avif", ".tif", ".tiff", ".gif", ".bmp"}


@dataclass(frozen=True)
class Input:
    path: Path
    relative: Path  # where its copy goes under --out: the file's name, or its path inside the folder given


def collect(paths: list[str]) -> tuple[list[Input], int]:
    """(inputs in order, files skipped in folders for not being images by their suffix)."""
    found, skipped = [], 0
    for given in paths:
        root = Path(given)
        if root.is_dir():
            for folder, dirs, files in os.walk(root):  # followlinks=False: no folder loops
                dirs.sort()
                for name in sorted(files):
                    path = Path(folder) / name
                    if path.suffix.lower() in SUFFIXES or (path.is_symlink() and not path.exists()):
                        found.append(Input(path, path.relative_to(root)))
                    else:
                        skipped += 1
        else:  # a file, or something missing: its error is reported per file
            found.append(Input(root, Path(root.name)))
    return found, skipped
