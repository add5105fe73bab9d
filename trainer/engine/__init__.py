"""The training engine: the loop, early stopping, model files, device selection and the
``train``/``evaluate``/``robustness``/``benchmark``/``predict`` commands.

Import the parts from their modules (``trainer.engine.loop.run_training``,
``trainer.engine.modelfile.load_model_file``...); this package imports nothing heavy itself.
"""
