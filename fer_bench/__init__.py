"""fer-bench: uncertainty-handling facial expression recognition under label noise."""

from fer_bench.errors import FerBenchError

__version__ = "0.1.0"
__all__ = ["FerBenchError", "__version__"]
