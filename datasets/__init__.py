"""Built-in dataset loaders: each module registers one dataset with ``@register_dataset``."""

from fer_bench.registry import import_submodules

import_submodules(__name__)
