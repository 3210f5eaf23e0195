"""pipeline: config-driven cross-validation of any model, every run and fold tracked in MLflow."""

from pipeline.config import register_resolvers

register_resolvers()

__version__ = "0.1.0"
