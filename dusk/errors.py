"""The one exception type users see: a DuskError carries a message meant for a person, not a traceback.

from dusk.errors import DuskError
raise DuskError("config.json: expected field 'num_hidden_layers'")
"""


class DuskError(Exception):
    """An error caused by the user's input (a file, a field, a flag), with a message saying what was expected."""
