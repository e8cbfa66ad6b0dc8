"""Feature extraction of a manifest into a store: the pipeline and its local and Dask backends.

Layer 3: imports features, store, io, runtime. The backends never import the pipeline.
"""
