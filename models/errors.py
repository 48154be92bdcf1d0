"""The one exception type for problems a user must fix (bad weights, files, datasets).

Command-line entry points catch it and print its message as a single line.
"""


class ModelError(Exception):
    pass
