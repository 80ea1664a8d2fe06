"""Alignment: preference losses as pure tensor functions (``losses``), noising targets per
parametrisation (``targets``), model adapters and reference handling (``models``), typed batches
(``batches``) and the plain-torch training step (``step``). Ray appears only in the Train loop
(``train_loop``); ``preflight`` checks a table's files on the driver, ``backends`` builds and exports
each generator backend's transformer, and ``run.align_generator`` is the one call the main loop makes.

Import the submodules directly; this package imports nothing so that ``losses`` stays light.
"""
