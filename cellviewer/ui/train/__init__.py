"""Training in the app: the dialog, the run list, the live monitor, results, blur."""
