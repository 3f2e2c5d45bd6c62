"""Sub-commands of the ``scpdiff`` CLI (see :mod:`scpdiff.cli`), one module each.

A command parses its arguments and calls one library function; it holds no pipeline logic and
imports no other command (shared options live in ``_training_args`` and ``_metric_args``). May
import every library package.
"""
