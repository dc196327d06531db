"""Layer 5, the interface: the ``rag`` command line and everything that prints.

May import every other layer; nothing imports it.
"""

from rag.cli.main import main, run

__all__ = ["main", "run"]
