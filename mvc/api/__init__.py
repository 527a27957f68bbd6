"""The Python API: each function returns plain data and raises :class:`mvc.errors.MvcError` subclasses."""
