"""The allowed values of the training settings, without torch: the optimizer and schedule
builders (optimizers.py, schedules.py) and the config check that answers before torch loads
(binwrn/configuration/checks.py) both read them here."""

OPTIMIZERS = ("sgd", "adam")  # optim.name
DECAY_SCOPES = ("weights", "all")  # optim.decay_scope: the 1-bit weights only, or every one
SCHEDULES = ("sgdr", "step", "cosine", "constant")  # schedule.name
