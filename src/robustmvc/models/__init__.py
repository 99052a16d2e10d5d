"""The baselines, their building blocks (`blocks`) and loss terms (`losses`): one module a model, all of
one interface (forward -> ModelOutput, loss, assign, predict). `robustmvc.registry` builds them by name."""
