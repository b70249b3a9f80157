"""roost serve: the local web page and API (``ml.serve.app``)."""
