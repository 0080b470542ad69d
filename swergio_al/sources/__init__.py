"""What a user labels: rows of a CSV/TSV/JSONL file, or the files of an image or audio folder.

`load_source(path, ...)` reads a source once, up front, into a `Source` whose items
the pool loop asks about; `Source.render(item)` is what the labeling page shows.
"""

from swergio_al.sources.source import Item, Source, SourceError, load_source

__all__ = ["Item", "Source", "SourceError", "load_source"]
