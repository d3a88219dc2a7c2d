"""User-facing errors: one line that says where and what, caught by the CLI (exit code 2)."""


class SafeAlignError(Exception):
    """An error the user can act on; the CLI prints its message alone, without a traceback."""


class BadInputError(SafeAlignError):
    """A problem in an input file: names the file, the line (or record) and the problem."""

    def __init__(self, path, line, problem: str):
        self.path, self.line, self.problem = str(path), line, problem
        where = f"{self.path} line {line}" if line is not None else self.path
        super().__init__(f"{where}: {problem}")
