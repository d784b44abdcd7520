"""The old home of pyminidocker.reference, kept for code written against it: import that one.
(The reference grammar moved to the ground floor because the store matches names with it.)"""
from pyminidocker.reference import (  # noqa: F401
    DEFAULT_REGISTRY,
    DEFAULT_TAG,
    NAME_TOTAL_LENGTH_MAX,
    OFFICIAL_NAMESPACE,
    Reference,
    familiar,
    parse_reference,
    split_name,
    validate_digest,
)
