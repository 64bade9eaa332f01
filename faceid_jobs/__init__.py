"""faceid-jobs: find people in video archives by their faces.

The library (models, video, records, storage, index, search) imports neither
Prefect nor the CLI.
"""

__version__ = "0.1.0"
