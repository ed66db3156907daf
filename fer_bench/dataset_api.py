"""Everything a dataset author imports, from one place.

A real dataset is one file in ``datasets/`` (or an outside package's entry point): a reader that
turns the files as the dataset ships into a :class:`DatasetPlan` with the helpers below, wrapped
in a :class:`RealDataset` with its :class:`Option` s and registered with ``register_dataset``.
See ``datasets/rafdb.py`` for a complete one. The names live in their own modules (the cache,
the raw readers, the registry); this module only gathers them.
"""

from fer_bench.cache import Option, RealDataset, cache_root
from fer_bench.data import DEFAULT_ASYMMETRIC_MAP, RAFDB_CLASSES, FERData, Split
from fer_bench.errors import FerBenchError
from fer_bench.rawdata import (
    IMAGE_SUFFIXES,
    DatasetPlan,
    ImageRef,
    SplitPlan,
    first_existing,
    image_files,
    line_error,
    parse_float,
    parse_int,
    read_csv,
    read_lines,
    relpath,
    sha1_file,
    sha1_files,
    sha1_listing,
)
from fer_bench.registry import register_dataset

__all__ = [
    "DEFAULT_ASYMMETRIC_MAP",
    "IMAGE_SUFFIXES",
    "RAFDB_CLASSES",
    "DatasetPlan",
    "FERData",
    "FerBenchError",
    "ImageRef",
    "Option",
    "RealDataset",
    "Split",
    "SplitPlan",
    "cache_root",
    "first_existing",
    "image_files",
    "line_error",
    "parse_float",
    "parse_int",
    "read_csv",
    "read_lines",
    "register_dataset",
    "relpath",
    "sha1_file",
    "sha1_files",
    "sha1_listing",
]
