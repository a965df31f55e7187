"""Configuration reading, above binwrn/train: the one place that turns a composed DictConfig into
plain objects and values.

- `compose`: where conf/ and sweeps/ live, composing conf/ outside a Hydra app, and a
  composition error as one sentence with a "did you mean";
- `checks`: what the config alone decides, and a multirun's keys, before torch loads;
- `prepare`: the checked `RunSpec` (binwrn/train/spec.py) a run trains from;
- `identity`: run name, config hash and its compatibility rules, curated params;
- `build`, `data`, `trainer`, `parallel`: the model, schedule, data, Trainer arguments and
  data-parallel rules a config describes;
- `stored`: a finished run's stored config, as the exporters read it;
- `sensitivity`: binwrn-sensitivity's spec;
- `run_help`, `output_dir`: binwrn-run's --help (its config groups, read from conf/) and the
  check that its output folder can be written, a Hydra callback.
Only entry points (cli.py, sweeps, report, bench, gpucheck) import it; nothing
under binwrn/train does (tests/test_layering.py). It imports neither Lightning nor MLflow
(most of a start's wait), so `prepare` can refuse bad input before they load.
"""
