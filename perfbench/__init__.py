"""perfbench: a Jupyter-centred workbench for performance testing of web APIs."""

__version__ = "0.1.0"
