"""What the integration modules share in one run: the controller's build cache.

Each module brings up its own lab and deploys from its own copy of the deploy directory, but a
build class (llama.cpp's source, the targets, the compiler and the ISA flags) is the same
binary wherever it is built: a later module's first deploy takes it from the cache, as a
user's second cluster would. Cold builds, one per class, are tests/lab/test_build_pipeline.py's
to show. A cache set from outside ($LLAMAFLEET_BUILD_CACHE) is used as it is.
"""

from __future__ import annotations

import os

import pytest

CACHE_ENV = "LLAMAFLEET_BUILD_CACHE"


@pytest.fixture(scope="session", autouse=True)
def shared_build_cache(tmp_path_factory):
    if os.environ.get(CACHE_ENV):
        yield os.environ[CACHE_ENV]
        return
    path = tmp_path_factory.mktemp("build-cache")
    os.environ[CACHE_ENV] = str(path)
    try:
        yield str(path)
    finally:
        os.environ.pop(CACHE_ENV, None)
