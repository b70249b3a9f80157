"""One module per pipeline stage (a Dagster asset and a DVC stage of the same name), in the
manner of DVC's example-get-started (``src/prepare.py``): ``run_<stage>(paths, cfg)`` reads the
stage's inputs, calls the pure functions of the layers below, writes its outputs and returns
the figures; its asset only turns them into metadata. Beside each writer is the reader its
downstream stages and tools use (``read_*`` / ``load_*``), so a stage's file layout is written
in exactly one module."""
