"""The project's errors: each is a problem a user must fix or a failure they must know of, with
a one-line message. Every entry point catches `AlprError` and prints that line.

`ModelError` is the models' (bad weights, files, datasets, devices); the stream and the
configuration subclass `AlprError` for theirs (also as `ValueError`, which they are).
"""


class AlprError(Exception):
    pass


class ModelError(AlprError):
    pass
