"""Documents: the layered model (Qt-free), OpenRaster and raster file I/O."""

from .files import (
    OPEN_SUFFIXES,
    ORA_SUFFIX,
    RASTER_SUFFIXES,
    DocumentError,
    export_png,
    open_document,
)
from .model import Document, EditRecord, Layer, flatten
from .ora import read_ora, write_ora

__all__ = [
    "OPEN_SUFFIXES",
    "ORA_SUFFIX",
    "RASTER_SUFFIXES",
    "Document",
    "DocumentError",
    "EditRecord",
    "Layer",
    "export_png",
    "flatten",
    "open_document",
    "read_ora",
    "write_ora",
]
