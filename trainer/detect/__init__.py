"""The trained cell detector: a small fully convolutional network predicting a cell-centre
heatmap (``model``), its training data from fully annotated images or regions (``data``), the
training run (``train``, ``python -m trainer train-detector``), its model files
(``modelfile``: ``"task": "detection"``), and tiled inference with peak finding (``infer``:
:func:`load_detector`, ``python -m trainer detect``; ``cellviewer detect --method
MODEL.cvmodel`` imports it lazily)."""
