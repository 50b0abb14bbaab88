"""pyrlab: layered JupyterLab images for Python and R from plain package lists."""

__version__ = "0.1.0"
