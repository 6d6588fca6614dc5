"""One exception type for every mistake a user can make, so runners can print it as one line."""


class UserError(Exception):
    """Bad input (config value, data file, path): reported as one line, exit code 2."""
