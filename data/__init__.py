"""Generated worlds with a known truth: the reference night (:mod:`~whatchanged.data.reference_night`),
the scenario suite (:mod:`~whatchanged.data.scenarios`, :mod:`~whatchanged.data.suite`) and the
worlds we did not write (:mod:`~whatchanged.data.worlds`, :mod:`~whatchanged.data.evaluate`).

Used by ``whatchanged demo``, ``fit`` and the tests; imports the engine and the readers.
"""
