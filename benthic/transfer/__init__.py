"""Transfer of an encoder to labelled seafloor tasks: one fit/predict core (`core`), per-scale settings
(`config`), the compared encoders (`encoders`), one-hot learning curves (`onehot`), hierarchical probes
(`hml_probe`) and the model file `benthic annotate` loads (`hml_model`), the mixed-depth experiment
(`mixed_depth`), cross-validation (`crossval`, `cv_stats`, `timing`), federated training (`federated`, and notebook 07's
experiment on the reef photos in `federated_reef`) and
committed result tables (`results`), and a classifier from a user's labels: labels and translation to targets
(`labels`), training with its split (`classify`), cached features (`feature_cache`) and the report (`report`).
Import the submodule you need."""
