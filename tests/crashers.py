"""Functions that misbehave the way a decoder can, run through verify.isolate by the tests."""

import os
import time


def abort():
    os.abort()  # like a decoder segfault: the process dies by a signal


def hang():
    time.sleep(3600)


def fail():
    raise ValueError("bad frame data\nsecond line")


def chatty(value):
    print("noise on stdout from a library")
    return value * 2


def raise_bug():
    return {}["missing"]  # a KeyError: a bug in verify, not a property of the file


def refuse():
    from verify.errors import MediaError

    raise MediaError("not readable as video")
