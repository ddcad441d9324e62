"""The local web application behind ``stemscribe serve``.

``server``   FastAPI routes only (``create_app``).
``jobs``     the SQLite job store, the worker threads that run :func:`stemscribe.pipeline.split`,
             and the event broker that feeds the live progress stream.
``uploads``  receiving an upload: size limit while streaming, type check by content.
``results``  reading a finished job: notes for the piano roll, the zip of all files.
``static/``  the front end: plain HTML, CSS and JavaScript modules, no build step.

Nothing here is imported by ``import stemscribe``; FastAPI is imported only when the app is built.
"""
