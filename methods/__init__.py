"""Built-in methods: each module registers one method with ``@register_method``."""

from fer_bench.registry import import_submodules

import_submodules(__name__)
