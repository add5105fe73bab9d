"""The PySide6 application. All Qt imports of CellViewer live under this package."""
