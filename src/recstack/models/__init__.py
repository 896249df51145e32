"""The eight recommendation models, built from specs (see :func:`build_model`)."""

from recstack.models.base import RecModel, build_model

__all__ = ["RecModel", "build_model"]
