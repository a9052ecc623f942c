"""redirect_loop: sign-in started again and again."""

import time

from builders import signin_flows
from checkkit import findings, kinds


def test_redirect_loop(tmp_path):
    t = time.time() - 60
    loop = []
    for i in range(4):
        f = signin_flows(t0=t + i * 3)[0]
        loop.append(f)
    fs, _ = findings(tmp_path, loop)
    assert kinds(fs) == ["redirect_loop"]

