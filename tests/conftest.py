import os

pytest_plugins = ["pytester"]

# Safety: every suite run started by the self-tests (in this process or in a subprocess) refuses to
# connect to, or query a resolver at, any address outside 127.0.0.0/8 and ::1.
os.environ["MAILCONFORM_LOOPBACK_ONLY"] = "1"
