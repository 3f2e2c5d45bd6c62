"""Sub-commands of the ``scpdiff`` CLI (see :mod:`scpdiff.cli`)."""
