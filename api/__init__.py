"""The outside of whatchanged: the HTTP API (:mod:`~whatchanged.api.app`, ``routes/``) and the
command line (:mod:`~whatchanged.api.cli` and its ``cli_*`` modules).

Commands and routes hold no logic: they parse, call the engine, and answer with the shapes of
:mod:`whatchanged.present`.  Nothing imports this layer.
"""
