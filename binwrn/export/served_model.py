"""The file MLflow logs as the served model's code (models from code): loading the model runs
these lines, not a pickle, as loading a `.bwn` unpickles nothing. `mlflow_model.register` logs
it; the class is `served.PackedWRN`."""

from mlflow.models import set_model

from binwrn.export.served import PackedWRN

set_model(PackedWRN())
