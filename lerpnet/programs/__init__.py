"""The command-line programs (absl mains); `python -m experiments.<name>` and the `lerpnet-*` scripts run them."""
