"""Feature extractors. Importing this package registers every built-in extractor.

See :mod:`sertool.features.base` for the contract and the registry.
"""

from sertool.features import embedding, opensmile, spectral, ssl, stack  # noqa: F401  (register the extractors and presets)
from sertool.features.base import (  # noqa: F401
    EXTRACTORS, PRESETS, FeatureConfig, FeatureExtractor, build_config, build_extractor, config_from_dict,
)
