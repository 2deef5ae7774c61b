"""Networks written in the project with the parameter names of the published checkpoints."""
