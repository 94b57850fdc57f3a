"""The errors every SDK call raises: Teu's one error vocabulary, defined in :mod:`teu_api.errors`."""

from teu_api.errors import *  # noqa: F403 - the vocabulary, re-exported whole
from teu_api.errors import __all__ as __all__
