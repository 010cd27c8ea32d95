import os

import pytest


@pytest.fixture
def write_file(tmp_path):
    """Returns `write(name, content)`: writes str (as UTF-8) or bytes under tmp_path, returns the path."""

    def write(name, content):
        path = os.path.join(tmp_path, name)
        with open(path, "wb") as stream:
            stream.write(content.encode("utf-8") if isinstance(content, str) else content)
        return path

    return write


@pytest.fixture
def check_location():
    """Returns `check(error, path, line)`: the message is one line starting with `path:line: `.

    `line` None means the error concerns the whole file: `path: `.
    """

    def check(error, path, line):
        message = str(error)
        assert "\n" not in message and "\r" not in message
        assert message.startswith(f"{path}: " if line is None else f"{path}:{line}: "), message

    return check
