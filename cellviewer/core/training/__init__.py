"""What a new training run is made of, without Qt: the settings a user chooses and the rules
between them (:mod:`.form`), the run they launch (:mod:`.request`), and the facts they are
chosen from: the project's label counts (:mod:`.project_data`), the models the trainer offers
(:mod:`.models`), the devices it can use (:mod:`.devices`) and the model files a run can start
from (:mod:`.start_from`).

The training dialog (``cellviewer.ui.train.dialog``) is a view over a
:class:`~.form.TrainingForm`; a script can fill the same form and launch the same run.
Torch-free: the trainer is asked about GPUs in a separate process.
"""
