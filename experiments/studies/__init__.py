"""Studies: command-line experiments beyond `payroute train` (`python -m payroute.experiments.studies.NAME`)."""
