"""UserError: bad input from the user (config, data, workdir). `main` prints it on one line and
exits non-zero; nothing in the workdir is written before the checks that raise it."""


class UserError(ValueError):
  pass
