"""m1lib: deep-layer M1 measurement on 7T GRE and the analyses of Cosottini et al. 2016."""
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("m1lib")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"
