"""rtsctl: declarative real-time scoring endpoints on Azure ML (and locally).

The flow, one module each: manifest (load, interpolate, validate) -> desired
(resources) -> graph -> observe -> diff -> plan -> render / apply.
"""

__version__ = "0.1.0"
