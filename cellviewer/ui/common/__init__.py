"""What every part of the UI shares: dialogs, settings, background work, the trainer process."""
