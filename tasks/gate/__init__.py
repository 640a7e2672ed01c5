"""The approval gate: the approval form, waiting at the gate and watching it."""
