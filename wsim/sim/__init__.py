"""The discrete-event engine (the only package that imports simpy).

Import :func:`wsim.sim.engine.run_simulation` explicitly; this package's import is light.
"""
