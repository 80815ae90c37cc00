"""UserError: bad input from the user (config, data, workdir). `main` prints it on one line and
exits non-zero; nothing in the workdir is written before the checks that raise it."""


class UserError(ValueError):
  pass


class Interrupted(UserError):
  """Ctrl-C or SIGTERM before training began (while data was prepared): nothing was kept."""

  def __init__(self, msg: str, code: int):
    super().__init__(msg)
    self.code = code
