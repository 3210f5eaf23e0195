"""MkDocs hook: adds the generated reference pages (docs/reference_pages.py) to the site at
build time, so that they are made from the code and conf/ on every build and cannot drift."""

from __future__ import annotations

import sys
from pathlib import Path

from mkdocs.structure.files import File, Files

sys.path.insert(0, str(Path(__file__).resolve().parent))
import reference_pages  # noqa: E402  (beside this hook, which MkDocs loads by its path)


def on_files(files: Files, config) -> Files:
    for uri, make in reference_pages.PAGES.items():
        files.append(File.generated(config, uri, content=make()))
    return files
