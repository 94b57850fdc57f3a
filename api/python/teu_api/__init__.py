"""Teu's contracts: the generated stubs of every proto (``teu_api.<area>.v1``) and the one error
vocabulary (:mod:`teu_api.errors`), shared by the SDK and every service.

``teu_api.gateway.v1`` and ``teu_api.types.v1`` are the public API; ``runtime``, ``storage`` and
``logs`` are the engine's internal contracts between its services.
"""

#: The version of the engine, its API and its SDK (one number for all of them).
VERSION = "0.1.0"
