"""CellViewer: cell-level classification of histopathology images from 40x40 patches.

``cellviewer.core`` is Qt-free (image sources, the project store, import/export, cropping);
``cellviewer.ui`` is the PySide6 application on top of it. Importing this package is cheap.
"""

__version__ = "0.1.0"
